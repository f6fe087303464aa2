//! 12-bit DCT JPEG decoding (ITU-T T.81 extended sequential, Huffman coding, process 4), pure
//! Rust: what 1.2.840.10008.1.2.4.51 holds when its precision is 12 (`jpeg-decoder` has no
//! 12-bit DCT).
//!
//! Markers: SOI, SOF0/SOF1 at precision 12, DHT, DQT (8- and 16-bit tables), DRI with RSTm,
//! SOS (interleaved or one scan per component), APPn and COM (skipped), EOI. 1 to 4
//! components, sampling factors 1..=4 (subsampled components are upsampled by replication),
//! restart intervals. The inverse DCT is computed in floating point and rounded, so samples
//! may differ by one from decoders using an integer IDCT (libjpeg's ISLOW).
//!
//! Robustness: lengths and table references are checked before use; the component planes are
//! allocated once, after the caller has checked the frame header against the data set; a
//! Huffman code that matches no table entry, a coefficient index past 63 or data that ends
//! early is an error, never a panic.

use super::CodecError;
use crate::{Image, Photometric};

fn invalid(m: impl std::fmt::Display) -> CodecError {
    CodecError::Invalid(format!("JPEG 12-bit: {m}"))
}

/// Natural (row-major) position of the k-th coefficient in zig-zag order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The largest image (rows x columns x components) decoded.
const MAX_SAMPLES: usize = 1 << 28;

/// A Huffman table: a 9-bit lookup for short codes, canonical code ranges for the rest.
struct Huffman {
    /// (symbol, code length) by the next 9 bits; length 0: longer code.
    fast: Vec<(u8, u8)>,
    /// For each length 1..=16: the largest code (or -1), and where its values start.
    maxcode: [i32; 17],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

const FAST_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], values: &[u8]) -> Result<Huffman, CodecError> {
        let mut fast = vec![(0u8, 0u8); 1 << FAST_BITS];
        let mut maxcode = [-1i32; 17];
        let mut valptr = [0i32; 17];
        let mut mincode = [0i32; 17];
        let mut code: u32 = 0;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = usize::from(counts[len as usize - 1]);
            valptr[len as usize] = k as i32;
            mincode[len as usize] = code as i32;
            for _ in 0..n {
                if code >= (1 << len) {
                    return Err(invalid("a Huffman table with too many codes"));
                }
                if len <= FAST_BITS {
                    let shift = FAST_BITS - len;
                    for f in 0..(1u32 << shift) {
                        fast[((code << shift) | f) as usize] = (values[k], len as u8);
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                maxcode[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        Ok(Huffman {
            fast,
            maxcode,
            valptr,
            mincode,
            values: values.to_vec(),
        })
    }
}

/// Entropy-coded bits: 0xFF00 is a data 0xFF; any other 0xFF xx is a marker, where the data
/// ends (zero bits follow, counted so that using them is an error).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    cache: u64,
    have: u32,
    ended: bool,
    fake: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            cache: 0,
            have: 0,
            ended: false,
            fake: 0,
        }
    }

    fn fill(&mut self) {
        while self.have <= 56 {
            let mut b = 0u8;
            if !self.ended {
                match self.data.get(self.pos) {
                    Some(&0xFF) => match self.data.get(self.pos + 1) {
                        Some(&0) => {
                            b = 0xFF;
                            self.pos += 2;
                        }
                        _ => self.ended = true,
                    },
                    Some(&v) => {
                        b = v;
                        self.pos += 1;
                    }
                    None => self.ended = true,
                }
            }
            if self.ended {
                self.fake = self.fake.saturating_add(8);
            }
            self.cache |= u64::from(b) << (56 - self.have);
            self.have += 8;
        }
    }

    /// Whether bits past the end of the data were used.
    fn overrun(&self) -> bool {
        self.fake > self.have
    }

    #[inline]
    fn peek(&mut self, n: u32) -> u32 {
        if self.have < n {
            self.fill();
        }
        (self.cache >> (64 - n)) as u32
    }

    #[inline]
    fn skip(&mut self, n: u32) {
        self.cache <<= n;
        self.have -= n;
    }

    #[inline]
    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.skip(n);
        v
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, CodecError> {
        let (sym, len) = h.fast[self.peek(FAST_BITS) as usize];
        if len > 0 {
            self.skip(u32::from(len));
            return Ok(sym);
        }
        let code16 = self.peek(16) as i32;
        for len in FAST_BITS as usize + 1..=16 {
            let code = code16 >> (16 - len);
            if code <= h.maxcode[len] {
                self.skip(len as u32);
                let i = h.valptr[len] + code - h.mincode[len];
                return h
                    .values
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| invalid("a bad Huffman code"));
            }
        }
        Err(invalid("a bad Huffman code"))
    }

    /// A value of `s` bits, extended to its sign (T.81 F.2.2.1).
    #[inline]
    fn receive_extend(&mut self, s: u8) -> Result<i32, CodecError> {
        if s == 0 {
            return Ok(0);
        }
        if s > 16 {
            return Err(invalid("a coefficient category above 16"));
        }
        let s = u32::from(s);
        let v = self.bits(s) as i32;
        Ok(if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        })
    }

    /// Skips to the next marker: returns its position (the 0xFF).
    fn next_marker(&self) -> Option<usize> {
        let mut i = self.pos;
        while i + 1 < self.data.len() {
            if self.data[i] == 0xFF && self.data[i + 1] != 0 && self.data[i + 1] != 0xFF {
                return Some(i);
            }
            i += 1;
        }
        None
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks across and down in the component plane (padded to whole MCUs).
    bw: usize,
    bh: usize,
    plane: Vec<u16>,
    done: bool,
}

