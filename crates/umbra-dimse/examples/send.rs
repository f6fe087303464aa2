//! Sends Part 10 files to a storage SCP: `send CALLED_AE HOST PORT FILE...`.

use std::path::PathBuf;

use umbra_dimse::{PeerConfig, Proposals, Scu};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [called, host, port, files @ ..] = args.as_slice() else {
        return Err("usage: send CALLED_AE HOST PORT FILE...".into());
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    let (proposals, _) = Proposals::for_files(&files);
    let peer = PeerConfig::new(called.as_str(), host.as_str(), port.parse()?, "UMBRA");
    let mut scu = Scu::associate(&peer, &proposals.verification())?;
    for f in &files {
        match scu.store_file(f) {
            Ok(rsp) => println!("{}: {}", f.display(), rsp.status),
            Err(e) => println!("{}: {e}", f.display()),
        }
    }
    scu.release()?;
    Ok(())
}
