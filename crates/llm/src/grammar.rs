//! Grammars for constrained decoding, on llguidance: a [`Grammar`] (a JSON
//! Schema, a Lark grammar, or "plain text, or a trigger then JSON") becomes a
//! [`GrammarConstraint`] for one generation with one model's tokenizer.
//!
//! llguidance works on bytes: the token environment it needs is built from
//! Tresor's own tokenizer ([`GgufTokenizer::token_bytes`]; special tokens
//! carry llguidance's `0xFF` marker) once per tokenizer and shared by its
//! clones. Per step it computes the mask of allowed tokens from the Earley
//! parser's state and a walk of the token trie; committing a token is a
//! parser step.
//!
//! JSON output is written the way `json.dumps` writes it (`", "` and `": "`,
//! no other whitespace) unless the schema says otherwise under
//! `x-guidance`: free whitespace lets small models loop on newlines.
//!
//! Owns: grammar construction and validation, the token environment, the
//! llguidance matcher. Never: runs a model or samples (that is
//! [`crate::model`]), decides which schema to use (the engine).

use std::sync::{Arc, OnceLock};

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;

use crate::constrain::{TokenConstraint, TokenMask};
use crate::error::{GrammarError, Result};
use crate::tokenizer::{GgufTokenizer, TokenBytes};

/// The JSON layout used unless a schema's `x-guidance` sets its own.
fn default_json_options() -> Value {
    serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "})
}

/// What a generation must match.
#[derive(Debug, Clone)]
pub struct Grammar {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// One JSON value valid for the schema (with layout options added).
    Json(Value),
    /// A Lark grammar (llguidance's dialect).
    Lark(String),
    /// Plain text; or text, `trigger`, one JSON value for the schema, `end`.
    Triggered { trigger: String, schema: Value, end: String },
}

impl Grammar {
    /// One JSON value valid for `schema` (a JSON Schema, draft 2020-12 or
    /// earlier). Checked now: a schema that is invalid, unsatisfiable or uses
    /// an unsupported keyword is an error here, not at generation time.
    pub fn json_schema(schema: &Value) -> Result<Grammar> {
        let g = Grammar { kind: Kind::Json(with_layout(schema)?) };
        g.validate()?;
        Ok(g)
    }

    /// A grammar in llguidance's Lark dialect (`start: ...`; `%json {...}`
    /// embeds a schema; `<name>` is a special token of the model's
    /// vocabulary, checked when the constraint is made).
    pub fn lark(source: &str) -> Result<Grammar> {
        let g = Grammar { kind: Kind::Lark(source.to_string()) };
        match g.validate() {
            // Special tokens depend on the model: checked by GrammarConstraint::new.
            Err(crate::LlmError::Grammar(GrammarError::InvalidGrammar(m))) if m.contains("unknown special token") => Ok(g),
            r => r.map(|_| g),
        }
    }

    /// Lazily triggered JSON: the model may answer in plain text, unconstrained;
    /// once it writes `trigger` (e.g. `<tool_call>`), one JSON value valid for
    /// `schema` must follow (after at most one newline), then `end` (may be
    /// empty), and the generation is complete. Text never contains `trigger`
    /// except as this start. When `trigger` is a control token of the model's
    /// vocabulary it is matched as that token, otherwise as text.
    pub fn triggered_json(trigger: &str, schema: &Value, end: &str) -> Result<Grammar> {
        if trigger.is_empty() {
            return Err(GrammarError::InvalidGrammar("the trigger is empty".into()).into());
        }
        let g = Grammar {
            kind: Kind::Triggered { trigger: trigger.to_string(), schema: with_layout(schema)?, end: end.to_string() },
        };
        g.validate()?;
        Ok(g)
    }

    /// Compiles against a byte-level vocabulary: catches bad schemas and
    /// grammars without a model.
    fn validate(&self) -> Result<()> {
        byte_factory()?.create_parser(self.top_level(|_| false)).map(|_| ()).map_err(|e| self.error(e.to_string()).into())
    }

