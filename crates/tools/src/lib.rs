//! Tresor's action layer, read top-down:
//! [`understand`] (does the request need a tool, which one, and which
//! arguments did the user give — EN/DE dates and times resolved against a
//! fixed "now") → [`spec`] (the tools: names, descriptions, JSON Schemas,
//! side-effect class, timeout, retries) → [`schema`] (arguments checked with a
//! JSON-Schema library, never by hand) → [`actions`] (the state machine per
//! action with idempotency keys, stored in the workspace) → [`builtin`] (the
//! tools over the data an admin imported: prices, orders, calendar, tickets)
//! on [`store`] (`tools.sqlite`), filled by [`import`]; [`hours`] (opening
//! hours, free slots) and [`ics`] (iCalendar in and out) serve them.
//!
//! Owns: what a tool is and what running one means. Never: generation (the
//! engine fills free-text arguments with the model under a grammar), the
//! admin policy's decisions (the engine asks tresor-guard), or a door's
//! concerns (flags, HTTP).
#![forbid(unsafe_code)]

pub mod actions;
pub mod builtin;
pub mod error;
pub mod hours;
pub mod ics;
pub mod import;
pub mod schema;
pub mod spec;
pub mod store;
pub mod understand;

pub use actions::{Action, AuditFields, Confirmed, Executor, Outcome, Proposed, Status};
pub use builtin::{available, execute, export_ics, ExecCtx};
pub use error::ToolError;
pub use hours::{OpeningHours, Slot};
pub use import::{import_calendar, import_orders, import_prices, ImportReport};
pub use spec::{builtin_spec, builtins, SideEffect, ToolSource, ToolSpec};
pub use store::{Appointment, ToolStore, Ticket};
