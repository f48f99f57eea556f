//! End-to-end: the web widget in a real browser. The real `tresor serve`
//! (shipped models) hosts `/widget.js`; a test page on a second loopback
//! origin embeds it under a strict CSP (scripts and connections only to
//! Tresor, no inline scripts, no frames, no data: images); Debian's headless
//! Chromium (chromium + chromium-driver, started once) loads it. The widget
//! is driven like a person would (click, type, Enter, Tab, Esc) and through
//! its contract (`window.TresorWidget.ask`): a streamed answer with a
//! citation, the passage opened, a refusal, a handoff, a CSAT rating; a page
//! on another origin gets no answer; and, after a restart with a 2-second
//! `[handoff] idle_timeout_secs`, a conversation left alone ends as `idle`
//! and shows the rating without a click. Screenshots go to the target dir, or to
//! docs/screenshots with TRESOR_UPDATE_SCREENSHOTS=1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tresor_bench::widget::{embed_page, strict_csp, Browser, PageServer};

mod common;

use common::repo;

const API_TOKEN: &str = "widget-e2e-api-token-0123456789abcdef";
const PASS: &str = "widget-e2e-passphrase";
const QUESTION: &str = "How many vacation days do full-time employees get?";
const SECOND: &str = "When must I report sick to my manager?";
const NOT_IN_DOCS: &str = "How tall is the Eiffel Tower?";

/// One HTTP/1.1 request with an Origin; (status, body).
fn http(addr: &str, method: &str, path: &str, auth: &str, origin: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {auth}\r\n");
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default())
}

