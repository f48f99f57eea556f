//! Questions without their text: a keyed id of the normalised question and a
//! topic cluster id (the keyed hash of its three most specific word stems),
//! both HMAC-SHA256 with a secret derived from the workspace key — the same
//! question gets the same id in one workspace and an unrelated one elsewhere;
//! nobody without the key can test a guess. The text itself only PII-masked,
//! and only when the settings opt in.
//!
//! Owns: the normalisation, the ids and the topic rule. Never: stores text
//! that was not masked.

use tresor_guard::crypto::WorkspaceKey;
use tresor_guard::redact::{for_log, hmac_sha256};
use zeroize::Zeroizing;

/// Derives question and topic ids for one workspace.
pub struct QuestionKeys {
    /// A subkey of the workspace key, zeroed on drop.
    secret: Zeroizing<[u8; 32]>,
}

impl QuestionKeys {
    pub fn new(key: &WorkspaceKey) -> QuestionKeys {
        QuestionKeys { secret: key.subkey("tresor-telemetry-question") }
    }

    /// The keyed id of `question` (case, whitespace and end punctuation ignored), 16 hex digits.
    pub fn question_id(&self, question: &str) -> String {
        self.id("q", &normalise(question))
    }

    /// The topic cluster: questions sharing their three most specific word stems share it.
    pub fn topic_id(&self, question: &str) -> String {
        self.id("t", &topic_terms(question).join(" "))
    }

    fn id(&self, domain: &str, text: &str) -> String {
        let mut msg = Vec::with_capacity(text.len() + 2);
        msg.extend_from_slice(domain.as_bytes());
        msg.push(0);
        msg.extend_from_slice(text.as_bytes());
        hex::encode(&hmac_sha256(&self.secret[..], &msg)[..8])
    }
}

/// The question as its id sees it: lower case, single spaces, no trailing `?!.`.
pub fn normalise(q: &str) -> String {
    let s = q.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    s.trim_end_matches(['?', '!', '.', ' ']).to_string()
}

/// The three longest distinct content-word stems (no stopwords, at least three letters), sorted.
pub fn topic_terms(q: &str) -> Vec<String> {
    let lower = q.to_lowercase();
    let lang = tresor_text::language(&lower);
    let mut stems: Vec<String> = tresor_text::words(&lower)
        .filter(|w| w.chars().count() >= 3 && !tresor_text::is_stopword(w))
        .map(|w| tresor_text::stem(w, lang))
        .collect();
    stems.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then(a.cmp(b)));
    stems.dedup();
    let mut top: Vec<String> = Vec::new();
    for s in stems {
        if !top.contains(&s) {
            top.push(s);
        }
        if top.len() == 3 {
            break;
        }
    }
    top.sort();
    top
}

/// The question's text for an event: PII-masked.
pub fn masked(q: &str) -> String {
    for_log(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keyed_and_topics_group_rephrasings() {
        let a = QuestionKeys::new(&WorkspaceKey::from_bytes([1; 32]));
        let b = QuestionKeys::new(&WorkspaceKey::from_bytes([2; 32]));
        assert_eq!(a.question_id("How many vacation days?"), a.question_id("  how many   VACATION days "));
        assert_ne!(a.question_id("How many vacation days?"), b.question_id("How many vacation days?"));
        assert_eq!(a.question_id("x").len(), 16);
        assert_eq!(
            a.topic_id("How many vacation days do employees get?"),
            a.topic_id("Employees: vacation days, how many?")
        );
        assert_ne!(a.topic_id("How many vacation days do employees get?"), a.topic_id("What is the parking policy for visitors?"));
        assert!(!masked("Mail me at jane.doe@example.com").contains("jane.doe"));
    }
}