    /// llguidance's form; `is_control(name)` says whether a trigger is a
    /// control token of the target vocabulary.
    fn top_level(&self, is_control: impl Fn(&str) -> bool) -> TopLevelGrammar {
        match &self.kind {
            Kind::Json(schema) => TopLevelGrammar::from_json_schema(schema.clone()),
            Kind::Lark(src) => TopLevelGrammar::from_lark(src.clone()),
            Kind::Triggered { trigger, schema, end } => {
                let end = if end.is_empty() { String::new() } else { format!(" {}", lark_string(end)) };
                // A lazy rule ends at the first match: TEXT up to the first
                // trigger. A control token cannot occur inside a terminal,
                // so then TEXT cannot hold the trigger anyway.
                let call = if is_control(trigger) {
                    format!("call: TEXT {trigger} \"\\n\"? json{end}\n")
                } else {
                    format!("call: call_trig \"\\n\"? json{end}\ncall_trig[lazy]: TEXT {}\n", lark_string(trigger))
                };
                TopLevelGrammar::from_lark(format!(
                    "%llguidance {{}}\nstart: TEXT | call\n{call}json: %json {schema}\nTEXT: /(.|\\n)*/\n"
                ))
            }
        }
    }

    /// A compiler message as a typed error.
    fn error(&self, msg: String) -> GrammarError {
        let msg = shorten(msg);
        let lark = matches!(self.kind, Kind::Lark(_));
        if msg.contains("Unimplemented keys") || msg.contains("Unknown format") || (!lark && msg.contains("not supported")) {
            GrammarError::UnsupportedSchema(msg)
        } else if msg.contains("Unsatisfiable") {
            GrammarError::Unsatisfiable(msg)
        } else if lark {
            GrammarError::InvalidGrammar(msg)
        } else {
            GrammarError::InvalidSchema(msg)
        }
    }
}

/// A compiler over a vocabulary of the 256 bytes (and a few special tokens):
/// for checking grammars without a model.
fn byte_factory() -> Result<&'static ParserFactory> {
    static BYTES: OnceLock<std::result::Result<ParserFactory, String>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let env: TokEnv = ApproximateTokEnv::single_byte_env();
            let mut f = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
            f.quiet();
            Ok(f)
        })
        .as_ref()
        .map_err(|e| GrammarError::InvalidGrammar(format!("cannot start the grammar compiler: {e}")).into())
}

/// The schema with Tresor's JSON layout unless it sets its own.
fn with_layout(schema: &Value) -> Result<Value> {
    let mut s = match schema {
        Value::Bool(true) => Value::Object(Default::default()),
        Value::Bool(false) => return Err(GrammarError::Unsatisfiable("the schema is `false`".into()).into()),
        Value::Object(_) => schema.clone(),
        other => return Err(GrammarError::InvalidSchema(format!("a schema is an object or a boolean, not {other}")).into()),
    };
    let obj = s.as_object_mut().expect("an object");
    obj.entry("x-guidance").or_insert_with(default_json_options);
    Ok(s)
}

/// A Lark string literal.
fn lark_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// llguidance's messages may list a whole vocabulary's special tokens.
fn shorten(msg: String) -> String {
    const MAX: usize = 400;
    if msg.len() <= MAX {
        return msg;
    }
    let mut cut = MAX;
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} …", &msg[..cut])
}

/// llguidance's view of one vocabulary: the token trie and the parser
/// factory (which precomputes token classes for fast masks). Built once per
/// tokenizer.
pub struct GrammarEnv {
    factory: ParserFactory,
}

impl GrammarEnv {
    /// The environment of `tokenizer`, built on first use.
    pub fn of(tokenizer: &GgufTokenizer) -> Result<Arc<GrammarEnv>> {
        let slot = tokenizer.grammar_env_slot();
        if let Some(env) = slot.get() {
            return Ok(env.clone());
        }
        let env = Arc::new(GrammarEnv::build(tokenizer)?);
        Ok(slot.get_or_init(|| env).clone())
    }

