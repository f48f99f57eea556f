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

mod act;
mod cache;
pub mod choice;
mod cite;
mod config;
mod engine;
mod error;
mod firewall;
pub mod handoff;
mod history;
pub mod library;
mod memo;
pub mod models;
pub mod open;
mod pack;
mod policy;
pub mod release;
pub mod remote;
mod route;
pub mod scratch;
pub mod store;
mod telemetry;
pub mod text;
pub mod tools_data;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

// What the doors need, curated; the pipeline's modules stay private.
pub use act::functions::{FunctionCall, FunctionDef, FunctionOutcome, FunctionRequest, ToolChoice, ToolResult};
pub use act::{ActionReport, FillMode, ToolsConfig};
pub use tresor_tools::actions::{Action, Outcome as ActionOutcome, Status as ActionStatus};
pub use tresor_tools::spec::ToolSpec;
pub use cache::CacheStats;
pub use cite::SentenceCheck;
pub use config::AssistantConfig;
pub use engine::{prompt_messages, Answer, AskRequest, Assistant, Metrics, ModelChoice, PassageTrace, Regeneration, Source, Timings, Tokens, Trace};
pub use firewall::{InjectionConfig, InjectionTrace};
pub use handoff::{EndOutcome, FeedbackOutcome, HandoffConfig, HandoffDesk, HandoffReceipt, HandoffRequest, Ticket};
pub use history::HistoryTrace;
pub use pack::{PackReport, Passage};
pub use policy::{audit_kb_change, PolicyGate, Precheck};
pub use route::RouteChoice;
pub use error::{AssistantError, Result};
pub use library::{KbSummary, Library, DEFAULT_KB};
pub use models::{CatalogModels, ChatModel, ModelSource};
pub use open::EnginePaths;
pub use remote::{BackendTrace, RemoteChat, WithRemote};
pub use route::Intent;
// the measurement layer the facade records into (events, KPIs, dashboard data)
pub use tresor_telemetry;
