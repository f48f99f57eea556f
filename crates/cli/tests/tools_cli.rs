//! `tresor tools ...` end to end on the real binary: the development data of
//! ../shared/eval/tools_dev imported into an encrypted data dir, the tool
//! list's JSON contract, and a broken file that names FILE:LINE and imports
//! nothing.

mod common;

use std::path::PathBuf;

use common::Cli;

fn dev(file: &str) -> String {
    let p = common::repo().join("../shared/eval/tools_dev").join(file);
    assert!(p.is_file(), "{} is missing: the tools dev set must be at ../shared/eval/tools_dev", p.display());
    p.display().to_string()
}

#[test]
fn imports_the_dev_data_lists_the_tools_and_refuses_a_broken_file_whole() {
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path(), Some("tools test passphrase"));

    let prices = cli.json(&["tools", "import", "prices", &dev("prices.csv"), "--json"]);
    assert_eq!(prices["rows"], 27);
    let out = cli.ok(&["tools", "import", "orders", &dev("orders.csv")]);
    assert!(out.contains("imported 20 orders"), "{out}");
    let cal = cli.json(&["tools", "import", "calendar", &dev("calendar.ics"), "--json"]);
    assert_eq!(cal["rows"], 16);
    // the store is encrypted like the rest of the data dir
    let db = std::fs::read(home.path().join("tools.sqlite")).unwrap();
    assert!(!db.starts_with(b"SQLite format 3"));
    assert!(!String::from_utf8_lossy(&db).contains("Firewall Appliance"));

    let list = cli.json(&["tools", "list", "--json"]);
    let tools = list.as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["price_lookup", "order_status", "book_appointment", "create_ticket"]);
    for t in tools {
        assert_eq!(t["source"], "builtin");
        assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(t["schema"]["type"], "object");
    }
    let side: Vec<&str> = tools.iter().map(|t| t["side_effect"].as_str().unwrap()).collect();
    assert_eq!(side, ["read_only", "read_only", "side_effect", "side_effect"]);
    assert_eq!(tools[2]["schema"]["properties"]["duration_minutes"]["default"], 30);
    assert_eq!(tools[3]["schema"]["properties"]["priority"]["enum"], serde_json::json!(["low", "normal", "high"]));

    // a broken price list: FILE:LINE, exit status 1, the old list untouched
    let bad = home.path().join("broken.csv");
    std::fs::write(&bad, "sku,product,price,currency\nX-1,Widget,12.50,EUR\nX-2,Gadget,12,50,EUR\n").unwrap();
    let err = cli.fails(&["tools", "import", "prices", bad.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let bad_ics = home.path().join("broken.ics");
    std::fs::write(&bad_ics, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:2026-12-08 10:00\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").unwrap();
    let err = cli.fails(&["tools", "import", "calendar", bad_ics.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:3:", bad_ics.display())), "{err}");
    // still 27 prices and 16 busy times: check through a re-import's "replacing" count
    let again = cli.json(&["tools", "import", "prices", &dev("prices.csv"), "--json"]);
    assert_eq!(again["replaced"], 27);
    let again = cli.json(&["tools", "import", "calendar", &dev("calendar.ics"), "--json"]);
    assert_eq!(again["replaced"], 16);

    // nothing booked yet: an empty list and a valid, empty calendar export
    assert_eq!(cli.json(&["tools", "appointments", "--json"]), serde_json::json!([]));
    assert_eq!(cli.json(&["tools", "tickets", "--json"]), serde_json::json!([]));
    let ics: PathBuf = home.path().join("out.ics");
    cli.ok(&["tools", "appointments", "--ics", ics.to_str().unwrap()]);
    let text = std::fs::read_to_string(&ics).unwrap();
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n") && text.ends_with("END:VCALENDAR\r\n"), "{text}");

    // the wrong passphrase opens nothing
    let wrong = Cli::new(home.path(), Some("not the passphrase"));
    wrong.fails(&["tools", "tickets"]);
    // a missing file is a clear error
    let err = cli.fails(&["tools", "import", "orders", "/nonexistent/orders.csv"]);
    assert!(err.contains("/nonexistent/orders.csv"), "{err}");
}
