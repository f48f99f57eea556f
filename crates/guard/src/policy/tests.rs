//! The policy's tests: parsing and error locations, layering and locks,
//! signatures, topic detection and the output check.

use super::*;

fn check(text: &str) -> Result<Policy> {
    Policy::check_text(text, Path::new("p.toml"), Layer::Admin)
}

fn invalid(r: Result<Policy>) -> (usize, String, String) {
    match r {
        Err(PolicyError::Invalid { line, key, message, .. }) => (line, key, message),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn builtin_policy_parses_and_has_the_three_refused_topics() {
    let p = Policy::builtin();
    for t in ["legal_advice", "medical_diagnosis", "price_promise"] {
        let t = p.topic(t).unwrap();
        assert!(t.enabled && t.action == TopicAction::Refuse);
        assert!(!t.reason.de.is_empty() && !t.reason.en.is_empty());
        assert!(!t.examples_de.is_empty() && !t.examples_en.is_empty());
    }
    assert_eq!(p.allowed_languages, vec!["de", "en"]);
    assert_eq!(p.injection_action, InjectionAction::Quarantine);
    assert!(p.locked.is_empty());
    assert!(p.price_promises);
}

#[test]
fn unknown_key_names_its_line_and_dotted_key() {
    let (line, key, msg) = invalid(check("[answer]\nmax_chars = 500\n\n[topics.legal_advice]\nreason.en = \"x\"\nkeywrods = [\"a\"]\n"));
    assert_eq!(line, 6);
    assert_eq!(key, "topics.legal_advice.keywrods");
    assert!(msg.contains("unknown field"), "{msg}");
    let (line, key, _) = invalid(check("\n\n[answr]\nmax_chars = 5\n"));
    assert_eq!((line, key.as_str()), (3, "answr"));
}

#[test]
fn wrong_types_and_values_name_the_line_and_key() {
    let (line, key, msg) = invalid(check("[answer]\nmax_chars = \"long\"\n"));
    assert_eq!((line, key.as_str()), (2, "answer.max_chars"), "{msg}");
    let (line, key, _) = invalid(check("# c\n[injection]\naction = \"explode\"\n"));
    assert_eq!((line, key.as_str()), (3, "injection.action"));
    let (line, key, msg) = invalid(check("[detection]\nthreshold = 1.5\n"));
    assert_eq!((line, key.as_str()), (2, "detection.threshold"), "{msg}");
    let (line, key, _) = invalid(check("[languages]\n\nallowed = [\"de\", \"fr\"]\n"));
    assert_eq!((line, key.as_str()), (3, "languages.allowed"));
    let (line, key, msg) = invalid(check("[topics.new_one]\nexamples.en = [\"x\"]\n"));
    assert_eq!((line, key.as_str()), (1, "topics.new_one.reason"), "{msg}");
    // broken syntax
    let (line, _, _) = invalid(check("[answer]\nmax_chars = 5\n[tools\n"));
    assert_eq!(line, 3);
    let (line, key, _) = invalid(check("locked = [\"answers\"]\n"));
    assert_eq!((line, key.as_str()), (1, "locked"));
}

#[test]
fn error_lines_follow_the_parser_spans_for_dotted_inline_and_multi_line_entries() {
    let cases = [
        // a dotted key at the top level
        ("# c\n\nanswer.max_chars = 5\n", 3, "answer.max_chars"),
        // a wrong element deep in a multi-line array names the array's key
        ("[languages]\nallowed = [\n  \"de\",\n  5,\n]\n", 4, "languages.allowed"),
        ("[detection]\n\n[answer]\nmax_chars = 10\n", 4, "answer.max_chars"),
        // an inline table, a quoted table name, a date-time where a number belongs
        ("# c\ninjection = { action = \"explode\" }\n", 2, "injection.action"),
        ("[topics.\"new_one\"]\nkeywords = [\"k\"]\n", 1, "topics.new_one.reason"),
        ("[answer]\nmax_chars = 1979-05-27\n", 2, "answer.max_chars"),
        // the cases the CLI test checks through `tresor policy check`
        ("# my policy\n[answer]\nmax_chars = 400\nmax_char = 5\n", 4, "answer.max_char"),
        ("[topics.medical_diagnosis]\nenabled = \"no\"\n", 2, "topics.medical_diagnosis.enabled"),
    ];
    for (text, want_line, want_key) in cases {
        let (line, key, msg) = invalid(check(text));
        assert_eq!((line, key.as_str()), (want_line, want_key), "{text:?}: {msg}");
    }
}

#[test]
fn user_may_change_unlocked_items_but_not_locked_ones() {
    let mut p = Policy::builtin();
    let admin = "locked = [\"topics.medical_diagnosis\"]\n[answer]\nmax_chars = 300\nlocked = true\n[topics.legal_advice]\nenabled = false\n";
    p.apply_toml(admin, Path::new("/etc/tresor/policy.toml"), Layer::Admin).unwrap();
    assert!(p.is_locked("answer") && p.is_locked("topics.medical_diagnosis"));
    assert!(!p.is_locked("topics.legal_advice") && !p.is_locked("disclaimer"));
    // unlocked: fine
    let mut ok = p.clone();
    ok.apply_toml("[topics.legal_advice]\nenabled = true\n[disclaimer]\nen = \"Check with HR.\"\n", Path::new("u.toml"), Layer::User).unwrap();
    assert!(ok.topic("legal_advice").unwrap().enabled);
    assert_eq!(ok.disclaimer.en, "Check with HR.");
    assert_eq!(ok.origin["disclaimer"], "u.toml");
    // locked: an error naming the line and item
    let mut bad = p.clone();
    let e = bad.apply_toml("[disclaimer]\nen = \"x\"\n\n[topics.medical_diagnosis]\nenabled = false\n", Path::new("u.toml"), Layer::User).unwrap_err();
    assert!(e.to_string().starts_with("u.toml:4: key `topics.medical_diagnosis`: this item is locked"), "{e}");
    let e = p.clone().apply_toml("[answer]\nmax_chars = 5000\n", Path::new("u.toml"), Layer::User).unwrap_err();
    assert!(e.to_string().contains("`answer`"), "{e}");
    // a user cannot lock
    let e = p.clone().apply_toml("locked = [\"tools\"]\n", Path::new("u.toml"), Layer::User).unwrap_err();
    assert!(e.to_string().contains("only the admin policy can lock"), "{e}");
    // "*" locks everything, "topics" forbids new topics
    let mut all = Policy::builtin();
    all.apply_toml("locked = [\"*\"]\n", Path::new("a"), Layer::Admin).unwrap();
    assert!(all.apply_toml("[tools]\nallowed = [\"x\"]\n", Path::new("u"), Layer::User).is_err());
    let mut topics = Policy::builtin();
    topics.apply_toml("locked = [\"topics\"]\n", Path::new("a"), Layer::Admin).unwrap();
    let e = topics.apply_toml("[topics.mine]\nreason.de = \"x\"\nreason.en = \"x\"\nkeywords = [\"k\"]\n", Path::new("u"), Layer::User).unwrap_err();
    assert!(e.to_string().contains("no new topics"), "{e}");
}

fn env_paths(dir: &Path, admin: Option<&str>, user: Option<&str>) -> PolicyPaths {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut p = PolicyPaths { admin: None, user: None, admin_keys: Some(keys) };
    if let Some(a) = admin {
        let path = dir.join("admin.toml");
        std::fs::write(&path, a).unwrap();
        p.admin = Some(path);
    }
    if let Some(u) = user {
        let path = dir.join("policy.toml");
        std::fs::write(&path, u).unwrap();
        p.user = Some(path);
    }
    p
}

#[test]
fn signatures_good_bad_missing_and_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let paths = env_paths(dir.path(), Some("[answer]\nmax_chars = 400\nlocked = true\n"), None);
    let admin = paths.admin.clone().unwrap();
    // no keys installed, no signature: accepted
    assert_eq!(paths.load().unwrap().max_answer_chars, 400);
    let (sk, pk) = keygen(&dir.path().join("admin1")).unwrap();
    assert!(keygen(&dir.path().join("admin1")).is_err(), "keygen must not overwrite");
    // a signature but no trusted keys: error
    sign(&admin, &sk).unwrap();
    assert!(matches!(paths.load(), Err(PolicyError::Signature { .. })));
    // trusted key: verifies and names the key
    std::fs::copy(&pk, paths.admin_keys.as_ref().unwrap().join("admin1.pub")).unwrap();
    let p = paths.load().unwrap();
    assert_eq!(p.files[0].signed_by.as_deref(), Some("admin1.pub"));
    // one changed byte: error, never ignored
    std::fs::write(&admin, "[answer]\nmax_chars = 900\nlocked = true\n").unwrap();
    let e = paths.load().unwrap_err();
    assert!(matches!(e, PolicyError::Signature { .. }), "{e}");
    // signed by another key: error
    let (sk2, _) = keygen(&dir.path().join("mallory")).unwrap();
    sign(&admin, &sk2).unwrap();
    assert!(paths.load().unwrap_err().to_string().contains("no trusted admin key"));
    // keys installed but the signature file removed: error
    std::fs::remove_file(sig_path(&admin)).unwrap();
    assert!(paths.load().unwrap_err().to_string().contains("no signature file"));
    // garbage signature
    std::fs::write(sig_path(&admin), "not base64!").unwrap();
    assert!(matches!(paths.load(), Err(PolicyError::Signature { .. })));
}

/// A fake embedder: bag of words hashed into 64 dims.
fn fake_embed(texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, String> {
    Ok(texts
        .iter()
        .map(|t| {
            let mut v = vec![0.0f32; 64];
            for w in t.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
                let h = w.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
                v[(h % 64) as usize] += 1.0;
            }
            v
        })
        .collect())
}

#[test]
fn topics_are_detected_by_similarity_and_keywords_and_tools_lift_them() {
    let mut p = Policy::builtin();
    p.detection_threshold = 0.6;
    let idx = p.index(fake_embed).unwrap();
    assert!(!idx.is_empty());
    let q = "I have a headache and a fever, which illness could I have?";
    let qv = fake_embed(&[q]).unwrap().pop().unwrap();
    let (hits, _) = p.detect_topics(&idx, q, Some(&qv));
    assert_eq!(hits[0].topic, "medical_diagnosis");
    assert_eq!(hits[0].via, "similarity");
    // keyword, without any embedding
    let (hits, _) = p.detect_topics(&idx, "Welche Krankheit habe ich?", None);
    assert_eq!(hits[0].topic, "medical_diagnosis");
    assert_eq!(hits[0].via, "keyword");
    // unrelated questions pass
    for q in ["How many vacation days do I get?", "Wie hoch ist das Hotelbudget pro Nacht?", "What is the price of the Pro plan?"] {
        let qv = fake_embed(&[q]).unwrap().pop().unwrap();
        let (hits, nearest) = p.detect_topics(&idx, q, Some(&qv));
        assert!(hits.is_empty(), "{q}: {hits:?}");
        assert!(nearest.is_some());
    }
    // the price tool lifts the price-promise topic: refused only while price_lookup is not allowed
    let q = "Can you guarantee me a 20% discount if I order today?";
    let qv = fake_embed(&[q]).unwrap().pop().unwrap();
    p.allowed_tools = Some(vec![]);
    assert_eq!(p.detect_topics(&idx, q, Some(&qv)).0[0].topic, "price_promise");
    p.allowed_tools = Some(vec!["order_status".into()]);
    assert_eq!(p.detect_topics(&idx, q, Some(&qv)).0[0].topic, "price_promise");
    p.allowed_tools = Some(vec!["price_lookup".into()]);
    assert!(p.detect_topics(&idx, q, Some(&qv)).0.iter().all(|h| h.topic != "price_promise"));
    p.allowed_tools = None; // the default: every built-in tool
    assert!(p.detect_topics(&idx, q, Some(&qv)).0.iter().all(|h| h.topic != "price_promise"));
    p.denied_tools = vec!["price_lookup".into()];
    assert_eq!(p.detect_topics(&idx, q, Some(&qv)).0[0].topic, "price_promise");
    p.denied_tools.clear();
    // refusals are localised and name the topic and why
    let de = p.refusal("medical_diagnosis", "de");
    assert!(de.contains("medizinische Diagnose") && de.contains("Ärztin"), "{de}");
    assert!(p.refusal("legal_advice", "en").contains("legal advice"));
}

#[test]
fn keyword_matching_respects_word_boundaries() {
    assert!(contains_term("can i sue my boss", "sue my"));
    assert!(!contains_term("please issue my badge", "sue my"));
    assert!(contains_term("diagnosed", "diagnos*"));
    assert!(!contains_term("prognose", "diagnos*"));
}

fn run_guard(p: &Policy, pieces: &[&str]) -> (String, String, PolicyDecision) {
    let mut g = PolicyOutputCheck::new(p, "en", |s: &str| if s.contains(" und ") || s.contains(" der ") { "de".into() } else { "en".into() });
    let mut streamed = String::new();
    for piece in pieces {
        streamed.push_str(&g.push(piece));
    }
    streamed.push_str(&g.finish(false));
    (streamed, g.text().to_string(), g.decision.clone())
}

#[test]
fn output_checks_remove_blocked_terms_price_promises_and_cap_the_length() {
    let mut p = Policy::builtin();
    p.blocked_terms = vec!["project falcon".into()];
    let (streamed, text, d) = run_guard(
        &p,
        &["Full-time staff get 30 days. [1]", " Project Falcon ships in May. [2]", " We guarantee you a price of 99 € per seat. [1]", " Ask HR for details."],
    );
    assert_eq!(streamed, text);
    assert_eq!(text, "Full-time staff get 30 days. [1] Ask HR for details.");
    assert_eq!((d.blocked_terms, d.price_promises, d.action.as_str()), (1, 1, "modify"));
    // a price from a document without a promise stays
    let (text, _, d) = run_guard(&p, &["The Pro plan costs 49 € per month. [1]"]);
    assert_eq!(text, "The Pro plan costs 49 € per month. [1]");
    assert_eq!(d.action, "allow");
    // masking instead of removing
    p.blocked_action = BlockAction::Mask;
    let (text, _, _) = run_guard(&p, &["The codename is Project Falcon. [1]"]);
    assert_eq!(text, "The codename is […]. [1]");
    // token-sized pieces are assembled into sentences first
    p.max_answer_chars = 40;
    let (text, _, d) = run_guard(&p, &["This ", "is a ", "rather long ", "answer. ", "It goes on and on and on."]);
    assert!(text.chars().count() <= 40 && text.ends_with('…'), "{text}");
    assert!(d.truncated);
    // everything removed: withheld, and said so
    p.max_answer_chars = 2000;
    p.blocked_action = BlockAction::Remove;
    let (text, _, d) = run_guard(&p, &["Project Falcon is secret."]);
    assert_eq!(text, p.withheld("en"));
    assert_eq!(d.reason.as_deref(), Some("withheld"));
    // language: sentences in a language the policy does not allow are removed
    p.allowed_languages = vec!["en".into()];
    let (text, _, d) = run_guard(&p, &["Vacation is 30 days a year. [1] Der Urlaub und die Tage sind klar. [1]"]);
    assert_eq!(text, "Vacation is 30 days a year. [1]");
    assert_eq!(d.wrong_language, 1);
}

#[test]
fn disclaimers_are_appended_once_in_the_question_language() {
    let mut p = Policy::builtin();
    p.disclaimer = Localised { de: "Ohne Gewähr.".into(), en: "No warranty.".into() };
    let (text, _, d) = run_guard(&p, &["Full-time staff get 30 days. [1]"]);
    assert_eq!(text, "Full-time staff get 30 days. [1]\n\nNo warranty.");
    assert_eq!(d.disclaimers, vec!["global"]);
    assert_eq!(d.action, "modify");
    // not on refusals
    let mut g = PolicyOutputCheck::new(&p, "de", |_: &str| "de".into());
    let mut s = g.push("Dazu habe ich nichts gefunden.");
    s.push_str(&g.finish(true));
    assert_eq!(s, "Dazu habe ich nichts gefunden.");
}

// ---------------------------------------------------------------- [tools] and [mcp]

#[test]
fn tools_allowed_is_three_state_absent_all_empty_none_list_those() {
    let p = Policy::builtin();
    assert_eq!(p.tools_allowed_list(), None);
    for t in ["price_lookup", "order_status", "book_appointment", "create_ticket"] {
        assert!(p.tool_allowed(t), "{t}");
    }
    let p = check("[tools]\nallowed = []\n").unwrap();
    assert_eq!(p.tools_allowed_list(), Some(&[][..]));
    assert!(!p.tool_allowed("price_lookup"));
    let p = check("[tools]\nallowed = [\"price_lookup\", \" order_status \"]\n").unwrap();
    assert_eq!(p.tools_allowed_list().unwrap(), ["price_lookup", "order_status"]);
    assert!(p.tool_allowed("price_lookup") && p.tool_allowed("order_status"));
    assert!(!p.tool_allowed("create_ticket"));
    // a user layer that leaves [tools] out keeps the admin's list
    let mut p = check("[tools]\nallowed = [\"order_status\"]\n").unwrap();
    p.apply_toml("[answer]\nmax_chars = 300\n", Path::new("user.toml"), Layer::User).unwrap();
    assert_eq!(p.tools_allowed_list().unwrap(), ["order_status"]);
}

#[test]
fn tools_denied_and_confirm_name_builtins_and_mcp_tools() {
    let p = check(
        "[tools]\ndenied = [\"create_ticket\", \"time.convert_time\", \"crm.*\"]\nconfirm = [\"order_status\", \"time.get_current_time\"]\n\n\
         [mcp.servers.time]\ncommand = \"mcp-server-time\"\n\n[mcp.servers.crm]\nurl = \"http://127.0.0.1:9000/mcp\"\n",
    )
    .unwrap();
    assert!(!p.tool_allowed("create_ticket") && p.tool_allowed("book_appointment"));
    assert!(p.tool_allowed("time.get_current_time"));
    assert!(!p.tool_allowed("time.convert_time"));
    assert!(!p.tool_allowed("crm.open_case") && p.tool_denied("crm.open_case"));
    // a server the policy does not list has no tools
    assert!(!p.tool_allowed("other.get_current_time"));
    assert!(p.tool_needs_confirmation("order_status") && p.tool_needs_confirmation("time.get_current_time"));
    assert!(!p.tool_needs_confirmation("price_lookup"));
    // `allowed` restricts built-ins only: MCP tools stay allowed
    let p = check("[tools]\nallowed = []\n[mcp.servers.time]\ncommand = \"x\"\n").unwrap();
    assert!(!p.tool_allowed("price_lookup") && p.tool_allowed("time.get_current_time"));
}

#[test]
fn tools_errors_name_the_line_and_key() {
    let (line, key, msg) = invalid(check("[tools]\n\nallowed = [\"time.get_current_time\"]\n"));
    assert_eq!((line, key.as_str()), (3, "tools.allowed"));
    assert!(msg.contains("denied"), "{msg}");
    let (line, key, msg) = invalid(check("[tools]\ndenied = [\"bad name\"]\n"));
    assert_eq!((line, key.as_str()), (2, "tools.denied"), "{msg}");
    let (line, key, _) = invalid(check("[tools]\nconfirm = [\"Bad.x\"]\n"));
    assert_eq!((line, key.as_str()), (2, "tools.confirm"));
    let (line, key, msg) = invalid(check("[tools]\nallowd = []\n"));
    assert_eq!((line, key.as_str()), (2, "tools.allowd"), "{msg}");
}

#[test]
fn tools_can_be_locked_by_the_admin_only() {
    let mut p = check("[tools]\nallowed = [\"price_lookup\"]\nlocked = true\n").unwrap();
    assert!(p.is_locked("tools"));
    for user in ["[tools]\nallowed = [\"create_ticket\"]\n", "\n[tools]\ndenied = []\n", "[tools]\nconfirm = [\"x\"]\n"] {
        let e = p.clone().apply_toml(user, Path::new("user.toml"), Layer::User).unwrap_err().to_string();
        assert!(e.starts_with("user.toml:") && e.contains("locked"), "{e}");
    }
    let e = p.apply_toml("[tools]\nlocked = true\n", Path::new("user.toml"), Layer::User).unwrap_err().to_string();
    assert!(e.contains("only the admin policy can lock"), "{e}");
    // unlocked: the user's layer may change it
    let mut p = check("[tools]\nallowed = [\"price_lookup\"]\n").unwrap();
    p.apply_toml("[tools]\nallowed = []\n", Path::new("user.toml"), Layer::User).unwrap();
    assert_eq!(p.tools_allowed_list(), Some(&[][..]));
    // locked with the top-level list too
    let p = check("locked = [\"tools\"]\n").unwrap();
    assert!(p.clone().apply_toml("[tools]\ndenied = [\"create_ticket\"]\n", Path::new("u.toml"), Layer::User).is_err());
}

#[test]
fn mcp_servers_stdio_and_http_entries() {
    let p = check(
        "[mcp.servers.time]\ncommand = \" /opt/venv/bin/mcp-server-time \"\nargs = [\"--local-timezone\", \"Europe/Berlin\"]\nenv = { TZ = \"UTC\", API_KEY = \"secret\" }\ntimeout_ms = 5000\n\n\
         [mcp.servers.my-crm_2]\nurl = \"http://localhost:8931/mcp\"\n",
    )
    .unwrap();
    let s = p.mcp_servers();
    assert_eq!(s.keys().collect::<Vec<_>>(), ["my-crm_2", "time"]);
    match &s["time"].transport {
        McpTransport::Stdio { command, args, env } => {
            assert_eq!(command, "/opt/venv/bin/mcp-server-time");
            assert_eq!(args, &["--local-timezone", "Europe/Berlin"]);
            assert_eq!(env["TZ"], "UTC");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s["time"].timeout(), std::time::Duration::from_millis(5000));
    assert_eq!(s["my-crm_2"].transport, McpTransport::Http { url: "http://localhost:8931/mcp".into() });
    assert_eq!(s["my-crm_2"].timeout(), std::time::Duration::from_millis(DEFAULT_MCP_TIMEOUT_MS));
    // shown without the env values
    let shown = serde_json::to_string(&p).unwrap();
    assert!(shown.contains("\"API_KEY\":\"***\"") && !shown.contains("secret"), "{shown}");
    assert!(shown.contains("\"transport\":\"stdio\"") && shown.contains("\"transport\":\"http\""), "{shown}");
    // IPv4 and IPv6 loopback
    for url in ["http://127.0.0.1:1/mcp", "https://[::1]:8443/mcp", "http://127.5.0.1/"] {
        check(&format!("[mcp.servers.a]\nurl = \"{url}\"\n")).unwrap();
    }
    assert!(Policy::builtin().mcp_servers().is_empty());
}

#[test]
fn mcp_server_errors_name_the_line_and_key() {
    let (line, key, msg) = invalid(check("[answer]\nmax_chars = 100\n\n[mcp.servers.time]\ncommand = \"a\"\nurl = \"http://localhost/mcp\"\n"));
    assert_eq!((line, key.as_str()), (6, "mcp.servers.time.url"));
    assert!(msg.contains("not both"), "{msg}");
    let (line, key, msg) = invalid(check("\n[mcp.servers.time]\ntimeout_ms = 100\n"));
    assert_eq!((line, key.as_str()), (2, "mcp.servers.time"));
    assert!(msg.contains("command") && msg.contains("url"), "{msg}");
    let (line, key, msg) = invalid(check("[mcp.servers.Time]\ncommand = \"x\"\n"));
    assert_eq!((line, key.as_str()), (1, "mcp.servers.Time"));
    assert!(msg.contains("server name"), "{msg}");
    let (line, key, msg) = invalid(check("[mcp.servers.web]\nurl = \"https://example.com/mcp\"\n"));
    assert_eq!((line, key.as_str()), (2, "mcp.servers.web.url"));
    assert!(msg.contains("network"), "{msg}");
    let (line, key, _) = invalid(check("[mcp.servers.web]\nurl = \"ftp://localhost/\"\n"));
    assert_eq!((line, key.as_str()), (2, "mcp.servers.web.url"));
    let (line, key, _) = invalid(check("[mcp.servers.web]\nurl = \"http://localhost/\"\nargs = [\"x\"]\n"));
    assert_eq!((line, key.as_str()), (3, "mcp.servers.web.args"));
    let (line, key, _) = invalid(check("[mcp.servers.t]\ncommand = \"x\"\ntimeout_ms = 0\n"));
    assert_eq!((line, key.as_str()), (3, "mcp.servers.t.timeout_ms"));
    let (line, key, _) = invalid(check("[mcp.servers.t]\ncommand = \"  \"\n"));
    assert_eq!((line, key.as_str()), (2, "mcp.servers.t.command"));
    let (line, key, msg) = invalid(check("[mcp.servers.t]\ncommand = \"x\"\ncwd = \"/\"\n"));
    assert_eq!((line, key.as_str()), (3, "mcp.servers.t.cwd"), "{msg}");
    let (line, key, _) = invalid(check("[mcp]\nserver = {}\n"));
    assert_eq!((line, key.as_str()), (2, "mcp.server"));
}

#[test]
fn mcp_servers_come_from_the_admin_policy_only() {
    let mut p = Policy::builtin();
    let e = p.apply_toml("\n[mcp.servers.time]\ncommand = \"x\"\n", Path::new("user.toml"), Layer::User).unwrap_err().to_string();
    assert!(e.starts_with("user.toml:2:") && e.contains("admin policy"), "{e}");
    assert!(p.mcp_servers().is_empty());
}
