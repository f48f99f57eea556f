//! Reading the user's message for the two turns this module owns: a request
//! for a human ("talk to a person", "Mitarbeiter sprechen") and a closing
//! message ("thanks, bye", "danke, tschüss"), German and English, by rules
//! over the message's words (no model: it runs before retrieval on every turn).
//!
//! Owns: these two decisions. Never: what happens next (mod.rs).

/// Nouns for a human (prefixes of lower-cased words, so "mitarbeiter" covers "servicemitarbeiterin").
const HUMAN: &[&str] = &[
    "human", "person", "people", "someone", "somebody", "agent", "representative", "rep", "operator", "staff", "colleague",
    "employee", "supervisor", "manager", "consultant", "advisor", "adviser", "support", "service", "helpdesk", "team",
    "mensch", "menschen", "menschlich", "person", "jemand", "mitarbeiter", "kolleg", "ansprechpartner", "sachbearbeiter",
    "berater", "kundendienst", "kundenservice", "support", "service", "betreuer", "zuständig",
];

/// Words that inside a word also name a human (German compounds: "servicemitarbeiter").
const HUMAN_INFIX: &[&str] = &["mitarbeiter", "berater", "ansprechpartner", "sachbearbeiter", "menschen"];

/// Verbs and frames of a request to be put in touch.
const REQUEST: &[&str] = &[
    "talk", "speak", "chat", "connect", "transfer", "escalate", "forward", "reach", "contact", "call", "hand", "put",
    "need", "want", "get", "like", "prefer", "give",
    "sprechen", "spreche", "reden", "rede", "verbinden", "verbinde", "weiterleiten", "weiterleitung", "übergeben", "übergabe",
    "anrufen", "zurückrufen", "rückruf", "kontakt", "kontaktieren", "erreichen", "brauche", "möchte", "will", "hätte",
    "wünsche", "bitte", "gibt",
];

/// Words that mark the speaker: a request, not a question about people in general.
const SELF: &[&str] = &["i", "i'd", "i'm", "me", "my", "let", "please", "ich", "mich", "mir", "bitte", "sie", "hier", "uns", "wir"];

/// Verbs that open an imperative request.
const IMPERATIVE: &[&str] = &["talk", "speak", "chat", "connect", "transfer", "escalate", "forward", "put", "get", "give", "verbinden", "verbinde", "weiterleiten", "übergeben", "sprechen"];

/// Phrases that are a request for a human on their own.
const STRONG: &[&str] = &[
    "human agent", "live agent", "real person", "real human", "actual person", "actual human", "live person", "live chat",
    "customer service", "customer support", "human being", "a human", "echten menschen", "echter mensch", "einem menschen",
    "einen menschen", "mitarbeiter sprechen", "menschlichen", "persönlich sprechen",
];

/// Question words that make "person" / "Mitarbeiter" the topic, not the wish ("how many employees ...").
const TOPIC_OPENERS: &[&str] = &["how", "what", "who", "which", "when", "why", "wie", "was", "wer", "welche", "welcher", "wann", "warum", "wieso"];

/// Contact details: a question for one ("What extension do I dial to reach the warehouse
/// manager?", "Welche Durchwahl hat die Lagerleitung?") asks for a fact in the documents, so
/// the user can get in touch themselves; it is not a wish to be handed over.
const CONTACT_DETAIL: &[&str] = &[
    "extension", "number", "phone", "telephone", "email", "e-mail", "address", "dial",
    "durchwahl", "nummer", "telefonnummer", "rufnummer", "telefon", "adresse", "sprechzeiten", "sprechzeit", "wählen",
];

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('’', "'"))
        .collect()
}

fn is_human(w: &str) -> bool {
    HUMAN.iter().any(|h| w == *h || (w.starts_with(h) && w.len() <= h.len() + 4)) || HUMAN_INFIX.iter().any(|h| w.contains(h))
}

/// Whether `text` asks to be put in touch with a human.
pub fn wants_human(text: &str) -> bool {
    let w = words(text);
    if w.is_empty() || w.len() > 25 {
        return false;
    }
    let joined = format!(" {} ", w.join(" "));
    let human = w.iter().any(|x| is_human(x));
    let strong = STRONG.iter().any(|p| joined.contains(&format!(" {p} ")) || joined.contains(&format!(" {p}")));
    let request = w.iter().any(|x| REQUEST.contains(&x.as_str()));
    // an imperative ("talk to a person", "verbinden Sie mich") speaks for the speaker too
    let imperative = IMPERATIVE.contains(&w[0].as_str());
    let speaker = imperative || w.iter().any(|x| SELF.contains(&x.as_str()));
    // "How many employees ..." / "Was muss ein Mitarbeiter ...": the human is the topic
    let topic = TOPIC_OPENERS.contains(&w[0].as_str()) && !w.iter().any(|x| ["ich", "i", "me", "mich", "mir"].contains(&x.as_str()));
    if topic {
        return false;
    }
    let asks_detail = TOPIC_OPENERS.contains(&w[0].as_str()) || ["can", "could", "kann", "können", "where", "wo"].contains(&w[0].as_str());
    if asks_detail && !strong && w.iter().any(|x| CONTACT_DETAIL.contains(&x.as_str())) {
        return false;
    }
    if strong && (request || speaker || w.len() <= 6) {
        return true;
    }
    // "Bitte einen Servicemitarbeiter": a short plea for a human
    if human && speaker && w.len() <= 4 {
        return true;
    }
    human && request && speaker
}

