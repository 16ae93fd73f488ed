//! The admin credential: `MODELGATE_MASTER_KEY`, else `<data dir>/master.key`, else a new key
//! written there with mode 0600. The key itself is never logged or printed.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::keys::{random_secret, RandomnessError};

pub const MASTER_KEY_FILE: &str = "master.key";
pub const MASTER_KEY_PREFIX: &str = "sk-mg-master-";

#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(String);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn new(key: String) -> Result<Self, MasterKeyError> {
        let key = key.trim().to_owned();
        // The key travels in an HTTP/2 header, so it must be visible ASCII.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MasterKeyError::Malformed);
        }
        Ok(Self(key))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so response timing says nothing about how much of a guess was right.
    /// Hashing first gives both sides the same length.
    pub fn matches(&self, presented: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented.as_bytes());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be non-empty printable ASCII without spaces")]
    Malformed,
    #[error("cannot read the master key file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the master key file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the master key file {0} is malformed")]
    MalformedFile(PathBuf),
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// Where the server's master key came from, for one informative log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(MASTER_KEY_FILE)
}

/// The server's master key: the given value (from the environment), else the data dir's file,
/// else a fresh key written to that file with mode 0600.
pub fn load_or_create(
    from_env: Option<String>,
    data_dir: &Path,
) -> Result<(MasterKey, MasterKeySource), MasterKeyError> {
    if let Some(key) = from_env.filter(|k| !k.trim().is_empty()) {
        return Ok((MasterKey::new(key)?, MasterKeySource::Environment));
    }
    let path = key_file(data_dir);
    if let Some(key) = read_file(&path)? {
        return Ok((key, MasterKeySource::File(path)));
    }
    let key = MasterKey(format!("{MASTER_KEY_PREFIX}{}", random_secret()?));
    match write_new(&path, &key) {
        Ok(()) => Ok((key, MasterKeySource::Generated(path))),
        // Another process (a second replica on the same data dir) won the race: use its key.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_file(&path)? {
            Some(key) => Ok((key, MasterKeySource::File(path))),
            None => Err(MasterKeyError::MalformedFile(path)),
        },
        Err(source) => Err(MasterKeyError::Write { path, source }),
    }
}

/// Reads the master key file; `Ok(None)` when it does not exist.
pub fn read_file(path: &Path) -> Result<Option<MasterKey>, MasterKeyError> {
    match fs::read_to_string(path) {
        Ok(s) => MasterKey::new(s)
            .map(Some)
            .map_err(|_| MasterKeyError::MalformedFile(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MasterKeyError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// True when group or others may read the file: worth a warning, since anyone who can read it
/// administers every key.
pub fn is_exposed(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

fn write_new(path: &Path, key: &MasterKey) -> io::Result<()> {
    // create_new + mode: the file never exists with wider permissions, not even for a moment.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{}", key.0)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_with_mode_0600_then_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (key, source) = load_or_create(None, dir.path()).unwrap();
        let path = key_file(dir.path());
        assert_eq!(source, MasterKeySource::Generated(path.clone()));
        assert!(key.expose().starts_with(MASTER_KEY_PREFIX));
        assert_eq!(key.expose().len(), MASTER_KEY_PREFIX.len() + 43);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!is_exposed(&path));

        let (again, source) = load_or_create(None, dir.path()).unwrap();
        assert_eq!(again, key);
        assert_eq!(source, MasterKeySource::File(path));
    }

    #[test]
    fn environment_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (key, source) = load_or_create(Some("from-env".into()), dir.path()).unwrap();
        assert_eq!(key.expose(), "from-env");
        assert_eq!(source, MasterKeySource::Environment);
        assert!(!key_file(dir.path()).exists());
    }

    #[test]
    fn blank_environment_falls_back_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, source) = load_or_create(Some("  ".into()), dir.path()).unwrap();
        assert!(matches!(source, MasterKeySource::Generated(_)));
    }

    #[test]
    fn malformed_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(key_file(dir.path()), "two words\n").unwrap();
        assert!(matches!(
            load_or_create(None, dir.path()),
            Err(MasterKeyError::MalformedFile(_))
        ));
    }

    #[test]
    fn matching_and_debug() {
        let key = MasterKey::new("sk-mg-master-abc".into()).unwrap();
        assert!(key.matches("sk-mg-master-abc"));
        assert!(!key.matches("sk-mg-master-abd"));
        assert!(!key.matches(""));
        assert!(!format!("{key:?}").contains("abc"));
    }
}
