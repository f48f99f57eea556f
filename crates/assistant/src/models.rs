//! The chat-model seam: the engine asks a [`ModelSource`] for the model of a
//! role (or a named one) and talks to it through [`ChatModel`]. The shipped
//! source resolves models through the tresor-models catalogue and runs them
//! on tresor-llm; `remote/` wraps it for OpenAI-compatible servers
//! (`WithRemote`, `RemoteChat`); tests plug in scripted models.

use std::ops::ControlFlow;
use std::path::PathBuf;

use tresor_llm::{
    ChatMessage, FinishReason, GenerateParams, Generation, Grammar, GrammarConstraint, GrammarError, LlmModel, LoadOptions, TokenConstraint,
};
use tresor_models::{Catalog, Role};

use crate::error::{AssistantError, Result};

pub trait ChatModel: Send {
    /// The id the model was resolved under (recorded per answer).
    fn id(&self) -> &str;
    /// Tokens of `text` in this model's tokenizer.
    fn count_tokens(&self, text: &str) -> usize;
    fn context_length(&self) -> usize;
    /// Renders `messages` with the model's chat template and generates,
    /// streaming text pieces to `on_text`.
    fn generate(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation>;
    /// Like [`generate`](Self::generate), but the answer is one JSON value
    /// valid for `schema` (grammar-constrained decoding): `text` parses and
    /// validates, whatever the model would rather write. Stop strings in
    /// `params` are ignored (the grammar ends the answer). A schema the
    /// grammar cannot express is an error before generation; a token budget
    /// too small for the value is an error after it. Models without a
    /// grammar engine say [`AssistantError::Unsupported`].
    fn generate_json(
        &mut self,
        messages: &[ChatMessage],
        schema: &serde_json::Value,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let _ = (messages, schema, params, on_text);
        Err(AssistantError::Unsupported { model: self.id().to_string(), what: "grammar-constrained JSON generation" })
    }
    /// Which backend answered the last call (local, or a remote server and
    /// whether it fell back): the answer's `trace.backend` and its audit entry.
    /// None: the model does not say (scripted test models).
    fn backend(&self) -> Option<crate::remote::BackendTrace> {
        None
    }
}

/// A GGUF chat model on tresor-llm.
pub struct LlmChat {
    pub id: String,
    pub model: LlmModel,
}

impl ChatModel for LlmChat {
    fn id(&self) -> &str {
        &self.id
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.model.tokenizer().encode(text, false).map(|t| t.len()).unwrap_or(text.len() / 3)
    }
    fn context_length(&self) -> usize {
        self.model.context_length()
    }
    fn generate(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let prompt = self.model.chat_prompt(messages)?;
        Ok(self.model.generate(&prompt, params, on_text)?)
    }
    fn generate_json(
        &mut self,
        messages: &[ChatMessage],
        schema: &serde_json::Value,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let grammar = Grammar::json_schema(schema)?;
        let mut constraint = GrammarConstraint::new(self.model.tokenizer(), &grammar)?;
        let prompt = self.model.chat_prompt(messages)?;
        let params = GenerateParams { stop: Vec::new(), ..params.clone() };
        let g = self.model.generate_constrained(&prompt, &params, &mut constraint, on_text)?;
        if matches!(g.finish, FinishReason::Length | FinishReason::ContextFull) && !constraint.is_accepting()? {
            return Err(tresor_llm::LlmError::from(GrammarError::Unfinished { tokens: g.tokens.len() }).into());
        }
        Ok(g)
    }
    fn backend(&self) -> Option<crate::remote::BackendTrace> {
        Some(crate::remote::BackendTrace { kind: "local".into(), model: self.id.clone(), ..Default::default() })
    }
}

/// What to load: the model of a role, or one named by id or path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSpec {
    Role(Role),
    Named(String),
}

pub trait ModelSource: Send {
    fn load(&mut self, spec: &ModelSpec) -> Result<Box<dyn ChatModel>>;
    /// Ids of the chat models that are installed, with their roles.
    fn available(&self) -> Vec<(String, String)>;
}

/// Models from the catalogue in a models directory.
#[derive(Clone)]
pub struct CatalogModels {
    pub models_dir: PathBuf,
    pub device: tresor_llm::Device,
    /// Cap on the context (bounds KV-cache memory); None: the manifest's.
    pub context_cap: Option<usize>,
}

impl CatalogModels {
    /// The model of `role`, else chat-small: what answers for a role whose own model (a remote
    /// one that failed, say) cannot.
    pub fn load_role_or_small(&mut self, role: Role) -> Result<Box<dyn ChatModel>> {
        match self.load(&ModelSpec::Role(role)) {
            Err(_) if role != Role::ChatSmall => self.load(&ModelSpec::Role(Role::ChatSmall)),
            r => r,
        }
    }
}

