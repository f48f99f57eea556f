//! Request understanding: which tool (if any) a message asks for, and the
//! arguments it gives — pure functions of the text, a fixed "now" and the
//! tool cards, no model and no I/O.
//!
//! Read top-down: [`understand`] (one message → tool, arguments, missing
//! fields) and [`fill`] (the follow-up message that supplies a missing
//! field) → [`route`] (which tool, rules then similarity, thresholds in its
//! doc) → [`extract`] (order ids, priority, ticket text, topic, product) and
//! [`when`] (dates, times, durations in EN/DE against now).
//!
//! Owns: the arguments the *user said*. Never: invents a value — a date, a
//! time, an order id or a problem text that is not in the message goes to
//! `missing`; the only values not said are the schema's defaults
//! (`duration_minutes` 30, `priority` "normal"). Never validates against the
//! JSON Schema or runs a tool (the engine and `spec`/`builtin` do).
//!
//! Arguments produced per built-in (a subset of each tool's schema):
//! - `price_lookup`: `product` (the named product, request phrasing removed);
//! - `order_status`: `order_id` (upper case, as written; a space becomes `-`);
//! - `book_appointment`: `date` (`YYYY-MM-DD`), `time` (`HH:MM`),
//!   `duration_minutes` (said, or 30), `topic` (when said);
//! - `create_ticket`: `subject`, `description`, `priority` (said or implied, or "normal").
//!
//! Other tools (MCP) are routed only: their arguments are the model's to
//! fill under the grammar, so `arguments` is empty and `missing` too.

pub mod extract;
mod lex;
pub mod route;
pub mod when;

use jiff::Zoned;
use serde_json::{Map, Value};
use tresor_text::Lang;

pub use route::{route, route_with, RouteDecision, Similarity, ToolCard};

pub const PRICE_LOOKUP: &str = "price_lookup";
pub const ORDER_STATUS: &str = "order_status";
pub const BOOK_APPOINTMENT: &str = "book_appointment";
pub const CREATE_TICKET: &str = "create_ticket";

/// What a message asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    /// The tool to call, `None` when the message needs none.
    pub tool: Option<String>,
    /// The arguments the message gives (plus schema defaults).
    pub arguments: Map<String, Value>,
    /// Required fields of `tool` the message does not give.
    pub missing: Vec<String>,
    pub lang: Lang,
    pub route: RouteDecision,
}

/// Required arguments of a built-in (what `missing` is checked against).
pub fn required(tool: &str) -> &'static [&'static str] {
    match tool {
        PRICE_LOOKUP => &["product"],
        ORDER_STATUS => &["order_id"],
        BOOK_APPOINTMENT => &["date", "time"],
        CREATE_TICKET => &["subject", "description"],
        _ => &[],
    }
}

/// Understand one message: route it, then read the chosen built-in's
/// arguments from it.
pub fn understand(text: &str, now: &Zoned, tools: &[ToolCard]) -> Understanding {
    understand_with(text, now, tools, None)
}

/// [`understand`] with a similarity callback for the router.
pub fn understand_with(text: &str, now: &Zoned, tools: &[ToolCard], sim: Option<Similarity>) -> Understanding {
    let lang = tresor_text::language(text);
    let decision = route_with(text, lang, tools, sim);
    let (arguments, missing) = match decision.tool.as_deref() {
        Some(tool) => arguments_for(tool, text, now),
        None => (Map::new(), Vec::new()),
    };
    Understanding { tool: decision.tool.clone(), arguments, missing, lang, route: decision }
}

fn arguments_for(tool: &str, text: &str, now: &Zoned) -> (Map<String, Value>, Vec<String>) {
    let mut args = Map::new();
    match tool {
        PRICE_LOOKUP => {
            if let Some(p) = extract::product(text) {
                args.insert("product".into(), p.into());
            }
        }
        ORDER_STATUS => {
            if let Some(id) = extract::order_id(text) {
                args.insert("order_id".into(), id.into());
            }
        }
        BOOK_APPOINTMENT => {
            let w = when::resolve(text, now);
            put_when(&mut args, &w);
            args.insert("duration_minutes".into(), w.duration_minutes.unwrap_or(30).into());
            if let Some(t) = extract::topic(text, &w.spans) {
                args.insert("topic".into(), t.into());
            }
        }
        CREATE_TICKET => {
            if let Some(d) = extract::ticket_description(text) {
                args.insert("subject".into(), extract::ticket_subject(&d).into());
                args.insert("description".into(), d.into());
            }
            args.insert("priority".into(), extract::priority(text).unwrap_or("normal").into());
        }
        _ => {}
    }
    let missing = missing_of(tool, &args);
    (args, missing)
}