    fn build(tokenizer: &GgufTokenizer) -> Result<GrammarEnv> {
        let words: Vec<Vec<u8>> = (0..tokenizer.vocab_len() as u32)
            .map(|id| match tokenizer.token_bytes(id) {
                Some(TokenBytes::Text(b)) => b.to_vec(),
                Some(TokenBytes::Special(name)) => {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(name.as_bytes());
                    w
                }
                None => Vec::new(),
            })
            .collect();
        let eos = tokenizer.eos_id().or_else(|| tokenizer.stop_ids().iter().min().copied()).unwrap_or(0);
        let info = TokRxInfo {
            vocab_size: words.len() as u32,
            tok_eos: eos,
            tok_bos: tokenizer.bos_id(),
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        let trie = TokTrie::from(&info, &words);
        let mut env = VocabEnv { trie, encoder: tokenizer.encoder().clone(), canonical: true };
        // A tokenizer that prepends a space (SentencePiece's add_space_prefix)
        // cannot tokenize a fragment as it stands: forced tokens then come
        // from the trie, and llguidance is told so.
        env.canonical = env.encode_exact(b"x{").is_some();
        let env: TokEnv = Arc::new(env);
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| GrammarError::InvalidGrammar(format!("cannot build the token environment: {e}")))?;
        factory.quiet();
        Ok(GrammarEnv { factory })
    }

    fn is_control(&self, name: &str) -> bool {
        self.factory.tok_env().tok_trie().get_special_token(name).is_some()
    }
}

/// Tresor's tokenizer as llguidance's `TokenizerEnv`.
struct VocabEnv {
    trie: TokTrie,
    encoder: crate::tokenizer::Encoder,
    canonical: bool,
}

impl VocabEnv {
    /// The tokenizer's ids for exactly `bytes` (None when they are not
    /// UTF-8, or its ids would write something else: a space prefix, a
    /// special token parsed from the text).
    fn encode_exact(&self, bytes: &[u8]) -> Option<Vec<TokenId>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let ids = self.encoder.encode(text).ok()?;
        (self.trie.decode_raw(&ids) == bytes).then_some(ids)
    }
}

impl TokenizerEnv for VocabEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.encode_exact(s).unwrap_or_else(|| self.trie.greedy_tokenize(s))
    }

    fn tokenize_is_canonical(&self) -> bool {
        self.canonical
    }
}

/// A [`Grammar`] applied to one generation: the llguidance matcher over the
/// model's vocabulary.
pub struct GrammarConstraint {
    matcher: Matcher,
    vocab: usize,
}

impl GrammarConstraint {
    /// Compiles `grammar` for `tokenizer`'s vocabulary (the vocabulary's
    /// environment is built on the first call for a tokenizer and reused).
    pub fn new(tokenizer: &GgufTokenizer, grammar: &Grammar) -> Result<Self> {
        let env = GrammarEnv::of(tokenizer)?;
        let parser = env
            .factory
            .create_parser(grammar.top_level(|name| env.is_control(name)))
            .map_err(|e| grammar.error(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(grammar.error(e).into());
        }
        Ok(GrammarConstraint { matcher, vocab: tokenizer.vocab_len() })
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> crate::LlmError {
        GrammarError::Rejected(shorten(format!("{what}: {e}"))).into()
    }
}

impl TokenConstraint for GrammarConstraint {
    fn allowed(&mut self) -> Result<TokenMask> {
        let v = self.matcher.compute_mask().map_err(|e| self.failed("computing the mask", e))?;
        Ok(TokenMask::from_words(v.as_slice(), self.vocab))
    }

    fn commit(&mut self, token: u32) -> Result<()> {
        self.matcher.consume_token(token).map_err(|e| self.failed(&format!("token {token}"), e))
    }

    fn is_accepting(&mut self) -> Result<bool> {
        if self.matcher.is_stopped() && !self.matcher.is_error() {
            return Ok(true);
        }
        self.matcher.is_accepting().map_err(|e| self.failed("checking completion", e))
    }

    fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    fn forced(&mut self) -> Result<Vec<u32>> {
        let ff = self.matcher.compute_ff_tokens();
        match self.matcher.get_error() {
            Some(e) => Err(self.failed("computing forced tokens", e)),
            None => Ok(ff),
        }
    }
}

#[cfg(test)]
mod tests;
