//! The spool: received objects on disk, durable before they are acknowledged.
//!
//! ```text
//! SPOOL/incoming/ID.part     being received (removed if the sender breaks off)
//! SPOOL/objects/ID.dcm       received, fsync'ed, renamed: from here nothing is lost
//! SPOOL/quarantine/DEST/ID.dcm + ID.reason   objects DEST will not get, with the reason
//! SPOOL/keys/DEST.key        keys made on first start for destinations without key_file
//! SPOOL/queue.sqlite         the job queue (see queue.rs)
//! ```
//!
//! A received object is acknowledged only after its bytes and its directory entry are on disk
//! (`fsync` of the file, rename into `objects/`, `fsync` of the folder). The queue row is written
//! after that; at start the spool adds rows for any object the queue does not know, so a crash
//! between the two loses nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Handle on the spool folder.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// An object id: 32 hex digits, random (names files; says nothing about the object).
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // getrandom fails only without an OS random source; then fall back to time and counter,
    // which are unique within this spool.
    if getrandom::fill(&mut b).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b[..8].copy_from_slice(&t.to_be_bytes());
        b[8..].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    hex::encode(b)
}

/// Whether `s` is an id this spool made (guards paths built from ids read back).
pub fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Spool {
    /// Opens (creating) the spool at `root`; incoming leftovers of an earlier process (objects
    /// never acknowledged) are removed.
    pub fn open(root: &Path) -> io::Result<Spool> {
        for d in ["incoming", "objects", "quarantine", "keys"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // identifying data lives here: owner only
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))?;
        }
        for e in std::fs::read_dir(root.join("incoming"))? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".part") {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(Spool {
            root: root.to_path_buf(),
        })
    }

    /// The spool's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a received object.
    pub fn object(&self, id: &str) -> PathBuf {
        self.root.join("objects").join(format!("{id}.dcm"))
    }

    /// The quarantine folder of a destination.
    pub fn quarantine_dir(&self, dest: &str) -> PathBuf {
        self.root.join("quarantine").join(dest)
    }

    /// Path of the SQLite queue.
    pub fn queue_path(&self) -> PathBuf {
        self.root.join("queue.sqlite")
    }

    /// The key file made for a destination without `key_file`.
    pub fn key_path(&self, dest: &str) -> PathBuf {
        self.root.join("keys").join(format!("{dest}.key"))
    }

    /// Ids of every received object on disk.
    pub fn object_ids(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(self.root.join("objects"))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".dcm") {
                if is_id(id) {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Starts receiving a new object.
    pub fn receive(&self) -> io::Result<Incoming> {
        let id = new_id();
        let path = self.root.join("incoming").join(format!("{id}.part"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Incoming {
            id,
            path,
            file: Some(io::BufWriter::with_capacity(256 << 10, file)),
            objects: self.root.join("objects"),
        })
    }

    /// Free space on the spool's file system, in bytes.
    pub fn free_bytes(&self) -> io::Result<u64> {
        free_bytes(&self.root)
    }

    /// Moves (hard-links, else copies) a received object into a destination's quarantine with
    /// its reason. The reason names no identifier (the engine's reasons never do).
    pub fn quarantine(&self, dest: &str, id: &str, reason: &str) -> io::Result<()> {
        let dir = self.quarantine_dir(dest);
        std::fs::create_dir_all(&dir)?;
        let to = dir.join(format!("{id}.dcm"));
        if !to.exists() {
            let from = self.object(id);
            if std::fs::hard_link(&from, &to).is_err() {
                let tmp = dir.join(format!("{id}.dcm.part"));
                std::fs::copy(&from, &tmp)?;
                File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &to)?;
            }
        }
        write_durably(
            &dir.join(format!("{id}.reason")),
            format!("{reason}\n").as_bytes(),
        )?;
        sync_dir(&dir)
    }
}

/// An object being received: bytes go to `incoming/ID.part`; `commit` makes it durable.
pub struct Incoming {
    id: String,
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
    objects: PathBuf,
}

impl Incoming {
    /// The id the object will have.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Flushes, fsyncs, renames into `objects/` and fsyncs the folder. Only after this returns
    /// may the sender be told the object is stored.
    pub fn commit(mut self) -> io::Result<String> {
        let w = self.file.take().expect("commit once");
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let to = self.objects.join(format!("{}.dcm", self.id));
        std::fs::rename(&self.path, &to)?;
        sync_dir(&self.objects)?;
        Ok(std::mem::take(&mut self.id))
    }
}

impl Write for Incoming {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("object already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Incoming {
    /// Not committed: the partial file goes (the sender was never told it was stored).
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename (the folder is synced
/// by the caller when it matters).
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// fsync of a folder, so renames and new entries in it survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path has a NUL byte"))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer for statvfs.
    #[allow(unsafe_code)]
    let r = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `s`.
    #[allow(unsafe_code)]
    let s = unsafe { s.assume_init() };
    // (the field types differ between platforms)
    #[allow(clippy::unnecessary_cast)]
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_committed_objects_reach_objects_and_leftovers_go_at_open() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let mut a = s.receive().unwrap();
        a.write_all(b"abc").unwrap();
        let id = a.commit().unwrap();
        assert_eq!(std::fs::read(s.object(&id)).unwrap(), b"abc");
        let mut b = s.receive().unwrap();
        b.write_all(b"partial").unwrap();
        drop(b);
        assert_eq!(
            std::fs::read_dir(d.path().join("incoming"))
                .unwrap()
                .count(),
            0
        );
        // a leftover from a killed process
        std::fs::write(d.path().join("incoming/x.part"), b"x").unwrap();
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(d.path().join("incoming"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(s.object_ids().unwrap(), vec![id]);
        assert!(s.free_bytes().unwrap() > 0);
    }
}