fn put_when(args: &mut Map<String, Value>, w: &when::When) {
    if let Some(d) = w.date {
        args.insert("date".into(), when::fmt_date(d).into());
    }
    if let Some(t) = w.time {
        args.insert("time".into(), when::fmt_time(t).into());
    }
}

fn missing_of(tool: &str, args: &Map<String, Value>) -> Vec<String> {
    required(tool)
        .iter()
        .filter(|f| args.get(**f).is_none_or(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())))
        .map(|f| f.to_string())
        .collect()
}

/// A follow-up message fills what an earlier one left out ("um 14 Uhr",
/// "NL-10240", "tomorrow at 10", the problem text of a ticket). A value the
/// reply states replaces the earlier one (a correction: "no, at 3pm");
/// what it does not state stays. Returns the arguments and what is still
/// missing.
pub fn fill(tool: &str, arguments: &Map<String, Value>, text: &str, now: &Zoned) -> (Map<String, Value>, Vec<String>) {
    let mut args = arguments.clone();
    let before = missing_of(tool, &args);
    match tool {
        PRICE_LOOKUP => {
            let p = extract::product(text).or_else(|| Some(text.trim().to_string()).filter(|s| !s.is_empty()));
            if let Some(p) = p.filter(|_| before.iter().any(|f| f == "product")) {
                args.insert("product".into(), p.into());
            }
        }
        ORDER_STATUS => {
            if let Some(id) = extract::order_id_reply(text) {
                args.insert("order_id".into(), id.into());
            }
        }
        BOOK_APPOINTMENT => {
            let w = if before.iter().any(|f| f == "time") { when::resolve_reply(text, now) } else { when::resolve(text, now) };
            put_when(&mut args, &w);
            if let Some(d) = w.duration_minutes {
                args.insert("duration_minutes".into(), d.into());
            }
            if !args.contains_key("duration_minutes") {
                args.insert("duration_minutes".into(), 30.into());
            }
            if !args.contains_key("topic") {
                if let Some(t) = extract::topic(text, &w.spans) {
                    args.insert("topic".into(), t.into());
                }
            }
        }
        CREATE_TICKET => {
            if before.iter().any(|f| f == "description" || f == "subject") {
                // the reply is the problem text, with or without a request around it
                let d = extract::ticket_description(text).or_else(|| {
                    let t = text.trim();
                    (t.split_whitespace().count() >= 2).then(|| t.to_string())
                });
                if let Some(d) = d {
                    if args.get("description").is_none_or(|v| v.as_str().is_none_or(|s| s.trim().is_empty())) {
                        args.insert("description".into(), d.clone().into());
                    }
                    if args.get("subject").is_none_or(|v| v.as_str().is_none_or(|s| s.trim().is_empty())) {
                        args.insert("subject".into(), extract::ticket_subject(&d).into());
                    }
                }
            }
            if let Some(p) = extract::priority(text) {
                args.insert("priority".into(), p.into());
            } else if !args.contains_key("priority") {
                args.insert("priority".into(), "normal".into());
            }
        }
        _ => {}
    }
    let missing = missing_of(tool, &args);
    (args, missing)
}

/// Cards for the four built-ins (descriptions and examples in EN and DE),
/// for the router when the caller has no cards of its own.
pub fn builtin_cards() -> Vec<ToolCard> {
    let card = |name: &str, en: &str, de: &str, examples: &[&str], read_only: bool| ToolCard {
        name: name.into(),
        description_en: en.into(),
        description_de: de.into(),
        examples: examples.iter().map(|s| s.to_string()).collect(),
        read_only,
    };
    vec![
        card(
            PRICE_LOOKUP,
            "Look up the price of a product by name or SKU.",
            "Den Preis eines Produkts nach Name oder Artikelnummer nachschlagen.",
            &["How much is the firewall appliance?", "Was kostet das Headset?", "Price for SKU HW-1"],
            true,
        ),
        card(
            ORDER_STATUS,
            "Check the status of an order by its order id.",
            "Den Status einer Bestellung anhand der Bestellnummer prüfen.",
            &["Where is my order AB-12345?", "Wo ist meine Bestellung?", "Status of order 4711"],
            true,
        ),
        card(
            BOOK_APPOINTMENT,
            "Book an appointment at a date and time within opening hours.",
            "Einen Termin zu Datum und Uhrzeit innerhalb der Öffnungszeiten buchen.",
            &["Book me an appointment tomorrow at 10", "Ich hätte gern am Montag um 14 Uhr einen Termin"],
            false,
        ),
        card(
            CREATE_TICKET,
            "Open a support ticket with a subject, a description and a priority.",
            "Ein Support-Ticket mit Betreff, Beschreibung und Priorität anlegen.",
            &["Please open a ticket: the printer is broken", "Bitte ein Ticket anlegen: VPN fällt aus"],
            false,
        ),
    ]
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
