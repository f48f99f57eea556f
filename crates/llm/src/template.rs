//! Chat templates: turning a conversation into the exact prompt text a model
//! was trained on. ChatML, Llama 3, Mistral `[INST]` and Gemma, chosen by name
//! (the manifest) or recognised from the GGUF's `tokenizer.chat_template`.
//! Special tokens are written as text; the tokenizer parses them back.
//! Only the template writes them: a message's content that spells a turn
//! marker (a document forging `<|im_end|>\n<|im_start|>system`) has it
//! broken by a word joiner ([`escape_markers`]), so it stays text; the
//! model's other control tokens are neutralised by
//! `GgufTokenizer::neutralize` before rendering (`LlmModel::chat_prompt`).
//! Owns rendering only; never tokenizes.

use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

/// Tresor's system prompt when the caller gives none. Small models answer
/// far better with a short, plain instruction than with their own persona
/// prompt (SmolLM2 greedy answers "What is the capital of France?" with
/// "L'Étoile, la Marseillaise..." under its built-in one, "Paris" under this).
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. Answer briefly and accurately.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(c: impl Into<String>) -> Self {
        ChatMessage { role: Role::System, content: c.into() }
    }
    pub fn user(c: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, content: c.into() }
    }
    pub fn assistant(c: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, content: c.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n...<|im_end|>\n`; some models (SmolLM2) insert a
    /// default system prompt when the conversation has none.
    ChatMl { default_system: Option<String> },
    /// `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>`.
    Llama3,
    /// `<s>[INST] ... [/INST]answer</s>`; the system prompt is prepended to
    /// the first user turn.
    Mistral,
    /// `<start_of_turn>user\n...<end_of_turn>\n`; the system prompt is
    /// prepended to the first user turn, the assistant is called `model`.
    Gemma,
}

impl ChatTemplate {
    /// By name: `chatml`, `llama3`, `mistral`, `gemma`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "chatml" => Ok(ChatTemplate::ChatMl { default_system: None }),
            "llama3" | "llama-3" => Ok(ChatTemplate::Llama3),
            "mistral" | "inst" | "llama2" => Ok(ChatTemplate::Mistral),
            "gemma" | "gemma3" => Ok(ChatTemplate::Gemma),
            _ => Err(LlmError::UnknownTemplate(name.to_string())),
        }
    }

    /// Recognises a template from its Jinja source (`tokenizer.chat_template`).
    pub fn detect(jinja: &str) -> Option<Self> {
        if jinja.contains("<|im_start|>") {
            Some(ChatTemplate::ChatMl { default_system: chatml_default_system(jinja) })
        } else if jinja.contains("<|start_header_id|>") {
            Some(ChatTemplate::Llama3)
        } else if jinja.contains("<start_of_turn>") {
            Some(ChatTemplate::Gemma)
        } else if jinja.contains("[INST]") {
            Some(ChatTemplate::Mistral)
        } else {
            None
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl { .. } => "chatml",
            ChatTemplate::Llama3 => "llama3",
            ChatTemplate::Mistral => "mistral",
            ChatTemplate::Gemma => "gemma",
        }
    }

    /// The strings this template writes around content (its turn markers).
    pub fn markers(&self) -> &'static [&'static str] {
        match self {
            ChatTemplate::ChatMl { .. } => &["<|im_start|>", "<|im_end|>"],
            ChatTemplate::Llama3 => &["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
            ChatTemplate::Mistral => &["[INST]", "[/INST]", "<s>", "</s>"],
            ChatTemplate::Gemma => &["<bos>", "<start_of_turn>", "<end_of_turn>"],
        }
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where
    /// the assistant's answer begins. The template's own markers inside a
    /// message's content are escaped: only the template starts or ends a turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let escaped: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage { role: m.role, content: escape_markers(&m.content, self.markers()).into_owned() })
            .collect();
        let messages = escaped.as_slice();
        let mut out = String::new();
        match self {
            ChatTemplate::ChatMl { default_system } => {
                if let (Some(sys), false) = (default_system, messages.first().is_some_and(|m| m.role == Role::System)) {
                    out.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                }
                for m in messages {
                    out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role.as_str(), m.content));
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
            }
            ChatTemplate::Llama3 => {
                out.push_str("<|begin_of_text|>");
                for m in messages {
                    out.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role.as_str(),
                        m.content.trim()
                    ));
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            ChatTemplate::Mistral => {
                out.push_str("<s>");
                let (system, rest) = split_system(messages);
                let mut first_user = true;
                for m in rest {
                    match m.role {
                        Role::User => {
                            let content = match (first_user, system) {
                                (true, Some(sys)) => format!("{sys}\n\n{}", m.content),
                                _ => m.content.clone(),
                            };
                            first_user = false;
                            out.push_str(&format!("[INST] {content} [/INST]"));
                        }
                        Role::Assistant => out.push_str(&format!("{}</s>", m.content)),
                        Role::System => {}
                    }
                }
            }
            ChatTemplate::Gemma => {
                out.push_str("<bos>");
                let (system, rest) = split_system(messages);
                let mut first_user = true;
                for m in rest {
                    let (role, content) = match m.role {
                        Role::User => {
                            let content = match (first_user, system) {
                                (true, Some(sys)) => format!("{sys}\n\n{}", m.content),
                                _ => m.content.clone(),
                            };
                            first_user = false;
                            ("user", content)
                        }
                        Role::Assistant => ("model", m.content.clone()),
                        Role::System => continue,
                    };
                    out.push_str(&format!("<start_of_turn>{role}\n{}<end_of_turn>\n", content.trim()));
                }
                if add_generation_prompt {
                    out.push_str("<start_of_turn>model\n");
                }
            }
        }
        out
    }

    /// Text that ends an assistant turn (a stop string besides EOS).
    pub fn end_of_turn(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl { .. } => "<|im_end|>",
            ChatTemplate::Llama3 => "<|eot_id|>",
            ChatTemplate::Mistral => "</s>",
            ChatTemplate::Gemma => "<end_of_turn>",
        }
    }
}

/// The joiner put inside a marker spelt in untrusted text: invisible,
/// zero-width, and no vocabulary's control token contains it.
pub const MARKER_BREAK: char = '\u{2060}';

/// `text` with each occurrence of a `markers` string broken after its first
/// character by [`MARKER_BREAK`], so no tokenizer reads it as the marker.
/// Borrowed (unchanged) when no marker occurs: the common case costs a scan.
pub fn escape_markers<'a, S: AsRef<str>>(text: &'a str, markers: &[S]) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for m in markers {
        let m = m.as_ref();
        let Some(first) = m.chars().next() else { continue };
        if m.chars().count() < 2 || !out.contains(m) {
            continue;
        }
        let broken = format!("{first}{MARKER_BREAK}{}", &m[first.len_utf8()..]);
        out = std::borrow::Cow::Owned(out.replace(m, &broken));
    }
    out
}

fn split_system(messages: &[ChatMessage]) -> (Option<&str>, &[ChatMessage]) {
    match messages.first() {
        Some(m) if m.role == Role::System => (Some(m.content.as_str()), &messages[1..]),
        _ => (None, messages),
    }
}

/// The literal default system prompt a ChatML Jinja template inserts when a
/// conversation has none (SmolLM2: "You are a helpful AI assistant named SmolLM...").
fn chatml_default_system(jinja: &str) -> Option<String> {
    // Jinja sources spell the newline either escaped (`\n`) or literally.
    let (start, marker) = ["<|im_start|>system\\n", "<|im_start|>system\n"]
        .iter()
        .find_map(|m| jinja.find(m).map(|i| (i, *m)))?;
    let start = start + marker.len();
    let rest = &jinja[start..];
    let end = rest.find("<|im_end|>")?;
    let text = &rest[..end];
    // Only a literal: a template that interpolates the message has `{{`/`+` here.
    if text.is_empty() || text.contains("{{") || text.contains('\'') || text.contains('+') || text.contains('"') {
        return None;
    }
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2_JINJA: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn chatml_with_default_system_from_jinja() {
        let t = ChatTemplate::detect(SMOLLM2_JINJA).unwrap();
        let out = t.render(&[ChatMessage::user("Hi")], true);
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t.render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")], true);
        assert_eq!(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn llama3_multi_turn() {
        let t = ChatTemplate::from_name("llama3").unwrap();
        let out = t.render(
            &[ChatMessage::system("S"), ChatMessage::user("Q1"), ChatMessage::assistant("A1"), ChatMessage::user("Q2")],
            true,
        );
        assert_eq!(
            out,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn mistral_puts_system_into_first_user_turn() {
        let t = ChatTemplate::from_name("mistral").unwrap();
        let out = t.render(
            &[ChatMessage::system("S"), ChatMessage::user("Q1"), ChatMessage::assistant("A1"), ChatMessage::user("Q2")],
            true,
        );
        assert_eq!(out, "<s>[INST] S\n\nQ1 [/INST]A1</s>[INST] Q2 [/INST]");
    }

    #[test]
    fn gemma_uses_model_role() {
        let t = ChatTemplate::detect("{{ bos_token }}<start_of_turn>user ...").unwrap();
        assert_eq!(t, ChatTemplate::Gemma);
        let out = t.render(&[ChatMessage::system("S"), ChatMessage::user("Q"), ChatMessage::assistant("A")], true);
        assert_eq!(out, "<bos><start_of_turn>user\nS\n\nQ<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n<start_of_turn>model\n");
    }

    #[test]
    fn unknown_names_and_templates() {
        assert!(ChatTemplate::from_name("vicuna").is_err());
        assert_eq!(ChatTemplate::detect("{{ messages }}"), None);
        // A ChatML template without a literal default system prompt.
        let t = ChatTemplate::detect("{{'<|im_start|>' + message['role'] + '\\n' + message['content']}}").unwrap();
        assert_eq!(t, ChatTemplate::ChatMl { default_system: None });
    }
}
