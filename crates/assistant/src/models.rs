//! The chat-model seam: the engine asks a [`ModelSource`] for the model of a
//! role (or a named one) and talks to it through [`ChatModel`]. The shipped
//! source resolves models through the tresor-models catalogue and runs them
//! on tresor-llm; tests plug in scripted models.

use std::ops::ControlFlow;
use std::path::PathBuf;

use tresor_llm::{ChatMessage, GenerateParams, Generation, LlmModel, LoadOptions};
use tresor_models::{Catalog, Role};

use crate::error::Result;

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
pub struct CatalogModels {
    pub models_dir: PathBuf,
    pub device: tresor_llm::Device,
    /// Cap on the context (bounds KV-cache memory); None: the manifest's.
    pub context_cap: Option<usize>,
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
