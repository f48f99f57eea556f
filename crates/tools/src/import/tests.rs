use std::path::PathBuf;

use tresor_guard::crypto::WorkspaceKey;

use super::*;

/// The development data (read-only, outside the repo): absent means the
/// test fails, it does not skip.
pub(crate) fn dev(file: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/eval/tools_dev").join(file);
    assert!(p.is_file(), "{} is missing: the tools dev set must be at ../shared/eval/tools_dev", p.display());
    p
}

fn store() -> (tempfile::TempDir, ToolStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ToolStore::open(dir.path(), &WorkspaceKey::ephemeral()).unwrap();
    (dir, s)
}

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn dev_prices_and_orders_import_whole() {
    let (_d, s) = store();
    let r = import_prices(&s, &dev("prices.csv")).unwrap();
    assert_eq!((r.rows, r.replaced), (27, 0));
    let prices = s.prices().unwrap();
    assert_eq!(prices.len(), 27);
    let av = prices.iter().find(|p| p.sku == "SW-AV-10").unwrap();
    assert_eq!(av.product, "Virenschutz Business (10 Plätze, 1 Jahr)", "quoted field with a comma");
    let fw = prices.iter().find(|p| p.sku == "HW-FW-200").unwrap();
    assert_eq!((fw.price.as_str(), fw.currency.as_str()), ("1290.00", "EUR"));
    assert_eq!(prices.iter().filter(|p| p.currency == "USD").count(), 3);

    let r = import_orders(&s, &dev("orders.csv")).unwrap();
    assert_eq!(r.rows, 20);
    let o = s.orders().unwrap();
    let kiel = o.iter().find(|o| o.order_id == "NL-10231").unwrap();
    assert_eq!((kiel.status.as_str(), kiel.updated_at.as_str()), ("delivered", "2026-11-20"));
    assert!(s.has_data("orders").unwrap());
    // a re-import replaces, it does not add
    let r = import_orders(&s, &dev("orders.csv")).unwrap();
    assert_eq!((r.rows, r.replaced), (20, 20));
    assert_eq!(s.orders().unwrap().len(), 20);
}

#[test]
fn dev_calendar_gives_sixteen_busy_times_at_the_right_instants() {
    let (_d, s) = store();
    let r = import_calendar(&s, &dev("calendar.ics")).unwrap();
    assert_eq!(r.rows, 16);
    let busy = s.busy().unwrap();
    assert_eq!(busy.len(), 16);
    let ts = |x: &str| x.parse::<jiff::Timestamp>().unwrap().as_second();
    let find = |uid: &str| busy.iter().find(|b| b.uid.as_deref() == Some(uid)).unwrap();
    // TZID=Europe/Berlin in December: CET, UTC+1
    let first = find("evt-202612-001@nordlicht-systems.example");
    assert_eq!((first.start, first.end), (ts("2026-12-07T09:00:00Z"), ts("2026-12-07T10:30:00Z")));
    assert_eq!(first.summary.as_deref(), Some("Teammeeting"));
    // all-day (VALUE=DATE): the whole Berlin day
    let fair = find("evt-202612-006@nordlicht-systems.example");
    assert!(fair.all_day);
    assert_eq!((fair.start, fair.end), (ts("2026-12-09T23:00:00Z"), ts("2026-12-10T23:00:00Z")));
    assert_eq!(fair.summary.as_deref(), Some("Messe IT-Nord (ganztägig)"));
    // DURATION instead of DTEND
    let jf = find("evt-202612-009@nordlicht-systems.example");
    assert_eq!((jf.start, jf.end), (ts("2026-12-14T14:00:00Z"), ts("2026-12-14T15:00:00Z")));
    // written in UTC
    let web = find("evt-202612-012@nordlicht-systems.example");
    assert_eq!((web.start, web.end), (ts("2026-12-16T12:30:00Z"), ts("2026-12-16T13:30:00Z")));
    assert!(busy.iter().all(|b| b.end > b.start));
}

#[test]
fn a_bad_csv_names_file_and_line_and_imports_nothing() {
    let (d, s) = store();
    import_prices(&s, &dev("prices.csv")).unwrap();
    let cases = [
        ("sku,product,price,currency\nA-1,Thing,10.00,EUR\nA-2,Other,10,50,EUR\n", 3, "fields"),
        ("sku,product,price,currency\nA-1,Thing,10.00,EUR\nA-2,Other,\"10,50\",EUR\n", 3, "price"),
        ("sku,product,price,currency\nA-1,Thing,10.000,EUR\n", 2, "price"),
        ("sku,product,price,currency\nA-1,Thing,10.00,€\n", 2, "currency"),
        ("sku,product,price,currency\nA-1,Thing,10.00,eur\n", 2, "currency"),
        ("sku,product,price,currency\nA-1,Thing,10.00,EUR\na1,Again,1.00,EUR\n", 3, "duplicate"),
        ("sku;product;price;currency\nA-1;Thing;10.00;EUR\n", 1, "header"),
        ("sku,name,price,currency\nA-1,Thing,10.00,EUR\n", 1, "header"),
        ("sku,product,price,currency\n", 2, "no data rows"),
        ("", 1, "empty"),
    ];
    for (body, line, what) in cases {
        let p = write(&d, "bad.csv", body);
        let e = import_prices(&s, &p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}:{line}: ", p.display())), "{body:?}: {msg}");
        assert!(msg.contains(what), "{body:?}: {msg}");
        assert_eq!(s.prices().unwrap().len(), 27, "nothing imported, nothing lost: {body:?}");
    }
    let p = write(&d, "bad-orders.csv", "order_id,customer,status,updated_at\nNL-1,A,shipped,2026-12-01\nNL-2,B,shipped,01.12.2026\n");
    let e = import_orders(&s, &p).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}:3: updated_at", p.display())), "{e}");
    assert!(s.orders().unwrap().is_empty());
    // a quoted field over several lines still counts lines right; CRLF and a BOM are fine
    let p = write(&d, "ok.csv", "\u{feff}sku,product,price,currency\r\nB-1,\"Two\nlines\",5,USD\r\nB-2,X,5.5,CHF\r\n");
    assert_eq!(import_prices(&s, &p).unwrap().rows, 2);
    assert_eq!(s.prices().unwrap()[0].product, "Two\nlines");
}

#[test]
fn a_bad_calendar_imports_nothing() {
    let (d, s) = store();
    import_calendar(&s, &dev("calendar.ics")).unwrap();
    let p = write(&d, "bad.ics", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20261210T100000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20261299T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
    let e = import_calendar(&s, &p).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}:6: ", p.display())), "{e}");
    assert_eq!(s.busy().unwrap().len(), 16);
    std::fs::write(&p, b"BEGIN:VCALENDAR\r\nSUMMARY:\xff\r\n").unwrap();
    assert!(import_calendar(&s, &p).unwrap_err().to_string().contains(":2: not valid UTF-8"));
}

#[test]
fn ids_normalise() {
    assert_eq!(normalise_id("nl 10240"), "NL10240");
    assert_eq!(normalise_id("NL-10240"), "NL10240");
    assert_eq!(normalise_id(" hw-fw-200 "), "HWFW200");
}
