//! JPEG Lossless encoder, process 14, selection value 1 (ITU T.81 Annex H).
//!
//! SOI, SOF3, one DHT (a Huffman table for the difference categories, optimal for the frame's
//! histogram and limited to 16 bits as in Annex K.2), SOS (Ss = 1: predictor Ra; Se = 0;
//! Ah = Al = 0), the entropy-coded differences with byte stuffing, EOI. Prediction: the first
//! row from the left, the first column from above, the first pixel from 2^(P-1).

use super::CodecError;
use crate::Image;

/// Huffman code for each of the 17 categories: (code, length); length 0 = unused.
struct Table {
    bits: [u8; 16],
    values: Vec<u8>,
    codes: [(u16, u8); 17],
}

/// Code lengths for the symbols with non-zero frequency, per T.81 Annex K.2 (Figures K.1-K.3),
/// limited to 16 bits.
fn build_table(freq_in: &[u64; 17]) -> Table {
    // 17 symbols plus the reserved one (index 17) that keeps any code from being all ones.
    let mut freq = [0u64; 18];
    freq[..17].copy_from_slice(freq_in);
    freq[17] = 1;
    let mut codesize = [0usize; 18];
    let mut others = [usize::MAX; 18];
    loop {
        // v1: least frequency (largest index on ties); v2: next least.
        let mut v1 = None;
        for i in 0..18 {
            if freq[i] > 0 && v1.is_none_or(|v: usize| freq[i] <= freq[v]) {
                v1 = Some(i);
            }
        }
        let Some(v1) = v1 else { break };
        let mut v2 = None;
        for i in 0..18 {
            if i != v1 && freq[i] > 0 && v2.is_none_or(|v: usize| freq[i] <= freq[v]) {
                v2 = Some(i);
            }
        }
        let Some(v2) = v2 else { break };
        freq[v1] += freq[v2];
        freq[v2] = 0;
        let mut a = v1;
        codesize[a] += 1;
        while others[a] != usize::MAX {
            a = others[a];
            codesize[a] += 1;
        }
        others[a] = v2;
        let mut b = v2;
        codesize[b] += 1;
        while others[b] != usize::MAX {
            b = others[b];
            codesize[b] += 1;
        }
    }
    // Count codes of each length (Figure K.2), then limit to 16 bits (Figure K.3).
    let mut bits = [0u32; 40];
    for &size in &codesize {
        if size > 0 {
            bits[size] += 1;
        }
    }
    let mut i = 39;
    while i > 16 {
        if bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        } else {
            i -= 1;
        }
    }
    // Remove the reserved code from the longest length.
    let mut longest = 16;
    while bits[longest] == 0 {
        longest -= 1;
    }
    bits[longest] -= 1;
    // Symbols by code size (Figure K.4), smaller sizes first.
    let mut order: Vec<usize> = (0..17).filter(|&s| codesize[s] > 0).collect();
    order.sort_by_key(|&s| (codesize[s], s));
    let values: Vec<u8> = order.iter().map(|&s| s as u8).collect();
    let mut table_bits = [0u8; 16];
    for (len, b) in table_bits.iter_mut().enumerate() {
        *b = bits[len + 1] as u8;
    }
    // Canonical codes (Annex C).
    let mut codes = [(0u16, 0u8); 17];
    let mut code: u32 = 0;
    let mut k = 0;
    for len in 1..=16u8 {
        for _ in 0..table_bits[len as usize - 1] {
            codes[values[k] as usize] = (code as u16, len);
            code += 1;
            k += 1;
        }
        code <<= 1;
    }
    Table {
        bits: table_bits,
        values,
        codes,
    }
}

/// Difference category (SSSS) and its additional bits for a difference taken modulo 2^16.
fn category(diff: i32) -> (usize, u16) {
    let d = diff & 0xFFFF;
    let d = if d >= 0x8000 { d - 0x10000 } else { d };
    if d == 0 {
        (0, 0)
    } else if d == -0x8000 {
        (16, 0)
    } else {
        let magnitude = d.unsigned_abs();
        let ssss = (32 - magnitude.leading_zeros()) as usize;
        let extra = if d > 0 { d } else { d - 1 } as u32 & ((1u32 << ssss) - 1);
        (ssss, extra as u16)
    }
}

struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u16, len: u8) {
        if len == 0 {
            return;
        }
        self.acc = (self.acc << len) | (u32::from(value) & ((1u32 << len) - 1));
        self.n += u32::from(len);
        while self.n >= 8 {
            self.n -= 8;
            let byte = (self.acc >> self.n) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0x00);
            }
        }
        self.acc &= (1u32 << self.n) - 1;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            // Pad with one bits (T.81 F.1.2.3).
            let pad = 8 - self.n as u8;
            self.put((1u16 << pad) - 1, pad);
        }
        self.out
    }
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// Encodes one frame of `img` (native interleaved little-endian bytes).
pub(super) fn encode_frame(img: &Image, frame: &[u8]) -> Result<Vec<u8>, CodecError> {
    let samples = usize::from(img.samples);
    if samples != 1 && samples != 3 {
        return Err(CodecError::Geometry(format!(
            "JPEG lossless here encodes 1 or 3 samples, not {samples}"
        )));
    }
    let precision = img.bits_stored;
    if !(2..=16).contains(&precision) {
        return Err(CodecError::Geometry(format!(
            "JPEG lossless precision {precision} (2..=16 supported)"
        )));
    }
    let bps = img.bytes_per_sample();
    let mask = ((1u32 << precision) - 1) as i32;
    let value = |i: usize| -> i32 {
        let v = if bps == 1 {
            i32::from(frame[i])
        } else {
            i32::from(u16::from_le_bytes([frame[2 * i], frame[2 * i + 1]]))
        };
        v & mask
    };
    let rows = usize::from(img.rows);
    let cols = usize::from(img.columns);
    let initial = 1i32 << (precision - 1);
    // Differences in scan order (interleaved: each pixel's samples in turn).
    let mut diffs = Vec::with_capacity(rows * cols * samples);
    let mut freq = [0u64; 17];
    for y in 0..rows {
        for x in 0..cols {
            for s in 0..samples {
                let at = (y * cols + x) * samples + s;
                let predicted = if x == 0 && y == 0 {
                    initial
                } else if y == 0 {
                    value(at - samples)
                } else if x == 0 {
                    value(at - cols * samples)
                } else {
                    value(at - samples)
                };
                let (ssss, extra) = category(value(at) - predicted);
                freq[ssss] += 1;
                diffs.push((ssss as u8, extra));
            }
        }
    }
    let table = build_table(&freq);

    let mut out = vec![0xFF, 0xD8];
    // SOF3: precision, lines, samples per line, components (id, sampling 1x1, Tq 0).
    let mut sof = vec![precision as u8];
    sof.extend_from_slice(&img.rows.to_be_bytes());
    sof.extend_from_slice(&img.columns.to_be_bytes());
    sof.push(samples as u8);
    for c in 0..samples {
        sof.extend_from_slice(&[c as u8 + 1, 0x11, 0]);
    }
    segment(&mut out, 0xC3, &sof);
    // DHT: class 0 (DC/lossless), table 0.
    let mut dht = vec![0x00];
    dht.extend_from_slice(&table.bits);
    dht.extend_from_slice(&table.values);
    segment(&mut out, 0xC4, &dht);
    // SOS: components with table 0, Ss = 1 (predictor Ra), Se = 0, Ah/Al = 0.
    let mut sos = vec![samples as u8];
    for c in 0..samples {
        sos.extend_from_slice(&[c as u8 + 1, 0x00]);
    }
    sos.extend_from_slice(&[1, 0, 0]);
    segment(&mut out, 0xDA, &sos);
    let mut w = BitWriter { out, acc: 0, n: 0 };
    for (ssss, extra) in diffs {
        let (code, len) = table.codes[ssss as usize];
        w.put(code, len);
        if ssss > 0 && ssss < 16 {
            w.put(extra, ssss);
        }
    }
    let mut out = w.finish();
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_table_h2() {
        assert_eq!(category(0), (0, 0));
        assert_eq!(category(1), (1, 1));
        assert_eq!(category(-1), (1, 0));
        assert_eq!(category(3), (2, 3));
        assert_eq!(category(-3), (2, 0));
        assert_eq!(category(-2), (2, 1));
        assert_eq!(category(255), (8, 255));
        assert_eq!(category(-255), (8, 0));
        assert_eq!(category(32767), (15, 32767));
        assert_eq!(category(32768), (16, 0));
        assert_eq!(category(-32768), (16, 0));
        // Modulo 2^16: 65535 is -1.
        assert_eq!(category(65535), (1, 0));
        assert_eq!(category(-65535), (1, 1));
    }

    #[test]
    fn tables_are_prefix_free_and_at_most_16_bits() {
        let cases: [[u64; 17]; 4] = [
            [1; 17],
            [1_000_000, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            // Fibonacci frequencies make the deepest unlimited tree.
            [
                1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597,
            ],
            [5, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
        ];
        for freq in cases {
            let t = build_table(&freq);
            let used: Vec<usize> = (0..17).filter(|&s| freq[s] > 0).collect();
            assert_eq!(t.values.len(), used.len());
            assert_eq!(
                t.bits.iter().map(|&b| b as usize).sum::<usize>(),
                used.len()
            );
            for &a in &used {
                let (ca, la) = t.codes[a];
                assert!((1..=16).contains(&la), "{freq:?}");
                assert_ne!(ca, ((1u32 << la) - 1) as u16, "all-ones code");
                for &b in &used {
                    let (cb, lb) = t.codes[b];
                    if a != b && la <= lb {
                        assert_ne!(cb >> (lb - la), ca, "{a} prefixes {b}");
                    }
                }
            }
        }
    }
}