/// Polls `js` (a function body returning a value) until it is truthy; its value.
fn wait_for(b: &Browser, js: &str, what: &str, secs: u64) -> Value {
    let t0 = Instant::now();
    loop {
        let v = b.execute(js, json!([])).unwrap();
        if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn shot(b: &Browser, name: &str) {
    let png = b.screenshot().unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = if std::env::var_os("TRESOR_UPDATE_SCREENSHOTS").is_some() {
        repo().join("docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("widget-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// `document.getElementById('tresor-widget').shadowRoot` as `r` in a script.
const R: &str = "const r = document.getElementById('tresor-widget').shadowRoot;";

#[test]
fn the_widget_answers_cites_refuses_hands_off_and_asks_for_a_rating_in_chromium() {
    let home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = common::tresor_with(home.path(), Some(PASS)).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let docs = home.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for f in ["vacation-policy.md", "travel-and-expenses.md"] {
        std::fs::copy(repo().join("assets/sample-kb/handbook").join(f), docs.join(f)).unwrap();
    }
    let (ok, _, err) = cli(&["ingest", docs.to_str().unwrap(), "--kb", "handbook"]);
    assert!(ok, "{err}");
    // the sources of `tresor ask --json`: the widget's must be the same objects
    let (ok, out, err) = cli(&["ask", "--kb", "handbook", "--json", SECOND]);
    assert!(ok, "{err}");
    let cli_answer: Value = serde_json::from_str(&out).unwrap();
    assert!(!cli_answer["sources"].as_array().unwrap().is_empty(), "{cli_answer}");

    let page = PageServer::start().unwrap();
    let other = PageServer::start().unwrap();
    // bad input: a clear error, nothing stored
    let (ok, _, err) = cli(&["widget", "token", "create", "--kb", "nope", "--origin", &page.origin()]);
    assert!(!ok && err.contains("no knowledge base `nope`"), "{err}");
    let (ok, _, err) = cli(&["widget", "token", "create", "--kb", "handbook", "--origin", "http://127.0.0.1:1/path"]);
    assert!(!ok && err.contains("invalid origin"), "{err}");
    let (ok, out, err) = cli(&["widget", "token", "create", "--kb", "handbook", "--origin", &page.origin(), "--daily-cap", "50", "--json"]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("tresor-wd-") && created["origins"] == json!([page.origin()]), "{created}");
    let (ok, out, _) = cli(&["widget", "token", "list", "--json"]);
    assert!(ok && out.contains("handbook") && !out.contains(&token), "{out}");

    let mut serve = common::tresor_with(home.path(), Some(PASS));
    serve.args(["serve", "--addr", "127.0.0.1:0", "--token", API_TOKEN]);
    let (child, addr) = common::spawn_server(serve);
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Kill(child);
    let tresor = format!("http://{addr}");
    page.set(embed_page(&tresor, "handbook", &token, "en"), strict_csp(&tresor));
    // the other page is German (data-lang="de")
    other.set(embed_page(&tresor, "handbook", &token, "de"), strict_csp(&tresor));

    // a request from a page not on the token's list: 403 before anything is done
    let (st, body) = http(&addr, "POST", "/api/widget/threads", &token, Some(&other.origin()), "{}");
    assert_eq!(st, 403, "{body}");
    let (st, body) = http(&addr, "GET", "/api/kb", &token, Some(&page.origin()), "");
    assert_eq!(st, 403, "{body}");

    let b = Browser::start(1000, 760).unwrap();
    b.goto(&page.origin()).unwrap();
    wait_for(&b, "return !!window.TresorWidget && !!document.getElementById('tresor-widget');", "the widget to load", 20);
    // the page's CSP is in force (an inline script does not run) and the widget's styles still apply
    let csp = b
        .execute(
            &format!("{R} const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.appendChild(s);
             return {{inline: window.inlineRan === true, bubble: getComputedStyle(r.querySelector('.bubble')).borderRadius, mode: r.host.shadowRoot === r}};"),
            json!([]),
        )
        .unwrap();
    assert_eq!(csp, json!({"inline": false, "bubble": "50%", "mode": true}), "strict CSP: inline scripts blocked, widget styled, open shadow root");

    // as a person: click the bubble, type the question, Enter
    let host = b.find("#tresor-widget").unwrap();
    let root = b.shadow_root(&host).unwrap();
    b.click(&b.find_in_shadow(&root, ".bubble").unwrap()[0]).unwrap();
    assert_eq!(b.execute(&format!("{R} return r.activeElement && r.activeElement.id;"), json!([])).unwrap(), "tw-input", "the open panel focuses the question field");
    let input = b.find_in_shadow(&root, "#tw-input").unwrap().remove(0);
    b.send_keys(&input, &format!("{QUESTION}\u{E007}")).unwrap();
    // streamed: the answer element exists (busy) before it is complete
    wait_for(&b, &format!("{R} return r.querySelector('[data-tresor-role=answer]');"), "the answer element", 30);
    let answer = wait_for(
        &b,
        &format!("{R} const a = r.querySelector('[data-tresor-role=answer][aria-busy=false]'); return a && a.querySelector('.text').textContent;"),
        "the streamed answer",
        120,
    );
    assert!(answer.as_str().unwrap().contains("30"), "{answer}");
    assert_eq!(b.execute(&format!("{R} return r.querySelector('.log').getAttribute('aria-live');"), json!([])).unwrap(), "polite");
    let chips = b.find_in_shadow(&root, "[data-tresor-role=citation]").unwrap();
    assert!(!chips.is_empty(), "no citation chip");
    b.click(&chips[0]).unwrap();
    let passage = wait_for(&b, &format!("{R} const p = r.querySelector('[data-tresor-role=passage]'); return p && p.textContent;"), "the passage", 5);
    let passage = passage.as_str().unwrap();
    assert!(passage.contains("vacation-policy.md") && passage.contains("30 working days"), "{passage}");
    shot(&b, "widget-light.png");

    // keyboard: Tab stays inside the open panel
    b.press(&["\u{E004}"; 12]).unwrap();
    let inside = b.execute(&format!("{R} return document.activeElement === r.host && r.getElementById('tw-panel').contains(r.activeElement);"), json!([])).unwrap();
    assert_eq!(inside, json!(true), "focus left the panel");

    // the contract: ask() resolves when streaming is done, with the CLI's source objects
    let r = b
        .execute_async("window.TresorWidget.ask(arguments[0]).then(arguments[1], e => arguments[1]({error: String(e)}));", json!([SECOND]), Duration::from_secs(120))
        .unwrap();
    assert_eq!(r["refused"], json!(false), "{r}");
    assert!(!r["answer"].as_str().unwrap_or_default().is_empty(), "{r}");
    // the same objects as `tresor ask --json`'s sources: the same fields, the same cited file
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>();
    let cli_src = &cli_answer["sources"][0];
    let sources = r["sources"].as_array().unwrap();
    assert!(!sources.is_empty(), "{r}");
    assert!(sources.iter().all(|s| keys(s) == keys(cli_src)), "{r} vs {cli_src}");
    assert!(sources.iter().any(|s| s["source"] == cli_src["source"] && s["chunk_id"] == cli_src["chunk_id"]), "{r} vs {cli_src}");
    let n_answers = b.execute(&format!("{R} return r.querySelectorAll('[data-tresor-role=answer][aria-busy=false]').length;"), json!([])).unwrap();
    assert_eq!(n_answers, json!(2));

    // a refusal: "not in your documents"
    let r = b
        .execute_async("window.TresorWidget.ask(arguments[0]).then(arguments[1], e => arguments[1]({error: String(e)}));", json!([NOT_IN_DOCS]), Duration::from_secs(120))
        .unwrap();
    assert_eq!(r["refused"], json!(true), "{r}");
    let refusal = b.execute(&format!("{R} const x = r.querySelectorAll('[data-tresor-role=refusal]'); return x.length && x[x.length - 1].textContent;"), json!([])).unwrap();
    assert_eq!(refusal, "Not in your documents");

    // dark theme
    b.color_scheme(true).unwrap();
    let bg = b.execute(&format!("{R} return getComputedStyle(r.getElementById('tw-panel')).backgroundColor;"), json!([])).unwrap();
    assert_eq!(bg, "rgb(22, 25, 30)", "dark theme from prefers-color-scheme");
    shot(&b, "widget-dark.png");
    b.color_scheme(false).unwrap();

    // a handoff: "talk to a person"
    b.click(&b.find_in_shadow(&root, ".person").unwrap()[0]).unwrap();
    let said = wait_for(&b, &format!("{R} const h = r.querySelector('[data-tresor-role=handoff]'); return h && h.textContent;"), "the handoff message", 20);
    assert!(!said.as_str().unwrap().is_empty());

    // Esc closes: first the rating (once), 1-5
    b.press(&["\u{E00C}"]).unwrap();
    wait_for(&b, &format!("{R} const c = r.querySelector('[data-tresor-role=csat]'); return c && !c.hidden;"), "the rating prompt", 5);
    let options = b.find_in_shadow(&root, "[data-tresor-role=csat-option]").unwrap();
    assert_eq!(options.len(), 5);
    b.click(&options[3]).unwrap();
    shot(&b, "widget-csat.png");
    b.click(&b.find_in_shadow(&root, ".csat .submit").unwrap()[0]).unwrap();
    wait_for(&b, &format!("{R} return r.getElementById('tw-panel').hidden && r.activeElement && r.activeElement.classList.contains('bubble');"), "the panel to close, focus back on the bubble", 10);
    // the engine recorded both: one escalation, one CSAT of 4
    let (st, body) = http(&addr, "GET", "/api/kpi", API_TOKEN, None, "");
    assert_eq!(st, 200, "{body}");
    let kpi: Value = serde_json::from_str(&body).unwrap();
    assert!(kpi["escalated"].as_u64().unwrap() >= 1, "{kpi}");
    assert_eq!((kpi["csat"]["count"].as_u64(), kpi["csat"]["mean"].as_f64()), (Some(1), Some(4.0)), "{kpi}");

    // a page on another origin: the browser gets no answer
    b.goto(&other.origin()).unwrap();
    wait_for(&b, "return !!window.TresorWidget;", "the widget to load on the other page", 20);
    let r = b
        .execute_async("window.TresorWidget.ask(arguments[0]).then(x => arguments[1]({answered: x}), e => arguments[1]({error: String(e)}));", json!([QUESTION]), Duration::from_secs(30))
        .unwrap();
    assert!(r.get("error").is_some(), "a non-allowed origin got an answer: {r}");
    let none = b.execute(&format!("{R} return [r.querySelectorAll('[data-tresor-role=answer]').length, r.querySelectorAll('[data-tresor-role=error]').length];"), json!([])).unwrap();
    assert_eq!(none, json!([0, 1]));
    let de = b.execute(&format!("{R} return [r.querySelector('[data-tresor-role=error]').textContent, r.querySelector('.person').textContent, r.querySelector('.bubble').getAttribute('aria-label')];"), json!([])).unwrap();
    assert_eq!(de, json!(["Das hat leider nicht geklappt.", "Mitarbeiter sprechen", "Dokumenten-Assistent öffnen"]), "German from data-lang");

    // idle: the engine's timeout reaches the widget, which ends the conversation by itself
    drop(server);
    std::fs::write(home.path().join("assistant.toml"), "[handoff]\nidle_timeout_secs = 2\n").unwrap();
    let mut serve = common::tresor_with(home.path(), Some(PASS));
    serve.args(["serve", "--addr", &addr, "--token", API_TOKEN]);
    let (child, addr2) = common::spawn_server(serve);
    server = Kill(child);
    assert_eq!(addr2, addr, "restarted on the same address (the pages embed it)");
    b.goto(&page.origin()).unwrap();
    wait_for(&b, "return !!window.TresorWidget;", "the widget to load again", 20);
    let r = b
        .execute_async("window.TresorWidget.ask(arguments[0]).then(arguments[1], e => arguments[1]({error: String(e)}));", json!([NOT_IN_DOCS]), Duration::from_secs(60))
        .unwrap();
    assert_eq!(r["refused"], json!(true), "{r}");
    let t_answered = Instant::now();
    // no click, no key: the rating prompt appears once the engine's 2 s have passed
    wait_for(&b, &format!("{R} const c = r.querySelector('[data-tresor-role=csat]'); return c && !c.hidden && !r.getElementById('tw-panel').hidden;"), "the idle rating prompt", 15);
    assert!(t_answered.elapsed() >= Duration::from_secs(2), "the rating came before the idle timeout");
    drop(server);
    let events = home.path().join("events.jsonl");
    let (ok, _, err) = cli(&["events", "export", "--format", "jsonl", "--out", events.to_str().unwrap()]);
    assert!(ok, "{err}");
    let ended: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event_type"] == "conversation_ended")
        .collect();
    assert!(ended.iter().any(|e| e.to_string().contains("\"idle\"")), "no conversation ended as idle: {ended:?}");
}
