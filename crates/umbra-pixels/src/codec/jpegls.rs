//! JPEG-LS decoding (ITU-T T.87 | ISO/IEC 14495-1), pure Rust: 1.2.840.10008.1.2.4.80
//! (lossless) and .81 (near-lossless).
//!
//! Markers: SOI, SOF55, SOS, LSE (preset coding parameters; mapping tables and oversize
//! dimensions are refused as unsupported), DRI with RSTm, APPn and COM (skipped, except a
//! CharLS colour-transform APP8, refused), EOI. Entropy-coded data: regular mode (context
//! modelling over 365 contexts, median edge prediction, bias correction, limited-length Golomb
//! codes), run mode with run interruption, NEAR > 0, precision 2..=16 bits, 1..=4 components
//! in interleave mode none (one scan per component), line or sample.
//!
//! Robustness: every length is checked before it is used; the sample buffer is allocated once,
//! after the frame header has been checked by the caller and against [`MAX_SAMPLES`]; the work
//! per sample is bounded (a Golomb code longer than LIMIT is an error), so garbage costs at most
//! the declared image's size in time and memory, and never panics.

use super::CodecError;
use crate::{Image, Photometric};

/// The largest image (rows x columns x components) decoded.
const MAX_SAMPLES: usize = 1 << 28;

/// Run-length order table (T.87 A.7.1.1).
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

fn invalid(m: impl std::fmt::Display) -> CodecError {
    CodecError::Invalid(format!("JPEG-LS: {m}"))
}

fn unsupported(m: impl std::fmt::Display) -> CodecError {
    CodecError::Unsupported(format!("JPEG-LS with {m}"))
}

/// What the frame header (SOF55) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub precision: u8,
    pub rows: u16,
    pub columns: u16,
    pub components: u8,
}

/// Preset coding parameters from an LSE marker segment (0: the default).
#[derive(Debug, Clone, Copy, Default)]
struct Preset {
    maxval: u32,
    t1: u32,
    t2: u32,
    t3: u32,
    reset: u32,
}

/// The coding parameters of one scan.
#[derive(Debug, Clone, Copy)]
struct Params {
    maxval: i32,
    near: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
    range: i32,
    qbpp: u32,
    limit: u32,
}

fn bits_for(v: u32) -> u32 {
    // ceil(log2(v)) for v >= 1
    32 - (v.max(1) - 1).leading_zeros()
}

impl Params {
    fn new(precision: u8, preset: Preset, near: u32) -> Result<Params, CodecError> {
        let full = (1u32 << precision) - 1;
        let maxval = if preset.maxval == 0 {
            full
        } else {
            preset.maxval
        };
        if maxval == 0 || maxval > full {
            return Err(invalid(format!(
                "MAXVAL {maxval} for precision {precision}"
            )));
        }
        if near > (maxval / 2).min(255) {
            return Err(invalid(format!("NEAR {near} with MAXVAL {maxval}")));
        }
        let (m, n) = (maxval as i32, near as i32);
        // default thresholds (T.87 C.2.4.1.1.1)
        let clamp = |i: i32, j: i32| if i > m || i < j { j } else { i };
        let (d1, d2, d3) = if m >= 128 {
            let f = (m.min(4095) + 128) / 256;
            // BASIC_T1..3 = 3, 7, 21
            let t1 = clamp(f + 2 + 3 * n, n + 1);
            let t2 = clamp(4 * f + 3 + 5 * n, t1);
            let t3 = clamp(17 * f + 4 + 7 * n, t2);
            (t1, t2, t3)
        } else {
            let f = 256 / (m + 1);
            let t1 = clamp((3 / f + 3 * n).max(2), n + 1);
            let t2 = clamp((7 / f + 5 * n).max(3), t1);
            let t3 = clamp((21 / f + 7 * n).max(4), t2);
            (t1, t2, t3)
        };
        let pick = |p: u32, d: i32| if p == 0 { d } else { p as i32 };
        let (t1, t2, t3) = (
            pick(preset.t1, d1),
            pick(preset.t2, d2),
            pick(preset.t3, d3),
        );
        if !(n < t1 && t1 <= t2 && t2 <= t3 && t3 <= m.max(n + 1)) {
            return Err(invalid(format!(
                "thresholds {t1}, {t2}, {t3} with MAXVAL {m}, NEAR {n}"
            )));
        }
        let reset = pick(preset.reset, 64);
        if reset < 3 || reset > m.max(255) {
            return Err(invalid(format!("RESET {reset}")));
        }
        let range = (m + 2 * n) / (2 * n + 1) + 1;
        let qbpp = bits_for(range as u32);
        let bpp = bits_for(maxval + 1).max(2);
        let limit = 2 * (bpp + bpp.max(8));
        Ok(Params {
            maxval: m,
            near: n,
            t1,
            t2,
            t3,
            reset,
            range,
            qbpp,
            limit,
        })
    }
}

