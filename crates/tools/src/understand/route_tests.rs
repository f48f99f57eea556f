use super::*;
use crate::understand::builtin_cards;

fn tool(text: &str) -> Option<String> {
    route(text, tresor_text::language(text), &builtin_cards()).tool
}

#[test]
fn built_in_intents_en_de() {
    let cases = [
        ("How much is the FW-200 firewall appliance?", Some(PRICE_LOOKUP)),
        ("Was kostet das Headset HS-7?", Some(PRICE_LOOKUP)),
        ("Preis für SW-MDM-1?", Some(PRICE_LOOKUP)),
        ("Wie teuer ist die Lizenz für Backup Pro?", Some(PRICE_LOOKUP)),
        ("Where is my order NL-10234?", Some(ORDER_STATUS)),
        ("Any news on AB-77812?", Some(ORDER_STATUS)),
        ("Ist die Bestellung XY-55512 schon raus?", Some(ORDER_STATUS)),
        ("Where's my order? It still hasn't arrived.", Some(ORDER_STATUS)),
        ("Können Sie mir den Status meiner Bestellung sagen?", Some(ORDER_STATUS)),
        ("Book me an appointment for tomorrow about the NAS offer.", Some(BOOK_APPOINTMENT)),
        ("Ich würde gern einen Beratungstermin zum Thema Firewall ausmachen.", Some(BOOK_APPOINTMENT)),
        ("Hallo, ich hätte gern am 16.12. um 11:15 einen Termin.", Some(BOOK_APPOINTMENT)),
        ("can u book me in for next week wednesday 10:45", Some(BOOK_APPOINTMENT)),
        ("Please open a ticket: the printer is broken", Some(CREATE_TICKET)),
        ("Ticket bitte: VPN fällt ständig aus", Some(CREATE_TICKET)),
        ("Würden Sie bitte eine Störungsmeldung aufnehmen? Der AP fällt aus.", Some(CREATE_TICKET)),
        ("I want to report a problem: the scanner jams", Some(CREATE_TICKET)),
        // a ticket that names an order is a ticket
        ("Ich möchte ein Ticket eröffnen: Die Rechnung zu Bestellung NL-10241 ist falsch.", Some(CREATE_TICKET)),
    ];
    for (text, want) in cases {
        assert_eq!(tool(text).as_deref(), want, "{text}");
    }
}

#[test]
fn hard_negatives_need_no_tool() {
    for text in [
        "How does the RMA process work?",
        "Wie funktioniert bei euch eine Rücksendung mit RMA-Nummer?",
        "Wie lang muss mein Passwort sein?",
        "Which email address do I use to report a problem to support?",
        "Wohin melde ich eine Phishing-Mail?",
        "How do I open a ticket?",
        "Wie vereinbare ich einen Termin mit dem Support?",
        "Can you write a short polite email declining a meeting invitation?",
        "What are the hotline's support hours?",
        "Werden die Hotelkosten auf Dienstreisen erstattet?",
        "How long is the warranty on hardware?",
        "thanks, that's all for now",
        "Guten Morgen, wer bist du eigentlich?",
        "What's the difference between a switch and a router?",
        "How do I return an order?",
        "Can I book a meeting room for Friday?",
    ] {
        let d = route(text, tresor_text::language(text), &builtin_cards());
        assert_eq!(d.tool, None, "{text}: {d:?}");
    }
}

#[test]
fn only_the_cards_given_are_routed() {
    let cards: Vec<ToolCard> = builtin_cards().into_iter().filter(|c| c.name != PRICE_LOOKUP).collect();
    let d = route("Was kostet das Headset?", Lang::De, &cards);
    assert_eq!(d.tool, None);
}

fn time_card() -> ToolCard {
    ToolCard {
        name: "time.get_current_time".into(),
        description_en: "Get current time in a specific timezone".into(),
        description_de: String::new(),
        examples: vec![],
        read_only: true,
    }
}

#[test]
fn other_cards_by_lexical_similarity() {
    let mut cards = builtin_cards();
    cards.push(time_card());
    let d = route("What is the current time in Tokyo timezone?", Lang::En, &cards);
    assert_eq!(d.tool.as_deref(), Some("time.get_current_time"), "{d:?}");
    let d = route("Get me the current time for the Europe/Berlin timezone", Lang::En, &cards);
    assert_eq!(d.tool.as_deref(), Some("time.get_current_time"), "{d:?}");
    // not every mention of a word of the card
    let d = route("How long is the warranty on hardware this time?", Lang::En, &cards);
    assert_eq!(d.tool, None, "{d:?}");
    let d = route("thanks, that's all for now", Lang::En, &cards);
    assert_eq!(d.tool, None, "{d:?}");
}

