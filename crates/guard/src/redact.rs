//! Redaction of detected PII: mask (`[EMAIL]`), stable pseudonym per
//! workspace (`[PERSON_7f3a9c21]`, HMAC-SHA256 under the workspace key), or
//! drop. Pseudonyms are one-way for anyone without the key; the
//! [`PseudonymVault`] keeps each original encrypted (ChaCha20-Poly1305 under
//! a key derived from the workspace key) so the key holder can reverse them.
//!
//! [`for_log`] is what every log line, telemetry record and audit entry that
//! may carry user text goes through.
//!
//! Never: writes files other than through the caller, logs the originals,
//! or keeps keys beyond a call.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pii::{self, PiiSpan, PiiType};

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("unknown redaction mode {0:?} (expected off, mask, pseudonym or drop)")]
    UnknownMode(String),
    #[error("pseudonym {0} is not in the vault")]
    NotInVault(String),
    #[error("the pseudonym vault entry for {0} does not decrypt with this key")]
    WrongKey(String),
    #[error("pseudonym vault is corrupt: {0}")]
    Corrupt(String),
}

/// How detected spans are replaced.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// `[EMAIL]`, `[PERSON]`, ...
    Mask,
    /// `[PERSON_7f3a9c21]`: the same value gives the same token under the same key.
    Pseudonym(&'a [u8; 32]),
    /// The span is removed.
    Drop,
}

/// A per-knowledge-base redaction setting as stored and typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    #[default]
    Off,
    Mask,
    Pseudonym,
    Drop,
}

impl Setting {
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Off => "off",
            Setting::Mask => "mask",
            Setting::Pseudonym => "pseudonym",
            Setting::Drop => "drop",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Setting {
    type Err = RedactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Setting::Off,
            "mask" => Setting::Mask,
            "pseudonym" | "pseudonymize" | "pseudonymise" => Setting::Pseudonym,
            "drop" => Setting::Drop,
            other => return Err(RedactError::UnknownMode(other.to_string())),
        })
    }
}

/// Replaces `spans` (code-point offsets, as from [`pii::detect`]) in `text`.
pub fn redact(text: &str, spans: &[PiiSpan], mode: Mode<'_>) -> String {
    replace(text, spans, |kind, original| match mode {
        Mode::Mask => Some(format!("[{kind}]")),
        Mode::Pseudonym(key) => Some(pseudonym(key, kind, original)),
        Mode::Drop => None,
    })
}

/// Pseudonymises `spans` and records every original in `vault`, so that
/// [`PseudonymVault::reveal`] / [`PseudonymVault::unredact`] can reverse it
/// with the same key.
pub fn pseudonymize(text: &str, spans: &[PiiSpan], key: &[u8; 32], vault: &mut PseudonymVault) -> String {
    replace(text, spans, |kind, original| {
        let token = pseudonym(key, kind, original);
        vault.insert(key, &token, original);
        Some(token)
    })
}

/// Detects and masks all PII in `text`: for log lines, telemetry and the
/// audit log.
pub fn for_log(text: &str) -> String {
    let spans = pii::detect(text);
    if spans.is_empty() {
        return text.to_string();
    }
    redact(text, &spans, Mode::Mask)
}

/// Detects and redacts per a stored [`Setting`]. `Pseudonym` needs the key
/// and the vault; without them it falls back to masking (never to the
/// original text).
pub fn apply(text: &str, setting: Setting, key: Option<(&[u8; 32], &mut PseudonymVault)>) -> String {
    if setting == Setting::Off {
        return text.to_string();
    }
    let spans = pii::detect(text);
    if spans.is_empty() {
        return text.to_string();
    }
    match (setting, key) {
        (Setting::Pseudonym, Some((k, vault))) => pseudonymize(text, &spans, k, vault),
        (Setting::Drop, _) => redact(text, &spans, Mode::Drop),
        _ => redact(text, &spans, Mode::Mask),
    }
}

