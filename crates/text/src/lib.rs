//! Tresor's text rules, in one place for the knowledge base, the assistant
//! and the guard: [`lang`] (German or English), [`words`] (word splitting,
//! stopwords, Snowball stemming) and [`sentences`] (one abbreviation-aware
//! splitter, over a whole text or a stream of pieces).
//!
//! Owns how text is cut into languages, words and sentences; never stores,
//! embeds or judges text (what a sentence means is the callers' business),
//! and depends on no other Tresor crate.

#![forbid(unsafe_code)]

pub mod lang;
pub mod sentences;
pub mod words;

pub use lang::{detect, language, Lang};
pub use sentences::{sentence_ranges, sentences, SentenceStream, Splitter};
pub use words::{is_stopword, stem, words};
