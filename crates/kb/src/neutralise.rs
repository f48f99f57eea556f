//! Ingestion's sentence-level repair of flagged chunks (issue #18): a chunk the
//! injection screen flagged loses its injected sentences
//! ([`tresor_guard::injection::neutralise`]) and the rest is kept, re-embedded
//! and screened again; the cut sentences are quarantined on their own, so
//! `kb` review commands show exactly what was cut.
//!
//! Owns: building the repaired chunk, its embedding and the quarantine record
//! of the cut. Never: writes to the store (ingest does) or decides the policy.

use tresor_guard::injection::{neutralise::neutralise, Detector, Verdict};

use crate::chunk::{embedding_text, Chunk};
use crate::embed::TextEmbedder;
use crate::error::Result;

/// A flagged chunk's repair: what is kept and what is quarantined.
pub struct Repair {
    /// The chunk without its injected sentences.
    pub kept: Chunk,
    pub embedding: Vec<f32>,
    /// The cut sentences, as a chunk to quarantine (same heading and page).
    pub cut: Chunk,
    /// The original verdict's reasons, prefixed with what was done.
    pub reasons: Vec<String>,
}

/// The reason prefix of a quarantine record that holds only the sentences cut from a kept chunk.
pub const CUT_REASON: &str = "cut: injected sentences removed, the rest of the chunk was kept";

/// Repairs the flagged chunks among `chunks` (`verdicts[i]` flagged): None
/// for a chunk that is not flagged, has nothing to cut, has nothing left
/// after the cut, or whose remainder the screen still flags.
pub fn repair_flagged(
    chunks: &[Chunk],
    verdicts: &[Option<Verdict>],
    title: &str,
    embedder: &dyn TextEmbedder,
    det: &Detector,
    use_clf: bool,
) -> Result<Vec<Option<Repair>>> {
    let mut cands: Vec<(usize, Chunk, Chunk, Vec<String>)> = Vec::new();
    for (i, (ch, v)) in chunks.iter().zip(verdicts).enumerate() {
        let Some(v) = v.as_ref().filter(|v| v.injection) else { continue };
        let Some(n) = neutralise(&ch.text) else { continue };
        if n.text.split_whitespace().count() < 3 {
            continue;
        }
        // token count scaled by the share of text kept (the chunker's budget, not an exact count)
        let tokens = (ch.tokens * n.text.len() / ch.text.len().max(1)).max(1);
        let kept = Chunk { text: n.text, tokens, ..ch.clone() };
        let cut = Chunk { text: n.cut.join("\n"), ..ch.clone() };
        let mut reasons = vec![CUT_REASON.to_string()];
        reasons.extend(v.reasons.iter().cloned());
        cands.push((i, kept, cut, reasons));
    }
    let mut out: Vec<Option<Repair>> = (0..chunks.len()).map(|_| None).collect();
    if cands.is_empty() {
        return Ok(out);
    }
    let texts: Vec<String> = cands.iter().map(|(_, k, _, _)| embedding_text(title, &k.heading, &k.text)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vecs = embedder.embed(&refs)?;
    for ((i, kept, cut, reasons), v) in cands.into_iter().zip(vecs) {
        let again = if use_clf { det.detect_one(&kept.text, &v).ok() } else { None }.unwrap_or_else(|| det.detect_rules_only(&kept.text));
        if !again.injection {
            out[i] = Some(Repair { kept, embedding: v, cut, reasons });
        }
    }
    Ok(out)
}