fn replace(text: &str, spans: &[PiiSpan], mut with: impl FnMut(PiiType, &str) -> Option<String>) -> String {
    let mut sorted: Vec<&PiiSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| s.start);
    // code-point -> byte offsets in one pass
    let bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).chain(std::iter::once(text.len())).collect();
    let at = |ch: usize| bytes[ch.min(bytes.len() - 1)];
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for s in sorted {
        let (b0, b1) = (at(s.start), at(s.end));
        if b0 < pos || b1 <= b0 {
            continue; // overlapping or empty span
        }
        out.push_str(&text[pos..b0]);
        match with(s.kind, &text[b0..b1]) {
            Some(r) => out.push_str(&r),
            None => {
                // dropping: do not leave a double space behind
                if out.ends_with(' ') && text[b1..].starts_with([' ', ',', '.', ')']) {
                    out.pop();
                }
            }
        }
        pos = b1;
    }
    out.push_str(&text[pos..]);
    out
}

// ------------------------------------------------------------------ pseudonyms

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let ih = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize().into()
}

fn subkey(key: &[u8; 32], purpose: &str) -> [u8; 32] {
    hmac_sha256(key, purpose.as_bytes())
}

/// The value a pseudonym is computed from: case and separators do not
/// change who or what it is (`DE89 3704…` == `DE893704…`).
fn normalize(kind: PiiType, value: &str) -> String {
    match kind {
        PiiType::Iban | PiiType::CreditCard | PiiType::TaxId | PiiType::Ssn | PiiType::Phone => {
            value.chars().filter(|c| c.is_alphanumeric() || *c == '+').collect::<String>().to_uppercase()
        }
        _ => value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase(),
    }
}

/// `[TYPE_xxxxxxxx]`: 32 bits of HMAC-SHA256(workspace key, type, value).
pub fn pseudonym(key: &[u8; 32], kind: PiiType, value: &str) -> String {
    let k = subkey(key, "tresor/pii/pseudonym/v1");
    let mut msg = kind.as_str().as_bytes().to_vec();
    msg.push(0);
    msg.extend_from_slice(normalize(kind, value).as_bytes());
    let mac = hmac_sha256(&k, &msg);
    format!("[{}_{}]", kind.as_str(), hex::encode(&mac[..4]))
}

/// Encrypted originals of pseudonyms, keyed by token. Serialises to JSON
/// (base64 nonce and ciphertext); holds no plaintext.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PseudonymVault {
    entries: BTreeMap<String, VaultEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct VaultEntry {
    nonce: String,
    ct: String,
}

