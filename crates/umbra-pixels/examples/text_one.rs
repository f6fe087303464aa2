//! Runs the detector on one image of the generated set and prints the true and the found
//! boxes (for tuning): `cargo run --release -p umbra-pixels --example text_one -- SEED INDEX`.
//! With `ONE_FILE=path` (and `ONE_SPP=3` for RGB) it reads a native 8-bit 1024x768 file whose
//! pixel data ends it instead (the public ultrasound samples).

#[path = "../tests/textgen/mod.rs"]
mod textgen;

fn main() {
    if let Some(path) = std::env::var_os("ONE_FILE") {
        // A native 8-bit 1024x768 file whose pixel data ends it (the public samples).
        let bytes = std::fs::read(path).unwrap();
        let spp: u16 = std::env::var("ONE_SPP").map_or(1, |v| v.parse().unwrap());
        let p = if spp == 3 {
            umbra_pixels::Photometric::Rgb
        } else {
            umbra_pixels::Photometric::Monochrome2
        };
        let mut img = umbra_pixels::Image::new(768, 1024, spp, 8, 8, false, p, 1);
        let len = img.frame_len();
        img.data = bytes[bytes.len() - len..].to_vec();
        for r in umbra_pixels::detect::find_text(&img, 0, &umbra_pixels::detect::Params::default())
        {
            println!("found {r:?}");
        }
        return;
    }
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let s = textgen::sample(args[0], args[1]);
    for t in &s.truth {
        println!("truth {:?} {:?} x{} {:?}", t.rect, t.style, t.scale, t.text);
    }
    let found =
        umbra_pixels::detect::find_text(&s.img, 0, &umbra_pixels::detect::Params::default());
    for r in &found {
        println!("found {r:?}");
    }
}
