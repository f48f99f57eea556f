//! What a tool is: name, descriptions (EN/DE), the JSON Schema of its
//! arguments, side-effect class, timeout and retry policy, and where it
//! comes from (built in, or an MCP server).
//!
//! Owns: the four built-in tools' specs, whose names and schemas are a
//! contract (`tresor tools list --json` prints them; an outside checker
//! validates arguments against them with Python's `jsonschema`). Never:
//! running a tool (see `builtin` and `actions`) or deciding whether the
//! admin allows it (the engine asks the policy).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

/// Whether running a tool changes anything. Side effects always need the
/// user's confirmation; read-only tools run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideEffect {
    ReadOnly,
    SideEffect,
}

/// Where a tool comes from: `"builtin"` or `"mcp:SERVER"` when serialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolSource {
    Builtin,
    Mcp(String),
}

impl std::fmt::Display for ToolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolSource::Builtin => f.write_str("builtin"),
            ToolSource::Mcp(s) => write!(f, "mcp:{s}"),
        }
    }
}

impl std::str::FromStr for ToolSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "builtin" {
            return Ok(ToolSource::Builtin);
        }
        match s.strip_prefix("mcp:") {
            Some(name) if !name.is_empty() => Ok(ToolSource::Mcp(name.to_string())),
            _ => Err(format!("unknown tool source {s:?} (expected builtin or mcp:NAME)")),
        }
    }
}

impl Serialize for ToolSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ToolSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One tool. Serialises as `{name, description, description_de, schema,
/// side_effect, source}` (the `tresor tools list --json` contract); the
/// timeout and retry policy are runtime settings and not printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(rename = "description")]
    pub description_en: String,
    #[serde(default)]
    pub description_de: String,
    /// JSON Schema (draft 2020-12) of the arguments object.
    pub schema: Value,
    pub side_effect: SideEffect,
    #[serde(skip, default = "default_timeout")]
    pub timeout_ms: u64,
    /// At most this many attempts for transient failures (1 = no retry).
    #[serde(skip, default = "default_retries")]
    pub retries: u32,
    pub source: ToolSource,
}

fn default_timeout() -> u64 {
    10_000
}
fn default_retries() -> u32 {
    3
}

impl ToolSpec {
    pub fn is_read_only(&self) -> bool {
        self.side_effect == SideEffect::ReadOnly
    }
    pub fn is_builtin(&self) -> bool {
        self.source == ToolSource::Builtin
    }
}

pub const PRICE_LOOKUP: &str = "price_lookup";
pub const ORDER_STATUS: &str = "order_status";
pub const BOOK_APPOINTMENT: &str = "book_appointment";
pub const CREATE_TICKET: &str = "create_ticket";

fn builtin(name: &str, en: &str, de: &str, schema: Value, side_effect: SideEffect) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description_en: en.to_string(),
        description_de: de.to_string(),
        schema,
        side_effect,
        timeout_ms: 5_000,
        retries: 3,
        source: ToolSource::Builtin,
    }
}

/// The built-in tools, in a fixed order.
pub fn builtins() -> Vec<ToolSpec> {
    vec![
        builtin(
            PRICE_LOOKUP,
            "Look up the price of a product or service from the price list, by product name or SKU.",
            "Den Preis eines Produkts oder einer Dienstleistung aus der Preisliste nachschlagen, nach Produktname oder Artikelnummer (SKU).",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "product": {"type": "string", "minLength": 1, "description": "product name or SKU as the user said it"}
                },
                "required": ["product"],
                "additionalProperties": false
            }),
            SideEffect::ReadOnly,
        ),
        builtin(
            ORDER_STATUS,
            "Check the status of an order by its order id.",
            "Den Status einer Bestellung anhand ihrer Bestellnummer prüfen.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "minLength": 1, "description": "the order id, e.g. NL-10234"}
                },
                "required": ["order_id"],
                "additionalProperties": false
            }),
            SideEffect::ReadOnly,
        ),
        builtin(
            BOOK_APPOINTMENT,
            "Book an appointment in the company calendar at a free time within opening hours.",
            "Einen Termin im Firmenkalender zu einer freien Zeit innerhalb der Öffnungszeiten buchen.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "description": "YYYY-MM-DD"},
                    "time": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$", "description": "HH:MM, 24-hour"},
                    "duration_minutes": {"type": "integer", "minimum": 15, "maximum": 240, "default": 30},
                    "topic": {"type": "string"}
                },
                "required": ["date", "time"],
                "additionalProperties": false
            }),
            SideEffect::SideEffect,
        ),
        builtin(
            CREATE_TICKET,
            "Open a support ticket with a subject, a description and a priority.",
            "Ein Support-Ticket mit Betreff, Beschreibung und Priorität anlegen.",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "subject": {"type": "string", "minLength": 1},
                    "description": {"type": "string", "minLength": 1},
                    "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"}
                },
                "required": ["subject", "description"],
                "additionalProperties": false
            }),
            SideEffect::SideEffect,
        ),
    ]
}

/// The built-in tool called `name`.
pub fn builtin_spec(name: &str) -> Option<ToolSpec> {
    builtins().into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_the_list_contract() {
        let specs = builtins();
        assert_eq!(
            specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            [PRICE_LOOKUP, ORDER_STATUS, BOOK_APPOINTMENT, CREATE_TICKET]
        );
        let v = serde_json::to_value(&specs[2]).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["description", "description_de", "name", "schema", "side_effect", "source"]);
        assert_eq!(v["side_effect"], "side_effect");
        assert_eq!(v["source"], "builtin");
        assert_eq!(v["schema"]["additionalProperties"], false);
        assert_eq!(v["schema"]["required"], json!(["date", "time"]));
        assert_eq!(serde_json::to_value(&specs[0]).unwrap()["side_effect"], "read_only");
        let back: ToolSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back.name, BOOK_APPOINTMENT);
    }

    #[test]
    fn every_builtin_schema_is_a_valid_closed_2020_12_schema() {
        for s in builtins() {
            jsonschema::draft202012::meta::validate(&s.schema).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(s.schema["additionalProperties"], false, "{}", s.name);
            assert_eq!(s.schema["type"], "object", "{}", s.name);
            assert!(!s.description_en.is_empty() && !s.description_de.is_empty());
        }
    }

    #[test]
    fn mcp_source_round_trips() {
        let mut s = builtins().remove(0);
        s.source = ToolSource::Mcp("time".into());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["source"], "mcp:time");
        assert_eq!(serde_json::from_value::<ToolSpec>(v).unwrap().source, ToolSource::Mcp("time".into()));
        assert!("mcp:".parse::<ToolSource>().is_err());
    }
}