impl PseudonymVault {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
        let k = subkey(key, "tresor/pii/vault/v1");
        ChaCha20Poly1305::new(Key::from_slice(&k))
    }

    /// Records `original` under `token` (kept if already there).
    pub fn insert(&mut self, key: &[u8; 32], token: &str, original: &str) {
        if self.entries.contains_key(token) {
            return;
        }
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = Self::cipher(key)
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: original.as_bytes(), aad: token.as_bytes() })
            .expect("ChaCha20-Poly1305 encryption of a short string cannot fail");
        self.entries.insert(token.to_string(), VaultEntry { nonce: B64.encode(nonce), ct: B64.encode(ct) });
    }

    /// The original behind `token`; needs the key it was stored with.
    pub fn reveal(&self, key: &[u8; 32], token: &str) -> Result<String, RedactError> {
        let e = self.entries.get(token).ok_or_else(|| RedactError::NotInVault(token.to_string()))?;
        let nonce = B64.decode(&e.nonce).map_err(|err| RedactError::Corrupt(err.to_string()))?;
        let ct = B64.decode(&e.ct).map_err(|err| RedactError::Corrupt(err.to_string()))?;
        if nonce.len() != 12 {
            return Err(RedactError::Corrupt(format!("nonce of {} bytes", nonce.len())));
        }
        let pt = Self::cipher(key)
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad: token.as_bytes() })
            .map_err(|_| RedactError::WrongKey(token.to_string()))?;
        String::from_utf8(pt).map_err(|err| RedactError::Corrupt(err.to_string()))
    }

    /// Replaces every vault token found in `text` by its original.
    pub fn unredact(&self, key: &[u8; 32], text: &str) -> Result<String, RedactError> {
        let mut out = text.to_string();
        for token in self.entries.keys() {
            if out.contains(token.as_str()) {
                let original = self.reveal(key, token)?;
                out = out.replace(token.as_str(), &original);
            }
        }
        Ok(out)
    }

    /// Adds the entries of `other` (same key) that are not here yet.
    pub fn merge(&mut self, other: PseudonymVault) {
        for (k, v) in other.entries {
            self.entries.entry(k).or_insert(v);
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("vault serialises")
    }

    pub fn from_json(s: &str) -> Result<Self, RedactError> {
        serde_json::from_str(s).map_err(|e| RedactError::Corrupt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Herr Jürgen Weiß (juergen.weiss@example.de) zahlt von DE89 3704 0044 0532 0130 00.";

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn mask_mode() {
        let out = redact(TEXT, &pii::detect(TEXT), Mode::Mask);
        assert_eq!(out, "Herr [PERSON] ([EMAIL]) zahlt von [IBAN].");
        assert_eq!(for_log(TEXT), out);
        assert_eq!(for_log("nothing here"), "nothing here");
    }

    #[test]
    fn drop_mode() {
        let out = redact(TEXT, &pii::detect(TEXT), Mode::Drop);
        assert_eq!(out, "Herr () zahlt von.");
        assert!(!out.contains("Jürgen") && !out.contains("DE89"));
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_differ_across_keys() {
        let k1 = [7u8; 32];
        let k2 = [8u8; 32];
        let a = redact(TEXT, &pii::detect(TEXT), Mode::Pseudonym(&k1));
        let b = redact(TEXT, &pii::detect(TEXT), Mode::Pseudonym(&k1));
        let c = redact(TEXT, &pii::detect(TEXT), Mode::Pseudonym(&k2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("Herr [PERSON_") && !a.contains("Jürgen"), "{a}");
        // separators and case do not change the pseudonym
        assert_eq!(
            pseudonym(&k1, PiiType::Iban, "DE89 3704 0044 0532 0130 00"),
            pseudonym(&k1, PiiType::Iban, "DE89370400440532013000")
        );
        assert_ne!(pseudonym(&k1, PiiType::Person, "Anna Schmidt"), pseudonym(&k1, PiiType::Person, "Anna Schmitt"));
    }

    #[test]
    fn vault_reverses_only_with_the_key() {
        let key = [42u8; 32];
        let mut vault = PseudonymVault::new();
        let red = pseudonymize(TEXT, &pii::detect(TEXT), &key, &mut vault);
        assert_eq!(vault.len(), 3);
        let json = vault.to_json();
        assert!(!json.contains("Jürgen") && !json.contains("example.de") && !json.contains("3704"));
        let vault = PseudonymVault::from_json(&json).unwrap();
        assert_eq!(vault.unredact(&key, &red).unwrap(), TEXT);
        let token = red.split(['(', ')']).nth(1).unwrap();
        assert!(matches!(vault.reveal(&[1u8; 32], token), Err(RedactError::WrongKey(_))));
        assert!(matches!(vault.reveal(&key, "[EMAIL_00000000]"), Err(RedactError::NotInVault(_))));
    }

    #[test]
    fn settings_parse() {
        assert_eq!("mask".parse::<Setting>().unwrap(), Setting::Mask);
        assert_eq!("Pseudonym".parse::<Setting>().unwrap(), Setting::Pseudonym);
        assert!("blur".parse::<Setting>().is_err());
        let mut v = PseudonymVault::new();
        assert_eq!(apply(TEXT, Setting::Off, None), TEXT);
        assert!(!apply(TEXT, Setting::Pseudonym, Some((&[3u8; 32], &mut v))).contains("Jürgen"));
        assert_eq!(v.len(), 3);
        assert_eq!(apply(TEXT, Setting::Pseudonym, None), redact(TEXT, &pii::detect(TEXT), Mode::Mask));
    }
}
