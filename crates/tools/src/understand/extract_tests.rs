use super::*;

#[test]
fn order_ids_of_any_company() {
    assert_eq!(order_id("Where is my order NL-10234?").as_deref(), Some("NL-10234"));
    assert_eq!(order_id("status of order nl-10240 pls").as_deref(), Some("NL-10240"));
    assert_eq!(order_id("Status Bestellung NL 10247").as_deref(), Some("NL-10247"));
    assert_eq!(order_id("NL10240 bitte").as_deref(), Some("NL10240"));
    assert_eq!(order_id("meine bestellnr. ist nl-10250 – wann kommt die?").as_deref(), Some("NL-10250"));
    assert_eq!(order_id("Wo bleibt AB-77812?").as_deref(), Some("AB-77812"));
    assert_eq!(order_id("order AB-2024-0042 please").as_deref(), Some("AB-2024-0042"));
    assert_eq!(order_id("Bestellung 4711889 ist nicht da").as_deref(), Some("4711889"));
    assert_eq!(order_id("order no. 123456").as_deref(), Some("123456"));
    assert_eq!(order_id("order #88213").as_deref(), Some("88213"));
    assert_eq!(order_id("Auftragsnummer: 55012").as_deref(), Some("55012"));
    assert_eq!(order_id("KD 20931 ist meine Bestellung").as_deref(), Some("KD-20931"));
    // not order ids
    assert_eq!(order_id("How much is the FW-200 firewall?"), None);
    assert_eq!(order_id("Fehlermeldung 0x80070005"), None);
    assert_eq!(order_id("Price for SKU HW-DS-4 please"), None);
    assert_eq!(order_id("Was kostet die USV mit 1500 VA?"), None);
    assert_eq!(order_id("Where's my order? It still hasn't arrived."), None);
    assert_eq!(order_id("Jahresplanung 2027"), None);
    assert_eq!(order_id_reply("10240").as_deref(), Some("10240"));
    assert_eq!(order_id_reply("NL-10240").as_deref(), Some("NL-10240"));
    assert_eq!(order_id_reply("ja"), None);
}

#[test]
fn priorities_said_and_implied() {
    let p = |s| priority(s);
    assert_eq!(p("open ticket, prio high: license server down"), Some("high"));
    assert_eq!(p("Please raise a high-priority ticket: the UPS"), Some("high"));
    assert_eq!(p("Create a low priority ticket - peeling label, no rush."), Some("low"));
    assert_eq!(p("Priorität: niedrig."), Some("low"));
    assert_eq!(p("Priorität normal."), Some("normal"));
    assert_eq!(p("Priority: normal please."), Some("normal"));
    assert_eq!(p("Erstell mir bitte ein Ticket mit hoher Priorität"), Some("high"));
    assert_eq!(p("normale Priorität reicht"), Some("normal"));
    assert_eq!(p("Ticket bitte: VPN bricht ab, das ist dringend!"), Some("high"));
    assert_eq!(p("This is urgent, the whole office goes offline"), Some("high"));
    assert_eq!(p("Die Maus hat einen Fehler. Keine Eile."), Some("low"));
    assert_eq!(p("it's not urgent"), Some("low"));
    assert_eq!(p("nicht dringend, aber nervig"), Some("low"));
    assert_eq!(p("an emergency: the server room is flooding"), Some("high"));
    assert_eq!(p("Bitte sofort ansehen"), Some("high"));
    assert_eq!(p("asap please"), Some("high"));
    assert_eq!(p("the printer jams"), None);
    // said wins over implied
    assert_eq!(p("urgent-sounding, but priority low"), Some("low"));
}

