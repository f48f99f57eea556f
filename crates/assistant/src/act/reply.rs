//! What the assistant says about an action, in the question's language:
//! a looked-up price or order status, the question for a missing argument,
//! the proposal that waits for confirmation, and each outcome.
//!
//! Owns: these sentences (English and German) and the number and status
//! wording in them. Never: decides anything — the state and the result come
//! from the action layer; a price is only ever the one the tool returned.

use serde_json::Value;
use tresor_kb::lang::Lang;

/// Field names as the user reads them.
fn field(name: &str, de: bool) -> String {
    let (en, g) = match name {
        "order_id" => ("order number", "Bestellnummer"),
        "date" => ("date", "Datum"),
        "time" => ("time", "Uhrzeit"),
        "duration_minutes" => ("duration", "Dauer"),
        "description" => ("a description of the problem", "eine Beschreibung des Problems"),
        "subject" => ("a subject", "einen Betreff"),
        "product" => ("the product", "das Produkt"),
        "priority" => ("priority", "Priorität"),
        other => (other, other),
    };
    if de { g } else { en }.to_string()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `1290.00` as the language writes it: `1,290.00` (English), `1.290,00` (German).
pub fn money(price: &str, de: bool) -> String {
    let (int, frac) = price.split_once('.').unwrap_or((price, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return price.to_string();
    }
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(if de { '.' } else { ',' });
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        grouped
    } else {
        format!("{grouped}{}{frac}", if de { ',' } else { '.' })
    }
}

/// An order status in words (the stored code where it has no translation).
pub fn status_words(code: &str, de: bool) -> String {
    let w = match (code, de) {
        ("processing", false) => "being processed (processing)",
        ("processing", true) => "in Bearbeitung",
        ("shipped", false) => "shipped",
        ("shipped", true) => "versandt (unterwegs)",
        ("delivered", false) => "delivered",
        ("delivered", true) => "zugestellt",
        ("cancelled", false) => "cancelled",
        ("cancelled", true) => "storniert",
        ("on_hold", false) => "on hold",
        ("on_hold", true) => "angehalten (on hold)",
        ("returned", false) => "returned",
        ("returned", true) => "zurückgesendet (Retoure)",
        ("awaiting_payment", false) => "awaiting payment",
        ("awaiting_payment", true) => "wartet auf Zahlung",
        (other, _) => return other.replace('_', " "),
    };
    w.to_string()
}

/// The answer for a read-only tool's result.
pub fn result(tool: &str, r: &Value, lang: Lang) -> String {
    let de = lang == Lang::De;
    match tool {
        "price_lookup" => {
            let price = money(s(r, "price"), de);
            let (product, sku, cur) = (s(r, "product"), s(r, "sku"), s(r, "currency"));
            if de {
                format!("{product} ({sku}) kostet laut Preisliste {price} {cur}.")
            } else {
                format!("{product} ({sku}) costs {price} {cur} according to the price list.")
            }
        }
        "order_status" => {
            let (id, st, when) = (s(r, "order_id"), status_words(s(r, "status"), de), s(r, "updated_at"));
            if de {
                format!("Bestellung {id}: Status {st} (zuletzt aktualisiert am {when}).")
            } else {
                format!("Order {id} is {st} (last updated {when}).")
            }
        }
        "book_appointment" => {
            let (d, t) = (s(r, "date"), s(r, "time"));
            let dur = r.get("duration_minutes").and_then(Value::as_u64).unwrap_or(30);
            let id = s(r, "appointment_id");
            if de {
                format!("Der Termin ist eingetragen: {d} um {t} Uhr ({dur} Min.), Nummer {id}.")
            } else {
                format!("Your appointment is booked: {d} at {t} ({dur} min), number {id}.")
            }
        }
        "create_ticket" => {
            let (id, subj, prio) = (s(r, "ticket_id"), s(r, "subject"), s(r, "priority"));
            if de {
                format!("Ticket {id} ist angelegt: „{subj}“ (Priorität {prio}).")
            } else {
                format!("Ticket {id} is open: “{subj}” (priority {prio}).")
            }
        }
        other => {
            let body = match r {
                Value::String(t) => t.clone(),
                v => v.to_string(),
            };
            let body: String = body.chars().take(1500).collect();
            if de {
                format!("Ergebnis von {other}: {body}")
            } else {
                format!("Result of {other}: {body}")
            }
        }
    }
}

/// The question for the arguments the user has not given yet.
pub fn ask_missing(tool: &str, args: &Value, missing: &[String], lang: Lang) -> String {
    let de = lang == Lang::De;
    let has = |k: &str| missing.iter().any(|m| m == k);
    match tool {
        "order_status" if has("order_id") => {
            if de { "Welche Bestellnummer soll ich nachsehen? Sie steht in Ihrer Bestellbestätigung." } else { "Which order number should I look up? It is on your order confirmation." }.into()
        }
        "book_appointment" if has("date") && has("time") => {
            if de { "Für welchen Tag und welche Uhrzeit soll ich den Termin eintragen?" } else { "For which day and time should I book the appointment?" }.into()
        }
        "book_appointment" if has("time") => {
            let d = s(args, "date");
            if de { format!("Um wie viel Uhr am {d} soll der Termin sein?") } else { format!("At what time on {d} should the appointment be?") }
        }
        "book_appointment" if has("date") => {
            if de { "An welchem Tag soll der Termin sein?" } else { "On which day should the appointment be?" }.into()
        }
        "create_ticket" if has("description") || has("subject") => {
            if de { "Bitte beschreiben Sie das Problem für das Ticket kurz." } else { "Please describe the problem for the ticket in a sentence or two." }.into()
        }
        "price_lookup" => {
            if de { "Für welches Produkt möchten Sie den Preis wissen?" } else { "Which product's price would you like to know?" }.into()
        }
        _ => {
            let names: Vec<String> = missing.iter().map(|m| field(m, de)).collect();
            if de { format!("Dafür brauche ich noch: {}.", names.join(", ")) } else { format!("For that I still need: {}.", names.join(", ")) }
        }
    }
}

/// The proposal of a side effect, waiting for the user's yes or no.
pub fn propose(tool: &str, args: &Value, lang: Lang) -> String {
    let de = lang == Lang::De;
    match tool {
        "book_appointment" => {
            let (d, t) = (s(args, "date"), s(args, "time"));
            let dur = args.get("duration_minutes").and_then(Value::as_u64).unwrap_or(30);
            let topic = s(args, "topic");
            let about = match (topic.is_empty(), de) {
                (true, _) => String::new(),
                (false, true) => format!(" zum Thema „{topic}“"),
                (false, false) => format!(" about “{topic}”"),
            };
            if de {
                format!("Ich kann einen Termin am {d} um {t} Uhr ({dur} Min.){about} eintragen. Soll ich das tun? Bitte bestätigen oder ablehnen.")
            } else {
                format!("I can book an appointment on {d} at {t} ({dur} min){about}. Shall I? Please confirm or decline.")
            }
        }
        "create_ticket" => {
            let (subj, prio) = (s(args, "subject"), s(args, "priority"));
            let prio = if prio.is_empty() { "normal" } else { prio };
            if de {
                format!("Ich kann ein Ticket „{subj}“ mit Priorität {prio} anlegen. Soll ich das tun? Bitte bestätigen oder ablehnen.")
            } else {
                format!("I can open a ticket “{subj}” with priority {prio}. Shall I? Please confirm or decline.")
            }
        }
        other => {
            if de {
                format!("Ich kann {other} mit {args} ausführen. Soll ich das tun? Bitte bestätigen oder ablehnen.")
            } else {
                format!("I can run {other} with {args}. Shall I? Please confirm or decline.")
            }
        }
    }
}

/// A failed, timed-out or declined action.
pub fn outcome(tool: &str, status: &str, error: Option<&str>, lang: Lang) -> String {
    let de = lang == Lang::De;
    let err = error.unwrap_or("");
    match status {
        "declined" => if de { "In Ordnung, ich führe das nicht aus.".into() } else { "All right, I won't do that.".to_string() },
        "timed_out" => {
            if de { format!("{tool} hat nicht rechtzeitig geantwortet; es wurde nichts ausgeführt, was ich bestätigen könnte.") } else { format!("{tool} did not answer in time; nothing was confirmed as done.") }
        }
        _ => {
            if de { format!("Das hat nicht geklappt: {err}") } else { format!("That did not work: {err}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_written_the_languages_way() {
        assert_eq!(money("1290.00", false), "1,290.00");
        assert_eq!(money("1290.00", true), "1.290,00");
        assert_eq!(money("39.90", true), "39,90");
        assert_eq!(money("4990", false), "4,990");
        assert_eq!(money("n/a", false), "n/a");
    }

    #[test]
    fn a_price_answer_names_product_sku_price_and_currency() {
        let r = json!({"sku": "HW-FW-200", "product": "Firewall Appliance FW-200", "price": "1290.00", "currency": "EUR"});
        let en = result("price_lookup", &r, Lang::En);
        assert!(en.contains("1,290.00 EUR") && en.contains("HW-FW-200"), "{en}");
        let de = result("price_lookup", &r, Lang::De);
        assert!(de.contains("1.290,00 EUR") && de.contains("kostet"), "{de}");
    }

    #[test]
    fn order_status_words_hold_the_code_or_its_translation() {
        let r = json!({"order_id": "NL-1", "status": "on_hold", "updated_at": "2026-12-03"});
        assert!(result("order_status", &r, Lang::En).contains("on hold"));
        assert!(result("order_status", &r, Lang::De).contains("angehalten"));
        assert_eq!(status_words("lost_in_space", false), "lost in space");
    }

    #[test]
    fn missing_arguments_are_asked_for() {
        let q = ask_missing("book_appointment", &json!({"date": "2026-12-14"}), &["time".into()], Lang::De);
        assert!(q.contains("2026-12-14") && q.contains("Uhr"), "{q}");
        let q = ask_missing("order_status", &json!({}), &["order_id".into()], Lang::En);
        assert!(q.contains("order number"), "{q}");
    }
}