/// cos table for the float IDCT: `m[x][u] = C(u)/2 * cos((2x+1)u pi / 16)`.
fn idct_matrix() -> [[f32; 8]; 8] {
    let mut m = [[0f32; 8]; 8];
    for (x, row) in m.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *v = (c / 2.0 * (((2 * x + 1) as f64) * (u as f64) * std::f64::consts::PI / 16.0).cos())
                as f32;
        }
    }
    m
}

fn idct(coef: &[i32; 64], m: &[[f32; 8]; 8], out: &mut [u16], stride: usize) {
    let mut tmp = [0f32; 64];
    // rows of coefficients (vertical frequency v) → columns: tmp[v][x] = sum_u m[x][u] F[v][u]
    for v in 0..8 {
        let f = &coef[v * 8..v * 8 + 8];
        if f[1..].iter().all(|&c| c == 0) {
            let d = f[0] as f32 * m[0][0];
            tmp[v * 8..v * 8 + 8].fill(d);
            continue;
        }
        for x in 0..8 {
            let mut s = 0f32;
            for u in 0..8 {
                s += m[x][u] * f[u] as f32;
            }
            tmp[v * 8 + x] = s;
        }
    }
    for y in 0..8 {
        for x in 0..8 {
            let mut s = 0f32;
            for v in 0..8 {
                s += m[y][v] * tmp[v * 8 + x];
            }
            out[y * stride + x] = (s + 2048.0).round().clamp(0.0, 4095.0) as u16;
        }
    }
}

/// A component at full size (`w` x `h`): as decoded, or upsampled as libjpeg does by default
/// ("fancy": a triangle filter) for 2:1 horizontal and 2:1 both ways, by replication otherwise.
fn upsample(c: &Component, w: usize, h: usize, hmax: usize, vmax: usize) -> Vec<u16> {
    let stride = c.bw * 8;
    let at = |x: usize, y: usize| i32::from(c.plane[y * stride + x]);
    let (n, m) = ((w * c.h).div_ceil(hmax), (h * c.v).div_ceil(vmax));
    let mut out = vec![0u16; w * h];
    let fancy = hmax == 2 * c.h && (vmax == c.v || vmax == 2 * c.v) && n >= 2;
    if !fancy {
        for y in 0..h {
            for x in 0..w {
                out[y * w + x] = at(x * c.h / hmax, y * c.v / vmax) as u16;
            }
        }
        return out;
    }
    let two_rows = vmax == 2 * c.v;
    let mut sums = vec![0i32; n];
    let mut line = vec![0i32; 2 * n];
    for y in 0..h {
        let sy = if two_rows { y / 2 } else { y };
        // vertical: 3/4 of the nearer input row, 1/4 of the other (edges repeat)
        let (scale, round) = if two_rows {
            let other = if y % 2 == 0 {
                sy.saturating_sub(1)
            } else {
                (sy + 1).min(m - 1)
            };
            for (x, s) in sums.iter_mut().enumerate() {
                *s = 3 * at(x, sy) + at(x, other);
            }
            (4, [8, 7])
        } else {
            for (x, s) in sums.iter_mut().enumerate() {
                *s = at(x, sy);
            }
            (2, [1, 2])
        };
        let shift = scale;
        if two_rows {
            line[0] = (sums[0] * 4 + 8) >> shift;
            line[1] = (sums[0] * 3 + sums[1] + 7) >> shift;
        } else {
            line[0] = sums[0];
            line[1] = (sums[0] * 3 + sums[1] + 2) >> shift;
        }
        for i in 1..n - 1 {
            line[2 * i] = (3 * sums[i] + sums[i - 1] + round[0]) >> shift;
            line[2 * i + 1] = (3 * sums[i] + sums[i + 1] + round[1]) >> shift;
        }
        let l = n - 1;
        line[2 * l] = (3 * sums[l] + sums[l - 1] + round[0]) >> shift;
        line[2 * l + 1] = if two_rows {
            (sums[l] * 4 + 7) >> shift
        } else {
            sums[l]
        };
        for x in 0..w {
            out[y * w + x] = line[x] as u16;
        }
    }
    out
}