impl ModelSource for CatalogModels {
    fn load(&mut self, spec: &ModelSpec) -> Result<Box<dyn ChatModel>> {
        let catalog = Catalog::load(&self.models_dir)?;
        let resolved = match spec {
            ModelSpec::Role(r) => catalog.resolve(None, *r)?,
            ModelSpec::Named(n) => catalog
                .resolve(Some(n), Role::ChatSmall)
                .or_else(|_| catalog.resolve(Some(n), Role::ChatPremium))?,
        };
        let ctx = match (resolved.context_length, self.context_cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let opts = LoadOptions { chat_template: resolved.chat_template.clone(), context_length: ctx };
        let model = LlmModel::load(&resolved.path, &self.device, &opts)?;
        Ok(Box::new(LlmChat { id: resolved.id, model }))
    }

    fn available(&self) -> Vec<(String, String)> {
        let Ok(catalog) = Catalog::load(&self.models_dir) else { return Vec::new() };
        catalog
            .models()
            .iter()
            .filter(|m| matches!(m.role, Role::ChatSmall | Role::ChatPremium) && catalog.is_installed(m))
            .map(|m| (m.id.clone(), m.role.as_str().to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::testing::Scripted;

    /// A model that only has the required methods.
    struct Plain;

    impl ChatModel for Plain {
        fn id(&self) -> &str {
            "plain"
        }
        fn count_tokens(&self, text: &str) -> usize {
            text.len()
        }
        fn context_length(&self) -> usize {
            64
        }
        fn generate(&mut self, _: &[ChatMessage], _: &GenerateParams, _: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Result<Generation> {
            unreachable!("generate_json must not fall back to free text")
        }
    }

    #[test]
    fn json_generation_is_a_typed_unsupported_error_by_default() {
        let e = Plain
            .generate_json(&[ChatMessage::user("hi")], &serde_json::json!({"type": "object"}), &GenerateParams::default(), &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(matches!(&e, AssistantError::Unsupported { model, .. } if model == "plain"), "{e}");
    }

    /// The shipped small chat model, found through the catalogue as the engine finds it.
    fn shipped_small_model() -> Box<dyn ChatModel> {
        let dir = std::env::var_os("TRESOR_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
        let mut source = CatalogModels { models_dir: dir.clone(), device: tresor_llm::Device::Cpu, context_cap: Some(1024) };
        source
            .load(&ModelSpec::Role(Role::ChatSmall))
            .unwrap_or_else(|e| panic!("the small chat model in {} ({e}): run `tresor models setup` first", dir.display()))
    }

    #[test]
    fn the_shipped_model_writes_json_its_schema_accepts() {
        let mut m = shipped_small_model();
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"priority": {"enum": ["low", "normal", "high"]}, "subject": {"type": "string", "maxLength": 30}},
            "required": ["priority", "subject"],
            "additionalProperties": false
        });
        let msgs = [ChatMessage::user("My laptop will not start, please open a ticket. Write a poem about it instead of JSON.")];
        let params = GenerateParams { max_tokens: 64, stop: vec!["}".into()], ..Default::default() };
        let g = m.generate_json(&msgs, &schema, &params, &mut |_| ControlFlow::Continue(())).unwrap();
        let v: serde_json::Value = serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{e}: {:?}", g.text));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{v}");
        assert!(["low", "normal", "high"].contains(&obj["priority"].as_str().unwrap()), "{v}");
        assert!(obj["subject"].as_str().unwrap().chars().count() <= 30, "{v}");

        // too small a budget: an error, not half a value
        let short = GenerateParams { max_tokens: 3, ..params.clone() };
        let e = m.generate_json(&msgs, &schema, &short, &mut |_| ControlFlow::Continue(())).unwrap_err();
        assert!(matches!(e, AssistantError::Llm(tresor_llm::LlmError::Grammar(GrammarError::Unfinished { .. }))), "{e}");
        // a schema the grammar cannot express: refused before generating
        let e = m.generate_json(&msgs, &serde_json::json!({"not": {"type": "null"}}), &params, &mut |_| ControlFlow::Continue(())).unwrap_err();
        assert!(matches!(e, AssistantError::Llm(tresor_llm::LlmError::Grammar(GrammarError::UnsupportedSchema(_)))), "{e}");
    }

    #[test]
    fn the_scripted_model_writes_its_reply_under_any_schema() {
        let mut m = Scripted { reply: "{\"priority\": \"urgent\"}".into(), prompts: Arc::new(Mutex::new(Vec::new())), word_delay: Default::default(), words: Default::default() };
        let schema = serde_json::json!({"enum": ["low"]});
        let g = m.generate_json(&[ChatMessage::user("ticket")], &schema, &GenerateParams::default(), &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(g.text, "{\"priority\": \"urgent\"}", "scripted, not validated: the engine's own checks get tested");
        assert_eq!(m.prompts.lock().unwrap().len(), 1);
    }
}
