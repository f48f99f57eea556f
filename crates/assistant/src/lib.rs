//! Tresor's answer engine, in pipeline order:
//! [`text`] (normalise, language, sentences, terms) → [`route`] (small talk /
//! knowledge-base question / out of scope, and which chat model) →
//! follow-up rewriting ([`route::rewrite_follow_up`]) → retrieval (tresor-kb,
//! hybrid + rerank) → evidence threshold and context packing ([`pack`]) →
//! generation with numbered sources → citations attached after generation by
//! aligning each answer sentence with the passage that supports it best
//! ([`cite`]) → [`Answer`] with sources and a trace.
//! Around it: the semantic cache ([`cache`]), threads and feedback
//! ([`store`]), the chat-model seam ([`models`]) and scratch knowledge bases
//! for tests and measurement ([`scratch`]; the answer evaluation, benchmark and
//! attack runs live in tresor-bench). Front doors (CLI, HTTP, desktop) call
//! [`Assistant`] and hold no logic of their own.
#![forbid(unsafe_code)]

pub mod cache;
pub mod cite;
pub mod config;
pub mod engine;
pub mod error;
pub mod firewall;
pub mod history;
pub mod library;
pub mod memo;
pub mod models;
pub mod open;
pub mod pack;
pub mod policy;
pub mod route;
pub mod scratch;
pub mod store;
pub mod text;

pub use config::AssistantConfig;
pub use engine::{Answer, AskRequest, Assistant, ModelChoice, Source, Timings, Tokens, Trace};
pub use error::{AssistantError, Result};
pub use library::{KbSummary, Library, DEFAULT_KB};
pub use models::{CatalogModels, ChatModel, ModelSource};
pub use open::EnginePaths;
pub use route::Intent;
