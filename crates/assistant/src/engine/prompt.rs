//! The prompts of a grounded answer: a short instruction, the numbered
//! passages (spotlighted), the question; and the stricter second try.
//!
//! Owns: the prompt wording in German and English. Never: which passages go in (`pack.rs`).

use tresor_kb::lang::Lang;
use tresor_llm::ChatMessage;

use crate::pack::{self, Passage};

/// The prompt: a short instruction, the numbered passages, the question
/// (passages spotlighted: delimited and datamarked, see tresor-guard).
pub fn prompt_messages(question: &str, passages: &[Passage], lang: Lang) -> Vec<ChatMessage> {
    prompt_messages_marked(question, passages, lang, Some(tresor_guard::injection::Marking::default()))
}

/// [`prompt_messages`] with a chosen spotlight marking; None: plain passages (firewall off).
pub fn prompt_messages_marked(question: &str, passages: &[Passage], lang: Lang, marking: Option<tresor_guard::injection::Marking>) -> Vec<ChatMessage> {
    use tresor_guard::injection::spotlight;
    let base = base_instruction(lang);
    let system = match marking {
        Some(m) => format!("{base}{}", spotlight::system_note(lang == Lang::De, m)),
        None => base.to_string(),
    };
    let mut user = String::from(if lang == Lang::De { "Quellen:\n" } else { "Sources:\n" });
    for (i, p) in passages.iter().enumerate() {
        match marking {
            Some(m) => user.push_str(&format!("[{}] {}\n\n", i + 1, spotlight::wrap(i + 1, &pack::label(&p.hit), p.text.trim(), m))),
            None => user.push_str(&format!("[{}] {}\n{}\n\n", i + 1, pack::label(&p.hit), p.text.trim())),
        }
    }
    user.push_str(if lang == Lang::De { "Frage: " } else { "Question: " });
    user.push_str(question);
    vec![ChatMessage::system(system), ChatMessage::user(user)]
}

/// [`prompt_messages_marked`] with the chosen evidence (`choice.rs`) named before the question:
/// the sentences that most likely answer it, each with its source number (spotlighted like the
/// passages when a marking is set), so that the model states that fact.
pub fn evidence_prompt_messages(
    question: &str,
    passages: &[Passage],
    lang: Lang,
    marking: Option<tresor_guard::injection::Marking>,
    evidence: &[(String, usize)],
) -> Vec<ChatMessage> {
    use tresor_guard::injection::spotlight;
    let mut m = prompt_messages_marked(question, passages, lang, marking);
    if evidence.is_empty() {
        return m;
    }
    let q_label = if lang == Lang::De { "Frage: " } else { "Question: " };
    let mut hint = String::from(if lang == Lang::De { "Die Antwort steht am ehesten hier:\n" } else { "The answer is most likely here:\n" });
    for (s, pi) in evidence {
        match marking {
            Some(mk) => hint.push_str(&format!("[{}] {}\n", pi + 1, spotlight::wrap(pi + 1, "", s.trim(), mk))),
            None => hint.push_str(&format!("[{}] {}\n", pi + 1, s.trim())),
        }
    }
    hint.push('\n');
    if let Some(user) = m.get_mut(1) {
        if let Some(i) = user.content.rfind(q_label) {
            user.content.insert_str(i, &hint);
        }
    }
    m
}

/// The built-in instruction of a grounded answer.
fn base_instruction(lang: Lang) -> &'static str {
    match lang {
        Lang::De => "Du beantwortest Fragen nur mit den Quellen. Nenne die Tatsache, nach der gefragt ist, in ein bis zwei kurzen Sätzen auf Deutsch und übernimm die Worte der Quellen. Wenn die Quellen die Antwort nicht enthalten, sage, dass du es nicht weißt.",
        Lang::En => "You answer questions using only the sources. State the fact that answers the question in one or two short sentences in English, reusing the words of the sources. If the sources do not contain the answer, say that you do not know.",
    }
}

/// A release's instruction in place of the built-in one (the spotlighting note and the passages stay).
pub(crate) fn apply_release(msgs: &mut [ChatMessage], prompt: Option<&crate::release::PromptSet>, lang: Lang) {
    if let (Some(custom), Some(first)) = (crate::release::instruction(prompt, lang == Lang::De), msgs.first_mut()) {
        first.content = first.content.replacen(base_instruction(lang), custom, 1);
    }
}

/// The second try's prompt: only the best passage, and the instruction to answer with one of its
/// sentences word for word (the small models' own phrasing is what failed the citation check).
pub fn strict_prompt_messages(question: &str, passages: &[Passage], lang: Lang, marking: Option<tresor_guard::injection::Marking>) -> Vec<ChatMessage> {
    let mut m = prompt_messages_marked(question, passages, lang, marking);
    let strict = match lang {
        Lang::De => "Antworte mit genau einem Satz, den du wörtlich aus der Quelle übernimmst und der die Frage beantwortet. Füge nichts hinzu.",
        Lang::En => "Answer with exactly one sentence copied word for word from the source that answers the question. Add nothing else.",
    };
    m[0].content = format!("{strict} {}", m[0].content);
    m
}