const FAREWELL: &[&str] = &["bye", "goodbye", "byebye", "cya", "ciao", "tschüss", "tschüs", "tschau", "wiedersehen", "wiederhören", "adieu", "ade"];
const FAREWELL_PHRASES: &[&str] = &["see you", "have a nice day", "have a good day", "bis bald", "bis dann", "schönen tag", "that's all", "that is all", "that's it", "nothing else", "das war's", "das wars", "das war es", "sonst nichts", "alles klar danke"];

/// Whether `text` closes the conversation ("thanks, bye", "danke, tschüss", "that's all, thank you").
pub fn is_closing(text: &str) -> bool {
    let w = words(text);
    if w.is_empty() || w.len() > 10 || text.contains('?') {
        return false;
    }
    let joined = format!(" {} ", w.join(" "));
    w.iter().any(|x| FAREWELL.contains(&x.as_str())) || FAREWELL_PHRASES.iter().any(|p| joined.contains(&format!(" {p} ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // the development list the rules were written against (the held-out list is heldout.txt)
    const DEV_HUMAN: &[&str] = &[
        "Mitarbeiter sprechen",
        "Ich möchte mit einem Menschen sprechen",
        "mit einem Menschen sprechen",
        "talk to a person",
        "I want to talk to a human agent",
        "human agent",
        "Can I speak to a real person?",
        "please connect me to someone",
        "Kann ich mit einem Mitarbeiter sprechen?",
        "Verbinden Sie mich bitte mit dem Kundendienst",
        "I'd like to speak with customer support",
        "Ich hätte gern einen Ansprechpartner",
    ];
    const DEV_NOT: &[&str] = &[
        "How many vacation days do full-time employees get?",
        "Wie viele Urlaubstage hat ein Mitarbeiter?",
        "What is the notice period for employees?",
        "Who approves vacation requests?",
        "Do I need to call in sick before 9?",
        "Which number do I call to reach the HR manager?",
        "What is the phone number of the IT support team?",
        "Welche Durchwahl muss ich wählen, um die Lagerleitung zu erreichen?",
        "Wo finde ich die E-Mail-Adresse meines Ansprechpartners?",
        "hello",
        "thanks",
    ];
    /// Requests that mention a place or a time stay requests.
    const DEV_HUMAN_MORE: &[&str] = &["Can I talk to someone in the office?", "Could you connect me to a person during office hours?"];

    #[test]
    fn dev_phrasings() {
        for t in DEV_HUMAN {
            assert!(wants_human(t), "{t}");
        }
        for t in DEV_NOT {
            assert!(!wants_human(t), "{t}");
        }
        for t in DEV_HUMAN_MORE {
            assert!(wants_human(t), "{t}");
        }
    }

    /// The held-out list (heldout.txt, written before these rules): reported, and at least
    /// 80 % of the requests recognised with at most one false alarm.
    #[test]
    fn held_out_phrasings() {
        let (mut hit, mut pos, mut false_alarm, mut misses) = (0, 0, 0, Vec::new());
        for line in include_str!("heldout.txt").lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (want, text) = line.split_at(2);
            let got = wants_human(text);
            if want.starts_with('+') {
                pos += 1;
                hit += got as usize;
                if !got {
                    misses.push(text.to_string());
                }
            } else if got {
                false_alarm += 1;
                misses.push(format!("false alarm: {text}"));
            }
        }
        eprintln!("held-out: {hit}/{pos} requests recognised, {false_alarm} false alarm(s); {misses:?}");
        assert!(hit * 10 >= pos * 8 && false_alarm <= 1, "held-out: {hit}/{pos}, {false_alarm} false alarms: {misses:?}");
    }

    #[test]
    fn closing_messages() {
        for t in ["thanks, bye", "Thank you, goodbye!", "danke, tschüss", "Vielen Dank, das war's", "bye", "ok thanks, that's all", "Auf Wiedersehen"] {
            assert!(is_closing(t), "{t}");
        }
        for t in ["thanks", "How do I say goodbye to a colleague who retires?", "Bye-bye policy for leavers: what applies?", "danke"] {
            assert!(!is_closing(t), "{t}");
        }
    }
}
