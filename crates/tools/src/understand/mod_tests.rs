use super::*;

fn now(s: &str) -> Zoned {
    format!("{s}[Europe/Berlin]").parse().unwrap()
}
fn u(text: &str, at: &str) -> Understanding {
    understand(text, &now(at), &builtin_cards())
}

#[test]
fn booking_with_everything_said() {
    let x = u("Please book a meeting on Monday at 1 pm for an hour to discuss the NAS upgrade.", "2026-12-11T16:20:00+01:00");
    assert_eq!(x.tool.as_deref(), Some(BOOK_APPOINTMENT));
    assert_eq!(x.arguments["date"], "2026-12-14");
    assert_eq!(x.arguments["time"], "13:00");
    assert_eq!(x.arguments["duration_minutes"], 60);
    assert_eq!(x.arguments["topic"], "NAS upgrade");
    assert!(x.missing.is_empty());
    assert_eq!(x.lang, Lang::En);
}

#[test]
fn nothing_is_invented() {
    let x = u("Ich würde gern einen Beratungstermin zum Thema Firewall ausmachen.", "2026-12-11T16:20:00+01:00");
    assert_eq!(x.tool.as_deref(), Some(BOOK_APPOINTMENT));
    assert_eq!(x.missing, ["date", "time"]);
    assert!(!x.arguments.contains_key("date") && !x.arguments.contains_key("time"));
    assert_eq!(x.arguments["duration_minutes"], 30); // the schema's default
    let x = u("Where's my order? It still hasn't arrived.", "2026-12-07T09:30:00+01:00");
    assert_eq!(x.tool.as_deref(), Some(ORDER_STATUS));
    assert_eq!(x.missing, ["order_id"]);
    assert!(x.arguments.is_empty());
    let x = u("Please open a high priority ticket.", "2026-12-07T09:30:00+01:00");
    assert_eq!(x.tool.as_deref(), Some(CREATE_TICKET));
    assert_eq!(x.missing, ["subject", "description"]);
    assert_eq!(x.arguments["priority"], "high");
}

#[test]
fn no_tool_no_arguments() {
    let x = u("Erklär mir kurz, was ein VPN ist.", "2026-12-07T09:30:00+01:00");
    assert_eq!(x.tool, None);
    assert!(x.arguments.is_empty() && x.missing.is_empty());
}

#[test]
fn ticket_arguments() {
    let x = u(
        "Please open a ticket: the FW-200 firewall at our Kiel office keeps rebooting every few hours. This is urgent, the whole office goes offline each time.",
        "2026-12-07T09:30:00+01:00",
    );
    assert_eq!(x.tool.as_deref(), Some(CREATE_TICKET));
    assert_eq!(x.arguments["priority"], "high");
    assert_eq!(x.arguments["subject"], "The FW-200 firewall at our Kiel office keeps rebooting every few hours");
    assert!(x.arguments["description"].as_str().unwrap().contains("whole office goes offline"));
}

#[test]
fn follow_ups_fill_what_was_missing() {
    let n = now("2026-12-10T08:45:00+01:00");
    let x = understand("Ich möchte einen Termin am Montag vereinbaren, Thema Lizenzaudit.", &n, &builtin_cards());
    assert_eq!(x.missing, ["time"]);
    let (args, missing) = fill(BOOK_APPOINTMENT, &x.arguments, "um 14 Uhr", &n);
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(args["date"], "2026-12-14");
    assert_eq!(args["time"], "14:00");
    assert_eq!(args["topic"], "Lizenzaudit");
    let (args, _) = fill(BOOK_APPOINTMENT, &x.arguments, "14", &n);
    assert_eq!(args["time"], "14:00");

    let x = understand("Ich würde gern einen Beratungstermin ausmachen.", &n, &builtin_cards());
    let (args, missing) = fill(BOOK_APPOINTMENT, &x.arguments, "tomorrow at 10", &n);
    assert!(missing.is_empty());
    assert_eq!((args["date"].as_str(), args["time"].as_str()), (Some("2026-12-11"), Some("10:00")));
    let (_, missing) = fill(BOOK_APPOINTMENT, &x.arguments, "am Freitag", &n);
    assert_eq!(missing, ["time"]);

    let x = understand("Where's my order?", &n, &builtin_cards());
    let (args, missing) = fill(ORDER_STATUS, &x.arguments, "NL-10240", &n);
    assert!(missing.is_empty());
    assert_eq!(args["order_id"], "NL-10240");
    let (_, missing) = fill(ORDER_STATUS, &x.arguments, "I don't know", &n);
    assert_eq!(missing, ["order_id"]);

    let x = understand("Please open a high priority ticket.", &n, &builtin_cards());
    let (args, missing) = fill(CREATE_TICKET, &x.arguments, "The scanner on floor 2 jams on every page.", &n);
    assert!(missing.is_empty());
    assert_eq!(args["priority"], "high");
    assert_eq!(args["subject"], "The scanner on floor 2 jams on every page");
}

#[test]
fn mcp_tools_are_routed_without_arguments() {
    let mut cards = builtin_cards();
    cards.push(ToolCard {
        name: "time.get_current_time".into(),
        description_en: "Get current time in a specific timezone".into(),
        description_de: String::new(),
        examples: vec![],
        read_only: true,
    });
    let x = understand("What is the current time in Tokyo timezone?", &now("2026-12-10T08:45:00+01:00"), &cards);
    assert_eq!(x.tool.as_deref(), Some("time.get_current_time"));
    assert!(x.arguments.is_empty() && x.missing.is_empty());
}
