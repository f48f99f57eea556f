//! PII redaction at ingestion, a per-knowledge-base setting (`off`, `mask`,
//! `pseudonym`, `drop`) kept in the KB's meta table. Chunk text and headings
//! are redacted before they are embedded, indexed or stored, so the raw
//! values never reach the database, the FTS index or the vectors.
//! Pseudonyms use a random per-KB secret kept in the meta table (inside the
//! SQLCipher database, so encrypted under the workspace key and carried
//! through `tresor key rotate` unchanged: pseudonyms stay stable and the
//! vault stays readable after a rotation); their encrypted originals
//! (tresor-guard's vault) are kept in the meta table too.
//! Detection and redaction themselves live in tresor-guard.

use std::cell::RefCell;

use tresor_guard::redact::{self, PseudonymVault, Setting};

use crate::chunk::Chunk;
use crate::error::{KbError, Result};
use crate::store::Kb;

/// The meta key of the setting (the PostgreSQL store reads it too: source paths are redacted alike).
pub(crate) const SETTING_KEY: &str = "redact_pii";
const VAULT_KEY: &str = "pii_vault";
const SECRET_KEY: &str = "pii_pseudonym_secret";

/// What one ingest run applies to its chunks.
pub struct Redactor {
    setting: Setting,
    key: [u8; 32],
    vault: RefCell<PseudonymVault>,
    dirty: RefCell<bool>,
}

impl Redactor {
    /// Stores `requested` as the KB's setting when given, then loads the
    /// effective setting (and the vault for pseudonyms).
    pub fn open(kb: &mut Kb, requested: Option<Setting>) -> Result<Redactor> {
        if let Some(s) = requested {
            kb.set_meta_value(SETTING_KEY, s.as_str())?;
        }
        let setting = setting(kb)?;
        let mut key = [0u8; 32];
        let mut vault = PseudonymVault::new();
        if setting == Setting::Pseudonym {
            key = pseudonym_secret(kb)?;
            if let Some(json) = kb.meta_value(VAULT_KEY)? {
                vault = PseudonymVault::from_json(&json).map_err(|e| KbError::Invalid(e.to_string()))?;
            }
        }
        Ok(Redactor { setting, key, vault: RefCell::new(vault), dirty: RefCell::new(false) })
    }

    pub fn setting(&self) -> Setting {
        self.setting
    }

    pub fn text(&self, text: &str) -> String {
        match self.setting {
            Setting::Off => text.to_string(),
            Setting::Pseudonym => {
                let mut v = self.vault.borrow_mut();
                let before = v.len();
                let out = redact::apply(text, Setting::Pseudonym, Some((&self.key, &mut v)));
                if v.len() != before {
                    *self.dirty.borrow_mut() = true;
                }
                out
            }
            s => redact::apply(text, s, None),
        }
    }

    /// Redacts the text and heading of every chunk.
    pub fn chunks(&self, mut chunks: Vec<Chunk>) -> Vec<Chunk> {
        if self.setting != Setting::Off {
            for ch in &mut chunks {
                ch.text = self.text(&ch.text);
                ch.heading = self.text(&ch.heading);
            }
        }
        chunks
    }

    /// Persists new pseudonym vault entries.
    pub fn save(&self, kb: &mut Kb) -> Result<()> {
        if *self.dirty.borrow() {
            kb.set_meta_value(VAULT_KEY, &self.vault.borrow().to_json())?;
            *self.dirty.borrow_mut() = false;
        }
        Ok(())
    }
}

/// The KB's stored redaction setting (`off` when never set).
pub fn setting(kb: &Kb) -> Result<Setting> {
    match kb.meta_value(SETTING_KEY)? {
        None => Ok(Setting::Off),
        Some(s) => s.parse().map_err(|e: redact::RedactError| KbError::Invalid(e.to_string())),
    }
}

/// The vault of a pseudonymising KB and the key to open it (for `reveal`).
pub fn vault(kb: &Kb) -> Result<(PseudonymVault, [u8; 32])> {
    let key = pseudonym_secret(kb)?;
    let vault = match kb.meta_value(VAULT_KEY)? {
        Some(json) => PseudonymVault::from_json(&json).map_err(|e| KbError::Invalid(e.to_string()))?,
        None => PseudonymVault::new(),
    };
    Ok((vault, key))
}

/// The KB's pseudonym secret, created on first use. Not derived from the
/// data key: a key rotation must not change pseudonyms or orphan the vault.
fn pseudonym_secret(kb: &Kb) -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    match kb.meta_value(SECRET_KEY)? {
        Some(h) => {
            let bytes = hex::decode(h.trim()).map_err(|e| KbError::Invalid(format!("pseudonym secret in the meta table: {e}")))?;
            if bytes.len() != 32 {
                return Err(KbError::Invalid("pseudonym secret in the meta table is not 32 bytes".into()));
            }
            key.copy_from_slice(&bytes);
        }
        None => {
            use rand::RngCore;
            rand::rngs::OsRng.fill_bytes(&mut key);
            kb.set_meta_value(SECRET_KEY, &hex::encode(key))?;
        }
    }
    Ok(key)
}
