//! Grammars against llguidance's byte-level test vocabulary (ids 0..=255 are
//! the bytes, then a few special tokens such as `<|tool|>`): what they let
//! through, what they stop, and their errors. The model-level tests are in
//! tests/constrained.rs.

use serde_json::json;

use super::*;
use crate::LlmError;

fn byte_constraint(g: &Grammar) -> GrammarConstraint {
    let f = byte_factory().unwrap();
    let trie = f.tok_env().tok_trie();
    let parser = f.create_parser(g.top_level(|n| trie.get_special_token(n).is_some())).unwrap();
    GrammarConstraint { matcher: Matcher::new(Ok(parser)), vocab: trie.vocab_size() }
}

/// Commits `text` byte by byte; Err(offset) at the first byte the mask refuses.
fn feed(c: &mut GrammarConstraint, text: &str) -> std::result::Result<(), usize> {
    for (i, b) in text.bytes().enumerate() {
        if !c.allowed().unwrap().allows(b as u32) {
            return Err(i);
        }
        c.commit(b as u32).unwrap();
    }
    Ok(())
}

fn special(name: &str) -> u32 {
    byte_factory().unwrap().tok_env().tok_trie().get_special_token(name).unwrap()
}

fn grammar_error(r: Result<Grammar>) -> GrammarError {
    match r {
        Err(LlmError::Grammar(e)) => e,
        Err(e) => panic!("not a grammar error: {e}"),
        Ok(g) => panic!("accepted: {g:?}"),
    }
}

fn ticket_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "subject": {"type": "string", "maxLength": 20},
            "priority": {"enum": ["low", "normal", "high"]},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}
        },
        "required": ["subject", "priority"],
        "additionalProperties": false
    })
}

