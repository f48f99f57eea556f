//! German/English detection for the knowledge base: picks a chunk's
//! stemmer and labels documents (`lang` in metadata). The detector and the
//! [`Lang`] enum live in `tresor_text::lang` (one rule for kb, assistant
//! and guard); this module keeps the `tresor_kb::lang` paths working.
//!
//! Owns nothing of its own; never a second detector.

pub use tresor_text::lang::{detect, Lang};