#[test]
fn similarity_callback_adds_evidence() {
    let cards = vec![ToolCard {
        name: "crm.lookup_customer".into(),
        description_en: "Look up a customer record".into(),
        description_de: String::new(),
        examples: vec!["Show me the account of ACME".into()],
        read_only: true,
    }];
    let text = "Pull up what we have on Initech";
    assert_eq!(route(text, Lang::En, &cards).tool, None);
    let sim = |_q: &str, texts: &[&str]| texts.iter().map(|_| 0.9f32).collect::<Vec<_>>();
    let d = route_with(text, Lang::En, &cards, Some(&sim));
    assert_eq!(d.tool.as_deref(), Some("crm.lookup_customer"));
    let low = |_q: &str, texts: &[&str]| texts.iter().map(|_| 0.5f32).collect::<Vec<_>>();
    assert_eq!(route_with(text, Lang::En, &cards, Some(&low)).tool, None);
}

#[test]
fn more_messages_that_need_no_tool() {
    let mut bad = Vec::new();
    for text in [
        // documents: policies, processes, facts
        "Sind die Preise inklusive Mehrwertsteuer?",
        "Do your prices include VAT?",
        "What is the notice period for cancelling the support contract?",
        "Wie lange dauert die Lieferung normalerweise?",
        "How long does shipping usually take?",
        "Was muss ich bei einer Reklamation beachten?",
        "Who pays for the return shipping?",
        "Wer übernimmt die Kosten für die Bahncard?",
        "Wann ist die Hotline erreichbar?",
        "Is there a fee for express delivery?",
        "How do I reset my VPN password?",
        "Welche Daten darf ich auf einem USB-Stick speichern?",
        "Where can I find the travel expense form?",
        "What happens if my order arrives damaged?",
        "Kann ich eine Bestellung stornieren?",
        "How are support tickets prioritised?",
        "Wie schnell wird ein Ticket mit hoher Priorität bearbeitet?",
        "Do you offer on-site appointments?",
        "I have a meeting tomorrow at 10, what should I prepare?",
        // small talk and general
        "Hello!",
        "Danke dir, bis morgen!",
        "You're great, thanks a lot",
        "Wie geht's?",
        "Tell me a joke about printers",
        "Translate 'order confirmation' into German",
        "Schreib eine E-Mail an den Kunden, dass sich die Lieferung verzögert.",
        "Fasse mir das Meeting von gestern zusammen.",
        "What is 15% of 240?",
        "Wie viel Speicher braucht Windows 11?",
    ] {
        let d = route(text, tresor_text::language(text), &builtin_cards());
        if d.tool.is_some() {
            bad.push(format!("{text}: {d:?}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn more_requests_that_need_a_tool() {
    let mut bad = Vec::new();
    let cases = [
        ("What do you charge for on-site installation?", PRICE_LOOKUP),
        ("Kosten für das Dock DS-4?", PRICE_LOOKUP),
        ("How much for two licences of Office Pro?", PRICE_LOOKUP),
        ("Lieferstatus ZX-48213?", ORDER_STATUS),
        ("When will ZX-48213 arrive?", ORDER_STATUS),
        ("Track order 7781234", ORDER_STATUS),
        ("Wurde meine Bestellung schon verschickt?", ORDER_STATUS),
        ("Hätten Sie Donnerstag um 14 Uhr Zeit für ein Gespräch?", BOOK_APPOINTMENT),
        ("Is a slot free on Friday at 10?", BOOK_APPOINTMENT),
        ("Reserve 30 minutes with support tomorrow at 9", BOOK_APPOINTMENT),
        ("Bitte Termin: Freitag 10 Uhr", BOOK_APPOINTMENT),
        ("Log an incident: mail server down", CREATE_TICKET),
        ("Bitte melden Sie eine Störung: Das WLAN im Lager ist weg.", CREATE_TICKET),
        ("Open a new case: the badge reader rejects all cards", CREATE_TICKET),
        ("Ticket: monitor flickers, low priority", CREATE_TICKET),
    ];
    for (text, want) in cases {
        let d = route(text, tresor_text::language(text), &builtin_cards());
        if d.tool.as_deref() != Some(want) {
            bad.push(format!("{text}: {d:?}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