/// Decodes a 12-bit sequential DCT JPEG stream to component planes; `check` sees the frame
/// (rows, columns, components) before anything is allocated. Returns the samples interleaved
/// by pixel, components upsampled to full size.
pub(super) fn decode(
    data: &[u8],
    check: impl FnOnce(u16, u16, u8) -> Result<(), CodecError>,
) -> Result<(u16, u16, usize, Vec<u16>), CodecError> {
    if data.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(invalid("no SOI marker at the start"));
    }
    let mut check = Some(check);
    let m = idct_matrix();
    let mut qt: [Option<[i32; 64]>; 4] = [None; 4];
    let mut dc: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac: [Option<Huffman>; 4] = [None, None, None, None];
    let mut comps: Vec<Component> = Vec::new();
    let (mut rows, mut cols, mut hmax, mut vmax) = (0u16, 0u16, 1usize, 1usize);
    let mut restart = 0usize;
    let mut i = 2;
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
            0x01 | 0xD0..=0xD8 => return Err(invalid("an unexpected marker")),
            _ => {}
        }
        let (body, next) = super::marker_segment(data, i, &|m: &str| invalid(m))?;
        i = next;
        match marker {
            0xC0 | 0xC1 => {
                if !comps.is_empty() {
                    return Err(invalid("a second frame header"));
                }
                if body.len() < 6 || body[0] != 12 {
                    return Err(invalid("not a 12-bit frame"));
                }
                rows = u16::from_be_bytes([body[1], body[2]]);
                cols = u16::from_be_bytes([body[3], body[4]]);
                let nf = usize::from(body[5]);
                if rows == 0 || cols == 0 || !(1..=4).contains(&nf) || body.len() < 6 + 3 * nf {
                    return Err(invalid("a bad frame header"));
                }
                for c in body[6..6 + 3 * nf].chunks_exact(3) {
                    let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
                        return Err(invalid("bad sampling factors or table"));
                    }
                    hmax = hmax.max(h);
                    vmax = vmax.max(v);
                    comps.push(Component {
                        id: c[0],
                        h,
                        v,
                        tq: usize::from(c[2]),
                        bw: 0,
                        bh: 0,
                        plane: Vec::new(),
                        done: false,
                    });
                }
                let total = usize::from(rows) * usize::from(cols) * nf;
                if total > MAX_SAMPLES {
                    return Err(invalid(format!("{total} samples is too large")));
                }
                if let Some(check) = check.take() {
                    check(rows, cols, nf as u8)?;
                }
                let mcux = usize::from(cols).div_ceil(8 * hmax);
                let mcuy = usize::from(rows).div_ceil(8 * vmax);
                for c in &mut comps {
                    c.bw = mcux * c.h;
                    c.bh = mcuy * c.v;
                    c.plane = vec![0; c.bw * c.bh * 64];
                }
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(CodecError::Unsupported(
                    "progressive, lossless, hierarchical or arithmetic 12-bit JPEG".into(),
                ));
            }
            0xC4 => {
                let mut b = body;
                while !b.is_empty() {
                    if b.len() < 17 {
                        return Err(invalid("short Huffman table"));
                    }
                    let (class, id) = (b[0] >> 4, usize::from(b[0] & 15));
                    let counts: [u8; 16] = b[1..17].try_into().unwrap_or([0; 16]);
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    if class > 1 || id > 3 || n > 256 || b.len() < 17 + n {
                        return Err(invalid("bad Huffman table"));
                    }
                    let t = Huffman::new(&counts, &b[17..17 + n])?;
                    if class == 0 {
                        dc[id] = Some(t);
                    } else {
                        ac[id] = Some(t);
                    }
                    b = &b[17 + n..];
                }
            }
            0xDB => {
                let mut b = body;
                while !b.is_empty() {
                    let (pq, id) = (b[0] >> 4, usize::from(b[0] & 15));
                    let size = if pq == 0 { 64 } else { 128 };
                    if pq > 1 || id > 3 || b.len() < 1 + size {
                        return Err(invalid("bad quantization table"));
                    }
                    let mut t = [0i32; 64];
                    for (k, &z) in ZIGZAG.iter().enumerate() {
                        t[z] = if pq == 0 {
                            i32::from(b[1 + k])
                        } else {
                            i32::from(u16::from_be_bytes([b[1 + 2 * k], b[2 + 2 * k]]))
                        };
                    }
                    qt[id] = Some(t);
                    b = &b[1 + size..];
                }
            }
            0xDD => {
                if body.len() < 2 {
                    return Err(invalid("short restart interval segment"));
                }
                restart = usize::from(u16::from_be_bytes([body[0], body[1]]));
            }
            0xDA => {
                if comps.is_empty() {
                    return Err(invalid("scan before the frame header"));
                }
                let ns = usize::from(*body.first().unwrap_or(&0));
                if ns == 0 || ns > 4 || body.len() < 1 + 2 * ns + 3 {
                    return Err(invalid("short scan header"));
                }
                // Ss, Se, Ah/Al mean nothing in a sequential frame: some writers leave Se at 0
                // (libjpeg warns and decodes the scan as sequential; so does this decoder)
                let mut scan: Vec<(usize, usize, usize)> = Vec::new();
                for s in body[1..1 + 2 * ns].chunks_exact(2) {
                    let Some(k) = comps.iter().position(|c| c.id == s[0]) else {
                        return Err(invalid("a scan names an unknown component"));
                    };
                    let (td, ta) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
                    if comps[k].done || scan.iter().any(|s| s.0 == k) || td > 3 || ta > 3 {
                        return Err(invalid("a bad scan component"));
                    }
                    if dc[td].is_none() || ac[ta].is_none() || qt[comps[k].tq].is_none() {
                        return Err(invalid("a scan uses a table not defined"));
                    }
                    scan.push((k, td, ta));
                }
                let blocks: usize = scan.iter().map(|s| comps[s.0].h * comps[s.0].v).sum();
                if ns > 1 && blocks > 10 {
                    return Err(invalid("more than 10 blocks in an MCU"));
                }
                let mut bits = Bits::new(data, i);
                let mut pred = [0i32; 4];
                // non-interleaved: MCU = one block over the component's own size
                let (mcux, mcuy) = if ns == 1 {
                    let c = &comps[scan[0].0];
                    let w = (usize::from(cols) * c.h).div_ceil(hmax);
                    let h = (usize::from(rows) * c.v).div_ceil(vmax);
                    (w.div_ceil(8), h.div_ceil(8))
                } else {
                    (
                        usize::from(cols).div_ceil(8 * hmax),
                        usize::from(rows).div_ceil(8 * vmax),
                    )
                };
                let mut coef = [0i32; 64];
                let mut rst = 0u8;
                for n in 0..mcux * mcuy {
                    if restart > 0 && n > 0 && n % restart == 0 {
                        let at = bits
                            .next_marker()
                            .ok_or_else(|| invalid("a restart marker is missing"))?;
                        if data.get(at + 1) != Some(&(0xD0 + rst)) {
                            return Err(invalid("a restart marker is missing or out of order"));
                        }
                        rst = (rst + 1) % 8;
                        bits = Bits::new(data, at + 2);
                        pred = [0; 4];
                    }
                    let (mx, my) = (n % mcux, n / mcux);
                    for (si, &(k, td, ta)) in scan.iter().enumerate() {
                        let (bh_n, bv_n) = if ns == 1 {
                            (1, 1)
                        } else {
                            (comps[k].h, comps[k].v)
                        };
                        for by in 0..bv_n {
                            for bx in 0..bh_n {
                                let (Some(dct), Some(act), Some(q)) =
                                    (&dc[td], &ac[ta], &qt[comps[k].tq])
                                else {
                                    return Err(invalid("a missing table"));
                                };
                                coef.fill(0);
                                let t = bits.decode(dct)?;
                                let diff = bits.receive_extend(t)?;
                                pred[si] = pred[si].wrapping_add(diff);
                                coef[0] = pred[si].wrapping_mul(q[0]);
                                let mut z = 1;
                                while z < 64 {
                                    let rs = bits.decode(act)?;
                                    let (r, s) = (usize::from(rs >> 4), rs & 15);
                                    if s == 0 {
                                        if r != 15 {
                                            break;
                                        }
                                        z += 16;
                                        continue;
                                    }
                                    z += r;
                                    if z > 63 {
                                        return Err(invalid("a coefficient past the block"));
                                    }
                                    let v = bits.receive_extend(s)?;
                                    coef[ZIGZAG[z]] = v.wrapping_mul(q[ZIGZAG[z]]);
                                    z += 1;
                                }
                                let c = &mut comps[k];
                                let (col, row) = if ns == 1 {
                                    (mx, my)
                                } else {
                                    (mx * c.h + bx, my * c.v + by)
                                };
                                if col < c.bw && row < c.bh {
                                    let stride = c.bw * 8;
                                    let at = row * 8 * stride + col * 8;
                                    idct(&coef, &m, &mut c.plane[at..], stride);
                                }
                            }
                        }
                    }
                    if bits.overrun() {
                        return Err(invalid("the data ends inside the scan"));
                    }
                }
                for &(k, _, _) in &scan {
                    comps[k].done = true;
                }
                i = bits
                    .next_marker()
                    .ok_or_else(|| invalid("no marker after the scan"))?;
            }
            _ => {}
        }
    }
    if comps.is_empty() {
        return Err(invalid("no frame header"));
    }
    if comps.iter().any(|c| !c.done) {
        return Err(invalid("a component has no scan"));
    }
    let (w, h, nf) = (usize::from(cols), usize::from(rows), comps.len());
    let mut out = vec![0u16; w * h * nf];
    for (ci, c) in comps.iter().enumerate() {
        let full = upsample(c, w, h, hmax, vmax);
        for (k, &v) in full.iter().enumerate() {
            out[k * nf + ci] = v;
        }
    }
    Ok((rows, cols, nf, out))
}

