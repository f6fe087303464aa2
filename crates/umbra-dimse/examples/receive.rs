//! A storage SCP writing Part 10 files: `receive AE_TITLE PORT DIR [--no-fsync]`.
//! Stops after standard input closes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use umbra_dimse::{
    AssociationInfo, Listener, Scp, ScpConfig, Status, StoreHandler, StoreRequest, StoreSink,
    part10_header,
};

struct Handler {
    dir: PathBuf,
    fsync: bool,
    next: AtomicU64,
}

struct Sink {
    file: BufWriter<File>,
    path: PathBuf,
    fsync: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl StoreSink for Sink {
    fn commit(mut self: Box<Self>) -> Status {
        let done = self.file.flush().and_then(|()| {
            if self.fsync {
                self.file.get_ref().sync_all()
            } else {
                Ok(())
            }
        });
        match done {
            Ok(()) => Status::SUCCESS,
            Err(_) => Status::OUT_OF_RESOURCES,
        }
    }
    fn abort(self: Box<Self>) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl StoreHandler for Handler {
    fn begin(
        &self,
        assoc: &AssociationInfo,
        req: &StoreRequest,
    ) -> Result<Box<dyn StoreSink>, Status> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n:08}.dcm"));
        let file = File::create(&path).map_err(|_| Status::OUT_OF_RESOURCES)?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(&part10_header(
            &req.sop_class_uid,
            &req.sop_instance_uid,
            &req.transfer_syntax_uid,
            &assoc.calling_ae,
        ))
        .map_err(|_| Status::OUT_OF_RESOURCES)?;
        Ok(Box::new(Sink {
            file,
            path,
            fsync: self.fsync,
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ae, port, dir, rest @ ..] = args.as_slice() else {
        return Err("usage: receive AE_TITLE PORT DIR [--no-fsync]".into());
    };
    let handler = Handler {
        dir: PathBuf::from(dir),
        fsync: !rest.iter().any(|a| a == "--no-fsync"),
        next: AtomicU64::new(0),
    };
    let scp = Scp::new(ScpConfig::new(ae.as_str()), handler);
    let listener = Listener::bind(("0.0.0.0", port.parse::<u16>()?), scp, 16)?;
    let (stop, thread) = listener.spawn()?;
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    stop.shutdown();
    thread.join().map_err(|_| "listener panicked")??;
    Ok(())
}
