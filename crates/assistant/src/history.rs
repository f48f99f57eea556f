//! Fitting a conversation into the model's window: the newest turns stay
//! verbatim within `history_tokens`; when older turns no longer fit, the chat
//! model summarises them in a bounded number of tokens, and the summary takes
//! their place as one turn.
//!
//! Owns: where the conversation is cut, the summarisation prompt and its
//! token bound, and the fallback when the model gives nothing usable (the
//! older questions, listed). Never: drops the newest turn, lets the summary
//! grow past its bound, or stores anything (threads keep every message).

use std::ops::ControlFlow;

use serde::Serialize;
use tresor_kb::lang::Lang;
use tresor_llm::{ChatMessage, GenerateParams, Role, SamplingParams};

use crate::models::ChatModel;

/// What happened to the conversation for one answer (in `trace.history`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct HistoryTrace {
    /// Turns kept verbatim.
    pub kept_turns: usize,
    /// Older turns replaced by the summary.
    pub summarised_turns: usize,
    pub summary: String,
    /// The model wrote the summary (false: it failed, the older questions are listed instead).
    pub by_model: bool,
    pub summary_tokens: usize,
    pub ms: f64,
}

/// Splits `history` into the older turns that do not fit `budget` tokens and
/// the newest ones that do (each turn costs its tokens + 4 for the template).
pub fn split<'a>(history: &'a [ChatMessage], budget: usize, count: &dyn Fn(&str) -> usize) -> (&'a [ChatMessage], &'a [ChatMessage]) {
    let mut used = 0;
    let mut cut = 0;
    for (i, m) in history.iter().enumerate().rev() {
        let t = count(&m.content) + 4;
        if used + t > budget {
            cut = i + 1;
            break;
        }
        used += t;
    }
    history.split_at(cut)
}

/// The older questions in one line (no model needed).
pub fn question_list(older: &[ChatMessage]) -> String {
    let qs: Vec<String> = older.iter().filter(|m| m.role == Role::User).map(|m| m.content.chars().take(80).collect::<String>()).collect();
    if qs.is_empty() {
        return String::new();
    }
    format!("Earlier in this conversation the user asked: {}", qs.join("; ")).chars().take(400).collect()
}

/// The summarisation prompt: the older turns as a transcript (each clipped, the whole bounded).
pub fn summary_prompt(older: &[ChatMessage], lang: Lang) -> Vec<ChatMessage> {
    let (sys, user_l, asst_l) = match lang {
        Lang::De => (
            "Fasse das Gespräch in höchstens zwei kurzen Sätzen zusammen: was der Nutzer gefragt hat und was geantwortet wurde. Behalte Namen und Zahlen.",
            "Nutzer",
            "Assistent",
        ),
        Lang::En => (
            "Summarise the conversation in at most two short sentences: what the user asked and what was answered. Keep names and numbers.",
            "User",
            "Assistant",
        ),
    };
    let mut t = String::new();
    for m in older {
        let who = if m.role == Role::User { user_l } else { asst_l };
        let text: String = m.content.chars().take(300).collect();
        t.push_str(&format!("{who}: {text}\n"));
    }
    // the oldest part goes first when the transcript is too long for a short prompt
    let t: String = if t.chars().count() > 3000 { t.chars().skip(t.chars().count() - 3000).collect() } else { t };
    vec![ChatMessage::system(sys), ChatMessage::user(t)]
}

/// Summarises `older` with `model` in at most `max_tokens` tokens; the question list when the model fails.
pub fn summarise(model: &mut dyn ChatModel, older: &[ChatMessage], max_tokens: usize, lang: Lang) -> HistoryTrace {
    let t = std::time::Instant::now();
    let params = GenerateParams {
        max_tokens: max_tokens.max(1),
        sampling: SamplingParams { repeat_penalty: 1.1, ..SamplingParams::greedy() },
        stop: vec!["\n\n".into(), "User:".into(), "Nutzer:".into()],
        cancel: None,
    };
    let g = model.generate(&summary_prompt(older, lang), &params, &mut |_| ControlFlow::Continue(()));
    let (summary, by_model, tokens) = match g {
        Ok(g) if g.text.split_whitespace().count() >= 3 => (g.text.split_whitespace().collect::<Vec<_>>().join(" "), true, g.tokens.len()),
        Ok(_) => (question_list(older), false, 0),
        Err(e) => {
            tracing::warn!("summarising the conversation failed ({e}); listing the earlier questions instead");
            (question_list(older), false, 0)
        }
    };
    HistoryTrace { kept_turns: 0, summarised_turns: older.len(), summary, by_model, summary_tokens: tokens, ms: t.elapsed().as_secs_f64() * 1e3 }
}

/// The summary as turns ahead of the kept ones (user/assistant alternation kept).
pub fn with_summary(summary: &str, kept: &[ChatMessage], lang: Lang) -> Vec<ChatMessage> {
    if summary.is_empty() {
        return kept.to_vec();
    }
    let lead = if lang == Lang::De { "Zusammenfassung des bisherigen Gesprächs" } else { "Summary of the earlier conversation" };
    let mut out = with_summary_line(&format!("{lead}: {summary}"), kept);
    if lang == Lang::De && out.get(1).is_some_and(|m| m.role == Role::Assistant && m.content == "Noted.") {
        out[1].content = "Verstanden.".into();
    }
    out
}

/// `line` as a user turn ahead of the kept ones, acknowledged when the kept turns start with the user.
pub fn with_summary_line(line: &str, kept: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut out = vec![ChatMessage::user(line)];
    if kept.first().is_none_or(|m| m.role == Role::User) {
        out.push(ChatMessage::assistant("Noted."));
    }
    out.extend(kept.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn the_newest_turns_that_fit_stay_and_the_rest_is_older() {
        let h = vec![
            ChatMessage::user("one two three four five six"),
            ChatMessage::assistant("a b c d e f"),
            ChatMessage::user("newest question here"),
            ChatMessage::assistant("newest answer"),
        ];
        let (older, kept) = split(&h, 20, &words);
        assert_eq!((older.len(), kept.len()), (2, 2));
        let (none, all) = split(&h, 1000, &words);
        assert_eq!((none.len(), all.len()), (0, 4));
        let msgs = with_summary("They talked about vacation.", kept, Lang::En);
        assert_eq!(msgs.len(), 4, "summary + acknowledgement + the two kept turns");
        assert!(msgs[0].content.starts_with("Summary of the earlier conversation: They talked"));
        assert_eq!(msgs[1].role, Role::Assistant);
        let p = summary_prompt(older, Lang::De);
        assert!(p[0].content.starts_with("Fasse") && p[1].content.contains("Nutzer: "));
        assert_eq!(question_list(&h[..2]), "Earlier in this conversation the user asked: one two three four five six");
    }
}
