//! Tresor's guard layer: what every step of ingestion, answering, logging and
//! the server passes through so that the user's data stays protected.
//! In the order a request meets them:
//! [`workspace`] (which tenant's data, keys and tokens) → [`crypto`] (keys and
//! encryption at rest) → [`pii`] / [`redact`] (find and mask personal data) →
//! [`injection`] (untrusted text is data, never instructions) → [`policy`]
//! (what an admin allows) → [`audit`] (tamper-evident record of what happened).
//! This crate never loads a model or opens a knowledge base itself: callers
//! pass embeddings in where a check needs them.
#![forbid(unsafe_code)]

pub mod audit;
pub mod crypto;
pub mod injection;
pub mod pii;
pub mod policy;
pub mod private;
pub mod redact;
pub mod widget;
pub mod workspace;
