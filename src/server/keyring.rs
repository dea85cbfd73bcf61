//! The token keys this node signs and checks with, read from the file every node has
//! (`config::TOKEN_KEYS_FILE`) and read again when it changes, so `ticket key rotate` on every
//! node takes effect without a restart.
//!
//! What it does not do: write the file (`ticket key rotate` does), or keep sessions.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use crate::domain::auth::TokenKey;

/// How often the file's modification time is looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

pub struct Keyring {
    path: PathBuf,
    inner: RwLock<Loaded>,
}

struct Loaded {
    keys: Vec<TokenKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl Keyring {
    /// Reads the file; a node without its token keys cannot start.
    pub fn open(path: PathBuf) -> anyhow::Result<Keyring> {
        let keys = crate::pki::read_token_keys(&path)?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(Keyring {
            path,
            inner: RwLock::new(Loaded {
                keys,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// Reads the file again if it changed; a file that became unreadable or empty keeps the
    /// keys already loaded (and says so), rather than lock every user out.
    fn refresh(&self) {
        let due = {
            let loaded = self.inner.read().unwrap_or_else(|e| e.into_inner());
            loaded.checked.elapsed() >= RECHECK
        };
        if !due {
            return;
        }
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut loaded = self.inner.write().unwrap_or_else(|e| e.into_inner());
        loaded.checked = Instant::now();
        if modified == loaded.modified {
            return;
        }
        match crate::pki::read_token_keys(&self.path) {
            Ok(keys) => {
                let newest = keys.last().map(|k| k.version);
                tracing::info!(?newest, "token keys read again");
                loaded.keys = keys;
                loaded.modified = modified;
            }
            Err(e) => tracing::warn!(error = %e, "token keys unreadable; keeping the old ones"),
        }
    }

    /// The key new tokens are signed with: the newest version.
    pub fn signing(&self) -> Option<TokenKey> {
        self.refresh();
        let loaded = self.inner.read().unwrap_or_else(|e| e.into_inner());
        loaded.keys.last().cloned()
    }

    /// The secret of key `version`, if this node has it.
    pub fn secret(&self, version: u32) -> Option<[u8; 32]> {
        self.refresh();
        let loaded = self.inner.read().unwrap_or_else(|e| e.into_inner());
        loaded
            .keys
            .iter()
            .find(|k| k.version == version)
            .map(|k| k.secret)
    }
}
