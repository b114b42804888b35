//! A mounted credentials file in the official INI format (`~/.alibabacloud/credentials`),
//! reloaded when it changes.
//!
//! ```ini
//! [default]
//! type = access_key            # or sts, with security_token
//! access_key_id = LTAI...
//! access_key_secret = ...
//! ```
//!
//! Change detection compares the file's metadata (modification time, size, inode) on each call
//! instead of running a watcher: a `stat` costs microseconds, it follows the symlink swap that
//! Kubernetes uses to update mounted Secrets, and it cannot miss an event.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        }
    }
}

/// Provider reading one profile of a credentials file.
#[derive(Debug)]
pub struct CredentialsFile {
    path: PathBuf,
    profile: String,
    loaded: Mutex<Option<(Fingerprint, Credentials)>>,
}

impl CredentialsFile {
    pub fn new(path: impl Into<PathBuf>, profile: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            profile: profile.into(),
            loaded: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn current(&self) -> Result<Credentials, CredentialsError> {
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| self.invalid(e))?;
        let fingerprint = Fingerprint::of(&meta);
        let cached = self.cached();
        if let Some((fp, creds)) = &cached
            && *fp == fingerprint
        {
            return Ok(creds.clone());
        }
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| self.invalid(e))?;
        match parse_ini(&text, &self.profile) {
            Ok(creds) => {
                if cached.is_some() {
                    tracing::info!(path = %self.path.display(), "credentials file changed; reloaded");
                }
                if let Ok(mut slot) = self.loaded.lock() {
                    *slot = Some((fingerprint, creds.clone()));
                }
                Ok(creds)
            }
            // A file caught half-written: keep the last good keys, try again on the next call.
            Err(e) => match cached {
                Some((_, creds)) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "credentials file unreadable; keeping previous keys");
                    Ok(creds)
                }
                None => Err(e),
            },
        }
    }

    fn cached(&self) -> Option<(Fingerprint, Credentials)> {
        self.loaded.lock().ok().and_then(|g| g.clone())
    }

    fn invalid(&self, e: std::io::Error) -> CredentialsError {
        CredentialsError::Invalid(format!("credentials file {}: {e}", self.path.display()))
    }
}

impl CredentialsProvider for CredentialsFile {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.current())
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

/// Reads `profile` from INI text. Error messages name keys, never values.
fn parse_ini(text: &str, profile: &str) -> Result<Credentials, CredentialsError> {
    let mut in_profile = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "access_key_id" => id = Some(v),
                "access_key_secret" => secret = Some(v),
                "security_token" => token = Some(v),
                _ => {}
            }
        }
    }
    let missing = |what: &str| {
        CredentialsError::Invalid(format!(
            "credentials file profile [{profile}] has no {what}"
        ))
    };
    if !found {
        return Err(CredentialsError::Invalid(format!(
            "credentials file has no profile [{profile}]"
        )));
    }
    let id = id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("access_key_id"))?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("access_key_secret"))?;
    let creds = Credentials::new(id, secret);
    Ok(match token.filter(|t| !t.is_empty()) {
        Some(t) => creds.with_security_token(t),
        None => creds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles() {
        let text = "[default]\ntype = access_key\naccess_key_id = A1\naccess_key_secret = S1\n\n[ops]\ntype = sts\naccess_key_id=A2\naccess_key_secret=S2\nsecurity_token=T2\n";
        let d = parse_ini(text, "default").unwrap();
        assert_eq!(d.access_key_id(), "A1");
        assert!(d.security_token().is_none());
        let o = parse_ini(text, "ops").unwrap();
        assert_eq!(o.security_token().map(|t| t.expose()), Some("T2"));
        assert!(parse_ini(text, "nope").is_err());
        let e = parse_ini("[default]\naccess_key_id=A\n", "default").unwrap_err();
        assert!(e.to_string().contains("access_key_secret"));
    }

    #[tokio::test]
    async fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[default]\naccess_key_id=A1\naccess_key_secret=S1\n").unwrap();
        let p = CredentialsFile::new(&path, "default");
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "A1");
        // Replace the file the way Kubernetes does: write a new one and rename it over.
        let tmp = dir.path().join("credentials.new");
        std::fs::write(&tmp, "[default]\naccess_key_id=A2\naccess_key_secret=S2\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "A2");
        // A broken rewrite keeps the last good keys.
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "A2");
    }
}
