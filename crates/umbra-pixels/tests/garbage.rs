//! decode never panics, whatever the bytes: random bytes, and valid streams mutated.

use proptest::prelude::*;
use umbra_pixels::codec::{Codec, decode, encode};
use umbra_pixels::{Image, Photometric};

const SYNTAXES: [&str; 8] = [
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
];

fn geometry() -> impl Strategy<Value = Image> {
    (
        0u16..40,
        0u16..40,
        prop_oneof![Just(1u16), Just(3u16), 0u16..5],
        prop_oneof![Just(8u16), Just(16u16), 0u16..40],
        0u16..20,
        any::<bool>(),
        0u32..4,
    )
        .prop_map(|(rows, columns, samples, ba, bs, signed, frames)| Image {
            rows,
            columns,
            samples,
            bits_allocated: ba,
            bits_stored: bs,
            signed,
            photometric: if samples == 3 {
                Photometric::YbrFull422
            } else {
                Photometric::Monochrome2
            },
            frames,
            data: Vec::new(),
        })
}

fn valid_stream(codec: Codec, seed: u8, samples: u16) -> (Image, Vec<u8>) {
    let p = if samples == 3 {
        Photometric::Rgb
    } else {
        Photometric::Monochrome2
    };
    let mut img = Image::new(9, 11, samples, 8, 8, false, p, 1);
    for (i, b) in img.data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(seed) ^ (i as u8 >> 3);
    }
    let enc = encode(&img, codec).unwrap();
    let stored = Image {
        photometric: enc.photometric,
        ..img
    };
    (stored, enc.fragments[0].clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        ts in prop::sample::select(&SYNTAXES[..]),
        g in geometry(),
        fragments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4),
        jpeg_prefix in any::<bool>(),
    ) {
        let fragments: Vec<Vec<u8>> = fragments
            .into_iter()
            .map(|mut f| {
                if jpeg_prefix {
                    f.splice(0..0, [0xFF, 0xD8, 0xFF, 0xC3, 0x00, 0x0B]);
                }
                f
            })
            .collect();
        let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
        let _ = decode(ts, &refs, &g);
    }

    #[test]
    fn mutated_streams_never_panic(
        codec in prop_oneof![
            Just(Codec::RleLossless),
            Just(Codec::JpegLossless),
            Just(Codec::JpegBaseline { quality: 80 }),
        ],
        seed in any::<u8>(),
        colour in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (g, mut stream) = valid_stream(codec, seed, if colour { 3 } else { 1 });
        for (at, byte) in edits {
            let i = at.index(stream.len());
            stream[i] = byte;
        }
        if truncate {
            stream.truncate(cut.index(stream.len()));
        }
        let _ = decode(codec.transfer_syntax(), &[&stream], &g);
    }
}