#[test]
fn ticket_text_without_the_request() {
    let d = |s| ticket_description(s);
    assert_eq!(
        d("open ticket, prio high: license server for Office Pro rejects all activations since this morning").as_deref(),
        Some("License server for Office Pro rejects all activations since this morning")
    );
    assert_eq!(
        d("Please raise a high-priority ticket: the UPS in the server room is beeping and reports a battery failure.")
            .as_deref(),
        Some("The UPS in the server room is beeping and reports a battery failure.")
    );
    assert_eq!(
        d("Create a low priority ticket - the label on my docking station is peeling off, no rush.").as_deref(),
        Some("The label on my docking station is peeling off.")
    );
    assert_eq!(
        d("Hey, can you file a ticket for me? The new wireless keyboards came with a US layout instead of German. Low priority.")
            .as_deref(),
        Some("The new wireless keyboards came with a US layout instead of German.")
    );
    assert_eq!(
        d("I need a support ticket for our NAS, one disk shows SMART warnings. Priority: normal please.").as_deref(),
        Some("Our NAS, one disk shows SMART warnings.")
    );
    assert_eq!(
        d("Würden Sie bitte eine Störungsmeldung aufnehmen? Der Access Point im 2. OG fällt sporadisch aus, normale Priorität reicht.")
            .as_deref(),
        Some("Der Access Point im 2. OG fällt sporadisch aus.")
    );
    assert_eq!(
        d("Kannst du ein Support-Ticket aufmachen? Die Maus M2 hat einen Doppelklick-Fehler. Keine Eile.").as_deref(),
        Some("Die Maus M2 hat einen Doppelklick-Fehler.")
    );
    assert_eq!(
        d("Ticket bitte: Die VPN-Verbindung bricht bei allen Außendienstlern ständig ab, das ist dringend!").as_deref(),
        Some("Die VPN-Verbindung bricht bei allen Außendienstlern ständig ab!")
    );
    assert_eq!(
        d("Ich möchte melden, dass der Drucker im 3. Stock kaputt ist.").as_deref(),
        Some("Der Drucker im 3. Stock kaputt ist.")
    );
    // nothing described
    assert_eq!(d("Please open a high priority ticket."), None);
    assert_eq!(d("Kannst du mir ein Ticket aufmachen?"), None);
    assert_eq!(d("open a ticket"), None);
}

#[test]
fn subjects_are_short() {
    assert_eq!(ticket_subject("The UPS is beeping. It reports a battery failure."), "The UPS is beeping");
    let long = "The firewall at our Kiel office keeps rebooting every few hours and nobody can work while it restarts again";
    let s = ticket_subject(long);
    assert!(s.chars().count() <= 80 && s.ends_with('…'), "{s}");
}

#[test]
fn appointment_topics() {
    let t = |s: &str| topic(s, &[]);
    assert_eq!(t("Book me an appointment for tomorrow about the NAS offer.").as_deref(), Some("NAS offer"));
    assert_eq!(t("einen Termin wegen der Thin-Client-Umstellung.").as_deref(), Some("Thin-Client-Umstellung"));
    assert_eq!(t("Es geht um die Firewall-Schulung.").as_deref(), Some("Firewall-Schulung"));
    assert_eq!(t("Topic: onboarding of our new admin.").as_deref(), Some("onboarding of our new admin"));
    assert_eq!(t("Termin, Thema Jahresplanung 2027.").as_deref(), Some("Jahresplanung 2027"));
    assert_eq!(t("a call to discuss the NAS upgrade.").as_deref(), Some("NAS upgrade"));
    let text = "Bitte buchen Sie mir für Mittwoch um 9 Uhr einen Termin zur Vertragsverlängerung, eine Stunde.";
    let start = text.find("Mittwoch").unwrap();
    let w = text.find("um 9 Uhr").unwrap();
    let e = text.find("eine Stunde").unwrap();
    let spans = [(start, start + 8), (w, w + 8), (e, e + 11)];
    assert_eq!(topic(text, &spans).as_deref(), Some("Vertragsverlängerung"));
    assert_eq!(t("Book me an appointment tomorrow at 10."), None);
}

#[test]
fn products_without_the_question() {
    let p = |s| product(s);
    assert_eq!(p("How much is the FW-200 firewall appliance?").as_deref(), Some("FW-200 firewall appliance"));
    assert_eq!(p("hw much is the thin clint TC10??").as_deref(), Some("thin clint TC10"));
    assert_eq!(p("Was kostet bei euch die USV mit 1500 VA?").as_deref(), Some("USV mit 1500 VA"));
    assert_eq!(
        p("Could you tell me how much the Database Enterprise Edition costs?").as_deref(),
        Some("Database Enterprise Edition")
    );
    assert_eq!(
        p("Können Sie mir sagen, was der Installationsservice pro Stunde kostet?").as_deref(),
        Some("Installationsservice pro Stunde")
    );
    assert_eq!(p("Price for SKU HW-DS-4 please").as_deref(), Some("HW-DS-4"));
    assert_eq!(p("wieviel kostet das notebok nordlicht book 14").as_deref(), Some("notebok nordlicht book 14"));
    assert_eq!(p("Preis für SW-MDM-1?").as_deref(), Some("SW-MDM-1"));
    assert_eq!(p("what does the gold support package cost per year?").as_deref(), Some("gold support package per year"));
    assert_eq!(p("How much does it cost?"), None);
    assert_eq!(p("Was kostet das?"), None);
}
