//! Reading a key file written by `umbra keygen`.

use std::path::Path;
use umbra_core::Key;

/// Reads the key in `path`. Returns the key and warnings for the user (a key file others can
/// read); the error is one line naming the file, never the key.
pub fn read_key_file(path: &Path) -> Result<(Key, Vec<String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let mut warnings = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                warnings.push(format!(
                    "key file {} is readable by other users",
                    path.display()
                ));
            }
        }
    }
    let key = Key::from_hex(&text).map_err(|e| format!("key file {}: {e}", path.display()))?;
    Ok((key, warnings))
}