/// Decodes one 12-bit DCT JPEG frame, appending native bytes in `g`'s geometry to `out`;
/// returns the photometric of the decoded pixels (colour stored as YBR decodes to RGB).
pub(super) fn decode_frame(
    g: &Image,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<Photometric, CodecError> {
    if g.bits_allocated != 16 {
        return Err(CodecError::Invalid(format!(
            "JPEG precision 12 with bits allocated {}",
            g.bits_allocated
        )));
    }
    let (_, _, nf, samples) = decode(frame, |rows, cols, nf| {
        if rows != g.rows || cols != g.columns {
            return Err(CodecError::Invalid(format!(
                "JPEG frame is {cols}x{rows}, the data set says {}x{}",
                g.columns, g.rows
            )));
        }
        if u16::from(nf) != g.samples || !(nf == 1 || nf == 3) {
            return Err(CodecError::Invalid(format!(
                "JPEG frame has {nf} components, the data set says {} samples",
                g.samples
            )));
        }
        Ok(())
    })?;
    out.reserve(samples.len() * 2);
    if nf == 3 && g.photometric.is_ybr() {
        for p in samples.chunks_exact(3) {
            let (y, cb, cr) = (
                f32::from(p[0]),
                f32::from(p[1]) - 2048.0,
                f32::from(p[2]) - 2048.0,
            );
            for v in [
                y + 1.402 * cr,
                y - 0.344_136 * cb - 0.714_136 * cr,
                y + 1.772 * cb,
            ] {
                out.extend_from_slice(&(v.round().clamp(0.0, 4095.0) as u16).to_le_bytes());
            }
        }
        return Ok(Photometric::Rgb);
    }
    for &s in &samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    Ok(g.photometric)
}