#[test]
fn json_schema_accepts_valid_values_and_refuses_others_at_the_first_bad_byte() {
    let g = Grammar::json_schema(&ticket_schema()).unwrap();
    let mut c = byte_constraint(&g);
    feed(&mut c, r#"{"subject": "Printer", "priority": "high", "note": null}"#).unwrap();
    assert!(c.is_accepting().unwrap());
    assert!(c.is_finished(), "nothing may follow a complete value");

    let bad = r#"{"subject": "Printer", "priority": "urgent"}"#;
    let at = feed(&mut byte_constraint(&g), bad).unwrap_err();
    assert_eq!(at, bad.find("urgent").unwrap(), "refused at the first byte no enum value has");

    // an unknown key, a missing required one, too long a string
    assert!(feed(&mut byte_constraint(&g), r#"{"subject": "x", "priority": "low", "tool": 1}"#).is_err());
    let mut c = byte_constraint(&g);
    feed(&mut c, r#"{"subject": "x"}"#).unwrap_err();
    assert!(feed(&mut byte_constraint(&g), &format!(r#"{{"subject": "{}"#, "a".repeat(21))).is_err());
}

#[test]
fn json_layout_is_json_dumps_style_unless_the_schema_says_otherwise() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    let g = Grammar::json_schema(&schema).unwrap();
    assert!(feed(&mut byte_constraint(&g), r#"{"a":1}"#).is_err(), "compact separators are not the layout");
    assert!(feed(&mut byte_constraint(&g), "{\n").is_err(), "no free whitespace");
    feed(&mut byte_constraint(&g), r#"{"a": 1}"#).unwrap();

    let mut own = schema.clone();
    own["x-guidance"] = json!({"whitespace_flexible": false, "item_separator": ",", "key_separator": ":"});
    feed(&mut byte_constraint(&Grammar::json_schema(&own).unwrap()), r#"{"a":1}"#).unwrap();
}

#[test]
fn integer_ranges_and_consts_hold() {
    let g = Grammar::json_schema(&json!({
        "type": "object",
        "properties": {"kind": {"const": "booking"}, "minutes": {"type": "integer", "minimum": 15, "maximum": 240}},
        "required": ["kind", "minutes"]
    }))
    .unwrap();
    feed(&mut byte_constraint(&g), r#"{"kind": "booking", "minutes": 240}"#).unwrap();
    assert!(feed(&mut byte_constraint(&g), r#"{"kind": "booking", "minutes": 241}"#).is_err());
    assert!(feed(&mut byte_constraint(&g), r#"{"kind": "booking", "minutes": 9}"#).is_err());
    assert!(feed(&mut byte_constraint(&g), r#"{"kind": "order""#).is_err());
}

#[test]
fn triggered_json_leaves_text_free_until_the_trigger() {
    let g = Grammar::triggered_json("<tool_call>", &ticket_schema(), "</tool_call>").unwrap();

    // Plain text, even with pieces of the trigger, is a complete answer.
    let mut c = byte_constraint(&g);
    feed(&mut c, "Sure! Use <b>bold</b> or <tool_cal and {\"json\": [1, 2]}.\n\nDone").unwrap();
    assert!(c.is_accepting().unwrap());
    assert!(!c.is_finished());

    // Once the trigger is written, only the schema's JSON may follow, then the end marker.
    let mut c = byte_constraint(&g);
    feed(&mut c, "Let me open a ticket. <tool_call>").unwrap();
    assert!(!c.is_accepting().unwrap(), "the trigger promises a call");
    assert!(feed(&mut c.clone_for_test(), "Hello").is_err(), "text after the trigger");
    feed(&mut c, "\n{\"subject\": \"VPN down\", \"priority\": \"high\"}").unwrap();
    assert!(!c.is_accepting().unwrap(), "the end marker is still due");
    feed(&mut c, "</tool_call>").unwrap();
    assert!(c.is_accepting().unwrap());
    assert!(c.is_finished(), "generation stops after the call");

    let mut c = byte_constraint(&g);
    feed(&mut c, "<tool_call>").unwrap();
    assert!(feed(&mut c, r#"{"subject": "x", "priority": "urgent"}"#).is_err(), "the schema holds after the trigger");
}

#[test]
fn a_special_token_trigger_is_matched_as_that_token() {
    let g = Grammar::triggered_json("<|tool|>", &json!({"type": "integer"}), "").unwrap();
    let mut c = byte_constraint(&g);
    feed(&mut c, "text <|tool|> as text is just text").unwrap();
    assert!(c.is_accepting().unwrap());
    let tool = special("<|tool|>");
    assert!(c.allowed().unwrap().allows(tool));
    c.commit(tool).unwrap();
    feed(&mut c, "42").unwrap();
    assert!(c.is_accepting().unwrap());
}

#[test]
fn lark_grammars_constrain_and_report_errors() {
    let g = Grammar::lark(r#"start: "yes" | "no""#).unwrap();
    let mut c = byte_constraint(&g);
    assert!(feed(&mut c.clone_for_test(), "maybe").is_err());
    feed(&mut c, "no").unwrap();
    assert!(c.is_finished());
    assert!(matches!(grammar_error(Grammar::lark("start: (")), GrammarError::InvalidGrammar(_)));
    // a special token is checked against the model's vocabulary later, not here
    Grammar::lark("start: \"a\" <|im_end|>").unwrap();
}

#[test]
fn schemas_the_compiler_cannot_handle_are_typed_errors() {
    let unsupported = grammar_error(Grammar::json_schema(&json!({"type": "string", "not": {"const": "x"}})));
    assert!(matches!(unsupported, GrammarError::UnsupportedSchema(ref m) if m.contains("not")), "{unsupported}");
    let format = grammar_error(Grammar::json_schema(&json!({"type": "string", "format": "no-such-format"})));
    assert!(matches!(format, GrammarError::UnsupportedSchema(_)), "{format}");
    let invalid = grammar_error(Grammar::json_schema(&json!({"type": 5})));
    assert!(matches!(invalid, GrammarError::InvalidSchema(_)), "{invalid}");
    let dangling = grammar_error(Grammar::json_schema(&json!({"$ref": "#/$defs/nowhere"})));
    assert!(matches!(dangling, GrammarError::InvalidSchema(_)), "{dangling}");
    assert!(matches!(grammar_error(Grammar::json_schema(&json!(3))), GrammarError::InvalidSchema(_)));
    assert!(matches!(grammar_error(Grammar::json_schema(&json!(false))), GrammarError::Unsatisfiable(_)));
    let empty = grammar_error(Grammar::json_schema(&json!({"type": "integer", "minimum": 5, "maximum": 1})));
    assert!(matches!(empty, GrammarError::Unsatisfiable(_)), "{empty}");
    let trig = grammar_error(Grammar::triggered_json("<t>", &json!({"type": "object", "if": {}}), ""));
    assert!(matches!(trig, GrammarError::UnsupportedSchema(_)), "{trig}");
    assert!(Grammar::triggered_json("", &json!({}), "").is_err());
    // regexes llguidance cannot compile, odd shapes: an error or a grammar, never a panic
    for odd in [
        json!({"type": "string", "pattern": "(?<=a)b"}),
        json!({"type": "string", "pattern": "("}),
        json!({"type": "object", "properties": {"a": {"$ref": "#"}}}),
        json!({"anyOf": []}),
        json!({"type": ["string", "null"], "maxLength": -1}),
        json!({"$ref": "https://example.com/schema.json"}),
    ] {
        let _ = Grammar::json_schema(&odd);
    }
    assert!(Grammar::json_schema(&json!({"$ref": "https://example.com/schema.json"})).is_err(), "no remote references");
    // oneOf: where the branches cannot overlap it is compiled, otherwise refused
    Grammar::json_schema(&json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})).unwrap();
    let overlap = grammar_error(Grammar::json_schema(&json!({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]})));
    assert!(matches!(overlap, GrammarError::UnsupportedSchema(_)), "{overlap}");
    // local references work without remote resolution
    Grammar::json_schema(&json!({"$defs": {"d": {"type": "string"}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/d"}}})).unwrap();
}

impl GrammarConstraint {
    fn clone_for_test(&self) -> GrammarConstraint {
        GrammarConstraint { matcher: self.matcher.deep_clone(), vocab: self.vocab }
    }
}
