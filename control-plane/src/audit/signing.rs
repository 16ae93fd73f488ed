//! The checkpoint signing key: Ed25519, generated on the server's first start as
//! `<data dir>/audit-signing.key` (hex seed, mode 0600), never stored in the database, so
//! someone who can write the database still cannot sign a checkpoint.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

pub const SIGNING_KEY_FILE: &str = "audit-signing.key";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read the audit signing key {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the audit signing key {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the audit signing key {0} is malformed (expected 64 hex characters)")]
    Malformed(PathBuf),
    #[error(
        "no audit signing key at {0} (the server creates it on its first start; \
         point --data-dir at the server's data directory)"
    )]
    Missing(PathBuf),
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(getrandom::Error),
}

pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(SIGNING_KEY_FILE)
}

/// The server's key: read from the data dir, or created there (mode 0600) on first start.
/// Returns whether it was created, so the server can say so once.
pub fn load_or_create(data_dir: &Path) -> Result<(SigningKey, bool), SigningKeyError> {
    let path = key_file(data_dir);
    if let Some(key) = read(&path)? {
        return Ok((key, false));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(SigningKeyError::Randomness)?;
    match write_new(&path, &seed) {
        Ok(()) => Ok((SigningKey::from_bytes(&seed), true)),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(&path)?
            .map(|k| (k, false))
            .ok_or(SigningKeyError::Malformed(path)),
        Err(source) => Err(SigningKeyError::Write { path, source }),
    }
}

/// The public half of the data dir's key, for `audit public-key` and for verifying.
pub fn public_key(data_dir: &Path) -> Result<VerifyingKey, SigningKeyError> {
    let path = key_file(data_dir);
    read(&path)?
        .map(|k| k.verifying_key())
        .ok_or(SigningKeyError::Missing(path))
}

/// True when group or others may read the key file.
pub fn is_exposed(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

fn read(path: &Path) -> Result<Option<SigningKey>, SigningKeyError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SigningKeyError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|seed| Some(SigningKey::from_bytes(&seed)))
        .ok_or_else(|| SigningKeyError::Malformed(path.to_owned()))
}

fn write_new(path: &Path, seed: &[u8; 32]) -> io::Result<()> {
    // create_new + mode: the file never exists with wider permissions, not even for a moment.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{}", hex::encode(seed))?;
    f.sync_all()
}

/// Parses a public key as printed by `audit public-key` (64 hex characters).
pub fn parse_public_key(s: &str) -> Option<VerifyingKey> {
    let bytes = hex::decode(s.trim()).ok()?;
    VerifyingKey::from_bytes(&<[u8; 32]>::try_from(bytes).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (key, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        let path = key_file(dir.path());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!is_exposed(&path));
        let (again, created) = load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.to_bytes(), key.to_bytes());
        assert_eq!(public_key(dir.path()).unwrap(), key.verifying_key());

        let printed = hex::encode(key.verifying_key().to_bytes());
        assert_eq!(parse_public_key(&printed), Some(key.verifying_key()));
        assert_eq!(parse_public_key("abc"), None);
    }

    #[test]
    fn missing_and_malformed_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            public_key(dir.path()),
            Err(SigningKeyError::Missing(_))
        ));
        fs::write(key_file(dir.path()), "not hex\n").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(SigningKeyError::Malformed(_))
        ));
    }
}