/// Reads the entropy-coded bits of a scan: after a 0xFF byte the next byte's high bit is a
/// stuffed zero; a 0xFF followed by a byte with its high bit set is a marker, where the data
/// ends (reading on gives zero bits, counted so that using them is an error).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Left-aligned: the next bit is the top bit.
    cache: u64,
    have: u32,
    after_ff: bool,
    /// Set once the data ends: how many real bits were ever loaded.
    real: Option<u64>,
    loaded: u64,
    used: u64,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            cache: 0,
            have: 0,
            after_ff: false,
            real: None,
            loaded: 0,
            used: 0,
        }
    }

    fn fill(&mut self) {
        while self.have <= 56 {
            if self.real.is_none() {
                if let Some(&b) = self.data.get(self.pos) {
                    if self.after_ff {
                        // b < 0x80 here: a marker was caught at the 0xFF
                        self.cache |= u64::from(b & 0x7F) << (57 - self.have);
                        self.have += 7;
                        self.loaded += 7;
                        self.after_ff = false;
                        self.pos += 1;
                        continue;
                    }
                    if b == 0xFF {
                        match self.data.get(self.pos + 1) {
                            Some(&n) if n < 0x80 => self.after_ff = true,
                            _ => {
                                self.real = Some(self.loaded);
                                continue;
                            }
                        }
                    }
                    self.cache |= u64::from(b) << (56 - self.have);
                    self.have += 8;
                    self.loaded += 8;
                    self.pos += 1;
                    continue;
                }
                self.real = Some(self.loaded);
            }
            // past the end: zero bits
            self.have += 8;
        }
    }

    /// Whether more bits were used than the data held.
    fn overrun(&self) -> bool {
        self.real.is_some_and(|r| self.used > r)
    }

    #[inline]
    fn bits(&mut self, n: u32) -> u32 {
        debug_assert!(n <= 32);
        if n == 0 {
            return 0;
        }
        if self.have < n {
            self.fill();
        }
        let v = (self.cache >> (64 - n)) as u32;
        self.cache <<= n;
        self.have -= n;
        self.used += u64::from(n);
        v
    }

    #[inline]
    fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    /// Counts zero bits up to a one (consumed) or more than `max` zeros (an error).
    #[inline]
    fn unary(&mut self, max: u32) -> Result<u32, CodecError> {
        let mut q = 0;
        loop {
            if self.have < 32 {
                self.fill();
            }
            let lz = self.cache.leading_zeros().min(self.have);
            if lz < self.have {
                q += lz;
                self.cache <<= lz;
                self.cache <<= 1;
                self.have -= lz + 1;
                self.used += u64::from(lz + 1);
                break;
            }
            q += lz;
            self.cache = 0;
            self.have = 0;
            self.used += u64::from(lz);
            if q > max {
                break;
            }
        }
        if q > max {
            return Err(invalid("a Golomb code longer than LIMIT"));
        }
        Ok(q)
    }

    /// The position of the next marker at or after the data read so far.
    fn next_marker(&self) -> Option<usize> {
        let mut i = self.pos;
        while i + 1 < self.data.len() {
            if self.data[i] == 0xFF && self.data[i + 1] >= 0x80 {
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

/// Context statistics of a scan (T.87 A.2.1).
struct Contexts {
    a: [i32; 365],
    b: [i32; 365],
    c: [i32; 365],
    n: [i32; 365],
    /// Run interruption contexts (RItype 0 and 1): A, N, Nn.
    ra: [i32; 2],
    rn: [i32; 2],
    rnn: [i32; 2],
}

impl Contexts {
    fn new(p: &Params) -> Contexts {
        let a0 = ((p.range + 32) / 64).max(2);
        Contexts {
            a: [a0; 365],
            b: [0; 365],
            c: [0; 365],
            n: [1; 365],
            ra: [a0; 2],
            rn: [1; 2],
            rnn: [0; 2],
        }
    }
}

struct Scan<'a, 'b> {
    p: Params,
    bits: &'b mut Bits<'a>,
    ctx: Contexts,
    /// Quantized gradient, indexed by difference + MAXVAL.
    quant: Vec<i8>,
    width: usize,
}

#[inline]
fn med(ra: i32, rb: i32, rc: i32) -> i32 {
    if rc >= ra.max(rb) {
        ra.min(rb)
    } else if rc <= ra.min(rb) {
        ra.max(rb)
    } else {
        ra + rb - rc
    }
}

impl Scan<'_, '_> {
    fn quant_table(p: &Params) -> Vec<i8> {
        (-p.maxval..=p.maxval)
            .map(|d| {
                if d <= -p.t3 {
                    -4
                } else if d <= -p.t2 {
                    -3
                } else if d <= -p.t1 {
                    -2
                } else if d < -p.near {
                    -1
                } else if d <= p.near {
                    0
                } else if d < p.t1 {
                    1
                } else if d < p.t2 {
                    2
                } else if d < p.t3 {
                    3
                } else {
                    4
                }
            })
            .collect()
    }

    #[inline]
    fn q(&self, d: i32) -> i32 {
        i32::from(self.quant[(d + self.p.maxval) as usize])
    }

    /// The signed context number of the gradients around a sample (0: run mode).
    #[inline]
    fn context(&self, ra: i32, rb: i32, rc: i32, rd: i32) -> i32 {
        81 * self.q(rd - rb) + 9 * self.q(rb - rc) + self.q(rc - ra)
    }

    /// Reconstructs a sample from its prediction and its (dequantized, signed) error.
    #[inline]
    fn reconstruct(&self, px: i32, err: i32) -> i32 {
        let p = &self.p;
        let mut rx = px + err * (2 * p.near + 1);
        if rx < -p.near {
            rx += p.range * (2 * p.near + 1);
        } else if rx > p.maxval + p.near {
            rx -= p.range * (2 * p.near + 1);
        }
        rx.clamp(0, p.maxval)
    }

    /// A limited-length Golomb code (T.87 A.5.3), checked against the largest mapped error a
    /// valid stream can hold.
    #[inline]
    fn golomb(&mut self, k: u32, limit: u32) -> Result<i32, CodecError> {
        let qbpp = self.p.qbpp;
        let max_unary = limit.saturating_sub(qbpp + 1);
        let q = self.bits.unary(max_unary)?;
        let v = if q < max_unary {
            if k > 24 {
                return Err(invalid("Golomb parameter out of range"));
            }
            (u64::from(q) << k) | u64::from(self.bits.bits(k))
        } else {
            u64::from(self.bits.bits(qbpp)) + 1
        };
        if v > 2 * self.p.range as u64 + 2 {
            return Err(invalid("a coded error out of range"));
        }
        Ok(v as i32)
    }

    /// Decodes one sample in regular mode with context `q` (signed) and neighbours.
    #[inline]
    fn regular(&mut self, q: i32, ra: i32, rb: i32, rc: i32) -> Result<i32, CodecError> {
        let (i, sign) = if q < 0 {
            ((-q) as usize, -1)
        } else {
            (q as usize, 1)
        };
        let c = &mut self.ctx;
        let px = (med(ra, rb, rc) + sign * c.c[i]).clamp(0, self.p.maxval);
        let (a, n) = (c.a[i], c.n[i]);
        let mut k = 0;
        while (i64::from(n) << k) < i64::from(a) {
            k += 1;
        }
        let special = self.p.near == 0 && k == 0 && 2 * c.b[i] <= -n;
        let m = self.golomb(k, self.p.limit)?;
        let mut err = if m & 1 == 0 { m >> 1 } else { -((m + 1) >> 1) };
        if special {
            err = -err - 1;
        }
        let c = &mut self.ctx;
        c.b[i] += err * (2 * self.p.near + 1);
        c.a[i] = c.a[i].saturating_add(err.abs());
        if c.n[i] == self.p.reset {
            c.a[i] >>= 1;
            c.b[i] >>= 1;
            c.n[i] >>= 1;
        }
        c.n[i] += 1;
        let n = c.n[i];
        if c.b[i] <= -n {
            c.b[i] += n;
            if c.c[i] > -128 {
                c.c[i] -= 1;
            }
            if c.b[i] <= -n {
                c.b[i] = -n + 1;
            }
        } else if c.b[i] > 0 {
            c.b[i] -= n;
            if c.c[i] < 127 {
                c.c[i] += 1;
            }
            if c.b[i] > 0 {
                c.b[i] = 0;
            }
        }
        Ok(self.reconstruct(px, sign * err))
    }

    /// The error of a run interruption sample of type `t` (T.87 A.7.2).
    fn interruption_error(&mut self, t: usize, run_index: usize) -> Result<i32, CodecError> {
        let c = &self.ctx;
        let temp = i64::from(c.ra[t]) + if t == 1 { i64::from(c.rn[t] >> 1) } else { 0 };
        let n = c.rn[t];
        let mut k = 0;
        while (i64::from(n) << k) < temp {
            k += 1;
        }
        let limit = self.p.limit.saturating_sub(J[run_index] + 1);
        let em = self.golomb(k, limit)?;
        let c = &mut self.ctx;
        let tt = em + t as i32;
        let map = tt & 1 == 1;
        let abs = (tt + i32::from(map)) / 2;
        let small = k == 0 && 2 * c.rnn[t] < c.rn[t];
        let err = if map != small { -abs } else { abs };
        if err < 0 {
            c.rnn[t] += 1;
        }
        c.ra[t] = c.ra[t].saturating_add((em + 1 - t as i32) >> 1);
        if c.rn[t] == self.p.reset {
            c.ra[t] >>= 1;
            c.rn[t] >>= 1;
            c.rnn[t] >>= 1;
        }
        c.rn[t] += 1;
        Ok(err)
    }

    /// The length of a run starting with `remaining` samples left on the line, and whether the
    /// run ends the line (no interruption sample follows).
    fn run_length(
        &mut self,
        remaining: usize,
        run_index: &mut usize,
    ) -> Result<(usize, bool), CodecError> {
        let mut n = 0;
        while self.bits.bit() {
            let seg = 1usize << J[*run_index];
            let take = seg.min(remaining - n);
            n += take;
            if take == seg && *run_index < 31 {
                *run_index += 1;
            }
            if n == remaining {
                return Ok((n, true));
            }
        }
        n += self.bits.bits(J[*run_index]) as usize;
        if n > remaining {
            return Err(invalid("a run past the end of the line"));
        }
        Ok((n, n == remaining))
    }

    /// Decodes one line of one component: `prev` and `cur` hold samples at 1..=width, with the
    /// edges at 0 and width + 1 set by the caller.
    fn line(
        &mut self,
        prev: &[i32],
        cur: &mut [i32],
        run_index: &mut usize,
    ) -> Result<(), CodecError> {
        let w = self.width;
        let mut x = 1;
        while x <= w {
            let (ra, rb, rc, rd) = (cur[x - 1], prev[x], prev[x - 1], prev[x + 1]);
            let q = self.context(ra, rb, rc, rd);
            if q != 0 {
                cur[x] = self.regular(q, ra, rb, rc)?;
                x += 1;
                continue;
            }
            let (n, ends) = self.run_length(w + 1 - x, run_index)?;
            cur[x..x + n].fill(ra);
            x += n;
            if ends {
                break;
            }
            let rb = prev[x];
            let rx = if (ra - rb).abs() <= self.p.near {
                let e = self.interruption_error(1, *run_index)?;
                self.reconstruct(ra, e)
            } else {
                let e = self.interruption_error(0, *run_index)?;
                self.reconstruct(rb, if ra > rb { -e } else { e })
            };
            cur[x] = rx;
            x += 1;
            *run_index = run_index.saturating_sub(1);
        }
        Ok(())
    }

    /// Decodes one line of pixels in sample-interleaved mode; `prev[c]`, `cur[c]` as in
    /// [`Scan::line`] for each component `c`.
    fn line_interleaved(
        &mut self,
        prev: &[Vec<i32>],
        cur: &mut [Vec<i32>],
        run_index: &mut usize,
    ) -> Result<(), CodecError> {
        let w = self.width;
        let nc = cur.len();
        let mut qs = [0i32; 4];
        let mut x = 1;
        while x <= w {
            let mut all_zero = true;
            for c in 0..nc {
                let (ra, rb, rc, rd) = (cur[c][x - 1], prev[c][x], prev[c][x - 1], prev[c][x + 1]);
                qs[c] = self.context(ra, rb, rc, rd);
                all_zero &= qs[c] == 0;
            }
            if !all_zero {
                for c in 0..nc {
                    let (ra, rb, rc) = (cur[c][x - 1], prev[c][x], prev[c][x - 1]);
                    cur[c][x] = self.regular(qs[c], ra, rb, rc)?;
                }
                x += 1;
                continue;
            }
            let (n, ends) = self.run_length(w + 1 - x, run_index)?;
            for line in cur.iter_mut() {
                let ra = line[x - 1];
                line[x..x + n].fill(ra);
            }
            x += n;
            if ends {
                break;
            }
            for c in 0..nc {
                let (ra, rb) = (cur[c][x - 1], prev[c][x]);
                let e = self.interruption_error(0, *run_index)?;
                cur[c][x] = self.reconstruct(rb, if rb < ra { -e } else { e });
            }
            x += 1;
            *run_index = run_index.saturating_sub(1);
        }
        Ok(())
    }
}

/// Decodes one scan whose entropy-coded data starts at `start`: `comps` are the indices (in
/// frame order) of its components; writes into `out` (interleaved by pixel, `nf` components);
/// returns the position of the marker after the scan.
#[allow(clippy::too_many_arguments)]
fn decode_scan(
    data: &[u8],
    start: usize,
    info: &FrameInfo,
    p: Params,
    ilv: u8,
    comps: &[usize],
    restart: u32,
    out: &mut [u16],
) -> Result<usize, CodecError> {
    let w = usize::from(info.columns);
    let h = usize::from(info.rows);
    let nf = usize::from(info.components);
    let mut bits = Bits::new(data, start);
    let quant = Scan::quant_table(&p);
    let mut scan = Scan {
        p,
        bits: &mut bits,
        ctx: Contexts::new(&p),
        quant,
        width: w,
    };
    let nc = comps.len();
    let mut prev: Vec<Vec<i32>> = vec![vec![0; w + 2]; nc];
    let mut cur: Vec<Vec<i32>> = vec![vec![0; w + 2]; nc];
    let mut run_index = vec![0usize; nc];
    let interval = if restart == 0 { h } else { restart as usize };
    let mut rst = 0u8;
    for y in 0..h {
        if y > 0 && y % interval == 0 {
            // a restart marker, then fresh statistics and a fresh first line
            let at = scan
                .bits
                .next_marker()
                .ok_or_else(|| invalid("a restart marker is missing"))?;
            let mut i = at;
            while data.get(i) == Some(&0xFF) {
                i += 1;
            }
            if data.get(i) != Some(&(0xD0 + rst)) {
                return Err(invalid("a restart marker is missing or out of order"));
            }
            rst = (rst + 1) % 8;
            *scan.bits = Bits::new(data, i + 1);
            scan.ctx = Contexts::new(&p);
            for v in prev.iter_mut().chain(cur.iter_mut()) {
                v.fill(0);
            }
            run_index.fill(0);
        }
        for c in 0..nc {
            std::mem::swap(&mut prev[c], &mut cur[c]);
            prev[c][w + 1] = prev[c][w];
            cur[c][0] = prev[c][1];
        }
        if ilv == 2 && nc > 1 {
            scan.line_interleaved(&prev, &mut cur, &mut run_index[0])?;
        } else {
            for c in 0..nc {
                scan.line(&prev[c], &mut cur[c], &mut run_index[c])?;
            }
        }
        if scan.bits.overrun() {
            return Err(invalid("the data ends inside the scan"));
        }
        for (c, &fc) in comps.iter().enumerate() {
            let row = &mut out[y * w * nf..(y + 1) * w * nf];
            for (x, &v) in cur[c][1..=w].iter().enumerate() {
                row[x * nf + fc] = v as u16;
            }
        }
    }
    scan.bits
        .next_marker()
        .ok_or_else(|| invalid("no marker after the scan"))
}

/// Decodes a JPEG-LS stream to its samples, interleaved by pixel (component `c` of pixel `k`
/// at `k * components + c`), each in `0..=MAXVAL`. `check` sees the frame header before
/// anything is allocated and may refuse it.
pub(crate) fn decode(
    data: &[u8],
    check: impl FnOnce(&FrameInfo) -> Result<(), CodecError>,
) -> Result<Vec<u16>, CodecError> {
    if data.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(invalid("no SOI marker at the start"));
    }
    let mut check = Some(check);
    let mut i = 2;
    let mut frame: Option<(FrameInfo, Vec<u8>)> = None;
    let mut done: Vec<bool> = Vec::new();
    let mut samples: Vec<u16> = Vec::new();
    let mut preset = Preset::default();
    let mut restart = 0u32;
    loop {
        if i >= data.len() {
            break;
        }
        if data[i] != 0xFF {
            return Err(invalid("expected a marker"));
        }
        while data.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = data.get(i) else {
            break;
        };
        i += 1;
        match marker {
            0xD9 => break,
            0xD8 => return Err(invalid("a second SOI marker")),
            0x01 | 0xD0..=0xD7 => return Err(invalid("a restart marker outside a scan")),
            _ => {}
        }
        let (body, next) = super::marker_segment(data, i, &|m: &str| invalid(m))?;
        i = next;
        match marker {
            0xF7 => {
                if frame.is_some() {
                    return Err(invalid("a second frame header"));
                }
                if body.len() < 6 {
                    return Err(invalid("short frame header"));
                }
                let info = FrameInfo {
                    precision: body[0],
                    rows: u16::from_be_bytes([body[1], body[2]]),
                    columns: u16::from_be_bytes([body[3], body[4]]),
                    components: body[5],
                };
                let nf = usize::from(info.components);
                if body.len() < 6 + 3 * nf {
                    return Err(invalid("short frame header"));
                }
                if !(2..=16).contains(&info.precision) {
                    return Err(invalid(format!("precision {}", info.precision)));
                }
                if info.rows == 0 || info.columns == 0 {
                    return Err(unsupported("a frame without its size (DNL)"));
                }
                if !(1..=4).contains(&nf) {
                    return Err(unsupported(format!("{nf} components")));
                }
                let ids: Vec<u8> = body[6..6 + 3 * nf].chunks_exact(3).map(|c| c[0]).collect();
                if body[6..6 + 3 * nf].chunks_exact(3).any(|c| c[1] != 0x11) {
                    return Err(unsupported("subsampled components"));
                }
                let total = usize::from(info.rows) * usize::from(info.columns) * nf;
                if total > MAX_SAMPLES {
                    return Err(invalid(format!("{total} samples is too large")));
                }
                if let Some(check) = check.take() {
                    check(&info)?;
                }
                samples = vec![0; total];
                done = vec![false; nf];
                frame = Some((info, ids));
            }
            0xF8 => match body.first() {
                Some(1) => {
                    if body.len() < 11 {
                        return Err(invalid("short preset parameters"));
                    }
                    let v = |k: usize| u32::from(u16::from_be_bytes([body[k], body[k + 1]]));
                    preset = Preset {
                        maxval: v(1),
                        t1: v(3),
                        t2: v(5),
                        t3: v(7),
                        reset: v(9),
                    };
                }
                Some(2 | 3) => return Err(unsupported("mapping tables")),
                Some(4) => return Err(unsupported("oversize image dimensions")),
                _ => return Err(invalid("an unknown LSE segment")),
            },
            0xDD => {
                restart = match body.len() {
                    2 => u32::from(u16::from_be_bytes([body[0], body[1]])),
                    3 => u32::from_be_bytes([0, body[0], body[1], body[2]]),
                    4 => u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    _ => return Err(invalid("bad restart interval segment")),
                };
            }
            0xE8 if body.starts_with(b"mrfx") && body.get(4).is_some_and(|&t| t != 0) => {
                return Err(unsupported("a colour transform (HP)"));
            }
            0xDA => {
                let Some((info, ids)) = &frame else {
                    return Err(invalid("scan before the frame header"));
                };
                let ns = usize::from(*body.first().ok_or_else(|| invalid("short scan header"))?);
                if ns == 0 || body.len() < 1 + 2 * ns + 3 {
                    return Err(invalid("short scan header"));
                }
                let mut comps = Vec::with_capacity(ns);
                for c in body[1..1 + 2 * ns].chunks_exact(2) {
                    let Some(k) = ids.iter().position(|&id| id == c[0]) else {
                        return Err(invalid("a scan names an unknown component"));
                    };
                    if done[k] || comps.contains(&k) {
                        return Err(invalid("a component coded twice"));
                    }
                    if c[1] != 0 {
                        return Err(unsupported("mapping tables"));
                    }
                    comps.push(k);
                }
                let tail = &body[1 + 2 * ns..];
                let (near, ilv, pt) = (tail[0], tail[1], tail[2]);
                if pt != 0 {
                    return Err(unsupported("a point transform"));
                }
                match (ilv, ns) {
                    (0..=2, 1) | (1 | 2, 2..=4) => {}
                    _ => {
                        return Err(invalid(format!(
                            "interleave mode {ilv} with {ns} components in a scan"
                        )));
                    }
                }
                let p = Params::new(info.precision, preset, u32::from(near))?;
                let info = *info;
                i = decode_scan(data, i, &info, p, ilv, &comps, restart, &mut samples)?;
                for k in comps {
                    done[k] = true;
                }
            }
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Err(invalid("a JPEG (not JPEG-LS) frame header"));
            }
            _ => {}
        }
    }
    if frame.is_none() {
        return Err(invalid("no frame header"));
    }
    if done.iter().any(|d| !d) {
        return Err(invalid("a component has no scan"));
    }
    Ok(samples)
}

/// Decodes one JPEG-LS frame, appending native bytes in `g`'s geometry to `out`; returns the
/// photometric interpretation of the decoded pixels (the stored one: JPEG-LS in DICOM has no
/// colour transform).
pub(super) fn decode_frame(
    ts: &str,
    g: &Image,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<Photometric, CodecError> {
    let samples = decode(frame, |h| {
        if h.rows != g.rows || h.columns != g.columns {
            return Err(CodecError::Invalid(format!(
                "JPEG-LS frame is {}x{}, the data set says {}x{}",
                h.columns, h.rows, g.columns, g.rows
            )));
        }
        if u16::from(h.components) != g.samples || !(h.components == 1 || h.components == 3) {
            return Err(CodecError::Invalid(format!(
                "JPEG-LS frame has {} components, the data set says {} samples",
                h.components, g.samples
            )));
        }
        if u16::from(h.precision) > g.bits_allocated {
            return Err(CodecError::Invalid(format!(
                "JPEG-LS precision {} with bits allocated {}",
                h.precision, g.bits_allocated
            )));
        }
        Ok(())
    })
    .map_err(|e| match e {
        CodecError::Unsupported(m) => CodecError::Unsupported(format!("{ts}: {m}")),
        e => e,
    })?;
    let bps = g.bytes_per_sample();
    let sign_extend = g.signed && g.bits_stored < g.bits_allocated;
    let stored = u32::from(g.bits_stored);
    out.reserve(samples.len() * bps);
    for &s in &samples {
        let mut v = u32::from(s);
        if sign_extend && v & (1 << (stored - 1)) != 0 {
            v |= !((1u32 << stored) - 1);
        }
        if bps == 1 {
            out.push(v as u8);
        } else {
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
    }
    Ok(g.photometric)
}
