use std::path::Path;

use tresor_guard::crypto::WorkspaceKey;
use tresor_telemetry::{Event, EventKind, EventStore, Feedback, Message, Window};

use super::*;

fn who() -> Actor {
    Actor { actor: "user:test".into(), workspace: "default".into() }
}

fn key() -> WorkspaceKey {
    WorkspaceKey::from_bytes([3u8; 32])
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn create_validates_snapshots_and_is_immutable_encrypted_and_audited() {
    let d = tempfile::tempdir().unwrap();
    let mut r = Releases::open(d.path(), &key()).unwrap();
    let prompt = write(d.path(), "p.toml", "en = \"Answer only from the sources, in one sentence.\"\n");
    let cfg = write(d.path(), "a.toml", "evidence_threshold = 0.5\n");
    r.create("v1", &ReleaseFiles { prompt: Some(prompt.clone()), config: Some(cfg.clone()), policy: None }, None, &who()).unwrap();
    // the same name again, a bad config, a bad prompt, a bad policy, a bad name: refused, store unchanged
    assert!(r.create("v1", &ReleaseFiles::default(), None, &who()).unwrap_err().to_string().contains("immutable"));
    let bad_cfg = write(d.path(), "bad.toml", "support_threshold = 2.0\n");
    assert!(r.create("v2", &ReleaseFiles { config: Some(bad_cfg), ..Default::default() }, None, &who()).unwrap_err().to_string().contains("support_threshold"));
    let bad_prompt = write(d.path(), "badp.toml", "english = \"x\"\n");
    assert!(r.create("v2", &ReleaseFiles { prompt: Some(bad_prompt), ..Default::default() }, None, &who()).is_err());
    let bad_policy = write(d.path(), "badpol.toml", "nonsense_key = 1\n");
    assert!(r.create("v2", &ReleaseFiles { policy: Some(bad_policy), ..Default::default() }, None, &who()).is_err());
    assert!(r.create("../x", &ReleaseFiles::default(), None, &who()).is_err());
    assert!(r.create(CONTROL_LABEL, &ReleaseFiles::default(), None, &who()).is_err());
    // sealed on disk: no plaintext of the prompt; reopened it is the same
    let raw = std::fs::read(d.path().join(RELEASES_FILE)).unwrap();
    assert!(tresor_guard::crypto::is_sealed(&raw));
    assert!(!String::from_utf8_lossy(&raw).contains("one sentence"));
    let again = Releases::open(d.path(), &key()).unwrap();
    assert_eq!(again.set, r.set);
    assert_eq!(again.set.releases.len(), 1);
    // another key cannot read it
    assert!(Releases::open(d.path(), &WorkspaceKey::from_bytes([4u8; 32])).is_err());
    // the audit log has the entry
    let entries = tresor_guard::audit::AuditLog::for_data_dir(d.path()).entries(None).unwrap();
    assert!(entries.iter().any(|e| e["event"] == "release.create" && e["data"]["name"] == "v1"), "{entries:?}");
}

#[test]
fn a_corrupt_store_is_an_error_and_is_not_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let k = key();
    k.write_file(&d.path().join(RELEASES_FILE), b"{not json").unwrap();
    let before = std::fs::read(d.path().join(RELEASES_FILE)).unwrap();
    let e = Releases::open(d.path(), &k).err().unwrap();
    assert!(e.to_string().contains("release store"), "{e}");
    assert_eq!(std::fs::read(d.path().join(RELEASES_FILE)).unwrap(), before);
    // a store whose invariants are broken (two active releases) is refused as well
    let mut set = ReleaseSet::default();
    for n in ["a", "b"] {
        set.releases.push(Release { name: n.into(), status: Status::Active, share: 1.0, created_at: String::new(), digest: digest(&None, &None, &None), prompt: None, policy: None, config: None, reason: None, previous: None, since_ms: 0, history: vec![] });
    }
    k.write_file(&d.path().join(RELEASES_FILE), &serde_json::to_vec(&set).unwrap()).unwrap();
    assert!(Releases::open(d.path(), &k).err().unwrap().to_string().contains("more than one active"));
}

#[test]
fn canary_promote_and_rollback_keep_the_invariants() {
    let d = tempfile::tempdir().unwrap();
    let mut r = Releases::open(d.path(), &key()).unwrap();
    for n in ["a", "b", "c"] {
        r.create(n, &ReleaseFiles::default(), None, &who()).unwrap();
    }
    r.promote("a", None, false, &who()).unwrap();
    assert!(r.canary("b", 1.0, None, false, &who()).is_err());
    r.canary("b", 0.1, None, false, &who()).unwrap();
    let rows = r.set.rows();
    let share = |n: &str| rows.iter().find(|x| x.name == n).unwrap().share;
    assert_eq!((share("a"), share("b")), (0.9, 0.1));
    // one canary at a time; promoting another while it runs is refused
    assert!(r.canary("c", 0.2, None, false, &who()).is_err());
    assert!(r.promote("c", None, false, &who()).is_err());
    // rollback stops the canary, the active release gets everything back
    assert_eq!(r.rollback(Some("looks off"), &who()).unwrap(), "b");
    assert_eq!(r.set.get("b").unwrap().status, Status::RolledBack);
    assert_eq!(r.set.get("b").unwrap().reason.as_deref(), Some("looks off"));
    assert_eq!(r.set.get("a").unwrap().share, 1.0);
    // promote c, then rollback restores a
    r.promote("c", None, false, &who()).unwrap();
    assert_eq!(r.set.get("a").unwrap().status, Status::Retired);
    assert_eq!(r.rollback(None, &who()).unwrap(), "c");
    assert_eq!(r.set.active().unwrap().name, "a");
    // a failing gate blocks a promotion unless forced, and is kept with the step
    let gate_file = write(d.path(), "gate.json", r#"{"passed": false, "regressions": ["answers.f1"]}"#);
    let gate = Gate::from_file(&gate_file).unwrap();
    assert_eq!(gate.passed, Some(false));
    assert!(r.promote("b", Some(gate.clone()), false, &who()).unwrap_err().to_string().contains("gate"));
    r.promote("b", Some(gate), true, &who()).unwrap();
    assert_eq!(r.set.rows().iter().find(|x| x.name == "b").unwrap().gate_passed, Some(false));
    let audit = tresor_guard::audit::AuditLog::for_data_dir(d.path()).entries(None).unwrap();
    let kinds: Vec<&str> = audit.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"release.canary") && kinds.contains(&"release.promote") && kinds.contains(&"release.rollback"), "{kinds:?}");
    assert!(Gate::from_file(&write(d.path(), "g2.json", "not json")).is_err());
}

#[test]
fn assignment_is_deterministic_per_conversation_and_matches_the_share() {
    let mut set = ReleaseSet::default();
    let mk = |name: &str, status, share| Release { name: name.into(), status, share, created_at: String::new(), digest: digest(&None, &None, &None), prompt: None, policy: None, config: None, reason: None, previous: None, since_ms: 0, history: vec![] };
    set.releases.push(mk("base", Status::Active, 0.8));
    set.releases.push(mk("cand", Status::Canary, 0.2));
    let n = 20_000;
    let cand = (0..n).filter(|i| pick(&set, &format!("t{i}")).unwrap().name == "cand").count();
    let share = cand as f64 / n as f64;
    assert!((share - 0.2).abs() < 0.015, "{share}");
    for i in 0..100 {
        let c = format!("t{i}");
        assert_eq!(pick(&set, &c).unwrap().name, pick(&set, &c).unwrap().name);
    }
    // raising the share only moves conversations towards the candidate
    let before: Vec<bool> = (0..2000).map(|i| pick(&set, &format!("t{i}")).unwrap().name == "cand").collect();
    set.releases[1].share = 0.5;
    for (i, was) in before.iter().enumerate() {
        if *was {
            assert_eq!(pick(&set, &format!("t{i}")).unwrap().name, "cand");
        }
    }
}

#[test]
fn diff_shows_prompt_policy_and_config_changes() {
    let d = tempfile::tempdir().unwrap();
    let mut r = Releases::open(d.path(), &key()).unwrap();
    let p1 = write(d.path(), "p1.toml", "en = \"one\"\n");
    let p2 = write(d.path(), "p2.toml", "en = \"two\"\nde = \"zwei\"\n");
    let c2 = write(d.path(), "c2.toml", "max_passages = 5\n");
    r.create("a", &ReleaseFiles { prompt: Some(p1), ..Default::default() }, None, &who()).unwrap();
    r.create("b", &ReleaseFiles { prompt: Some(p2), config: Some(c2), ..Default::default() }, None, &who()).unwrap();
    let lines = diff(r.set.get("a").unwrap(), r.set.get("b").unwrap());
    let fields: Vec<&str> = lines.iter().map(|l| l.field.as_str()).collect();
    assert_eq!(fields, ["prompt.en", "prompt.de", "config.max_passages"], "{lines:?}");
    assert_eq!(lines[2].b.as_deref(), Some("5"));
}

/// Scripted message events: `n` conversations of `variant`, `refused` of them refused.
fn traffic(store: &EventStore, first_id: i64, variant: &str, n: i64, refused: i64, grounded: i64, ms: f64) {
    for i in 0..n {
        let id = first_id + i;
        let m = Message { variant: variant.into(), route: "kb_question".into(), refused: i < refused, grounded: i >= n - grounded, total_ms: ms, ttft_ms: ms / 2.0, ..Default::default() };
        store.record(&Event::now(Some(id), Some(id * 10), Some("kb".into()), EventKind::Message(m))).unwrap();
        if i % 2 == 0 {
            store.record(&Event::now(Some(id), Some(id * 10), None, EventKind::Feedback(Feedback { csat: Some(if i < refused { 2 } else { 5 }), ..Default::default() }))).unwrap();
        }
    }
}

#[test]
fn compare_finds_a_real_difference_and_says_how_many_more_a_small_one_needs() {
    let d = tempfile::tempdir().unwrap();
    let ev = EventStore::open(d.path(), &key()).unwrap();
    traffic(&ev, 1, "base", 400, 120, 280, 100.0);
    traffic(&ev, 10_000, "cand", 400, 60, 340, 100.0);
    let events = ev.events(&Window::default()).unwrap();
    let c = compare(&events, "base", "cand");
    assert_eq!((c.control.conversations, c.candidate.conversations), (400, 400));
    let refusal = c.tests.iter().find(|t| t.metric == "refusal").unwrap();
    assert!((refusal.control - 0.3).abs() < 1e-9 && (refusal.candidate - 0.15).abs() < 1e-9);
    assert!(refusal.significant && refusal.p_value.unwrap() < 1e-4, "{refusal:?}");
    assert_eq!(refusal.still_needed_per_arm, Some(0));
    // a small sample of a small difference: not significant, and the shortfall is stated
    let d2 = tempfile::tempdir().unwrap();
    let ev2 = EventStore::open(d2.path(), &key()).unwrap();
    traffic(&ev2, 1, "base", 40, 12, 20, 100.0);
    traffic(&ev2, 1000, "cand", 40, 10, 20, 100.0);
    let c2 = compare(&ev2.events(&Window::default()).unwrap(), "base", "cand");
    let r2 = c2.tests.iter().find(|t| t.metric == "refusal").unwrap();
    assert!(!r2.significant);
    assert!(r2.still_needed_per_arm.unwrap() > 500, "{r2:?}");
}

#[test]
fn canary_steps_up_while_guards_hold_and_rolls_back_when_one_breaks() {
    let d = tempfile::tempdir().unwrap();
    let ev = EventStore::open(d.path(), &key()).unwrap();
    let mut r = Releases::open(d.path(), &key()).unwrap();
    r.create("good", &ReleaseFiles::default(), None, &who()).unwrap();
    r.create("bad", &ReleaseFiles::default(), None, &who()).unwrap();
    let mut cfg = CanaryConfig::default();
    cfg.min_conversations = 30;
    r.set_canary_config(cfg, &who()).unwrap();
    r.canary("good", 0.05, None, false, &who()).unwrap();
    // too few conversations: wait
    let out = canary_step(&mut r, &ev.events(&Window::default()).unwrap(), CONTROL_LABEL, &who()).unwrap();
    assert!(matches!(out, StepOutcome::Wait { .. }), "{out:?}");
    let mut id = 1;
    let mut steps = Vec::new();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(3));
        traffic(&ev, id, CONTROL_LABEL, 60, 6, 50, 100.0);
        traffic(&ev, id + 1000, "good", 40, 4, 34, 105.0);
        id += 5000;
        let out = canary_step(&mut r, &ev.events(&Window::default()).unwrap(), CONTROL_LABEL, &who()).unwrap();
        steps.push(out.clone());
        if matches!(out, StepOutcome::Promoted { .. }) {
            break;
        }
        assert!(matches!(out, StepOutcome::Stepped { .. }), "{out:?}");
        assert!(steps.len() < 10);
    }
    assert_eq!(steps.len(), 4, "0.05 -> 0.1 -> 0.25 -> 0.5 -> promoted: {steps:?}");
    assert_eq!(r.set.active().unwrap().name, "good");
    // a worse candidate: refuses far more often than the control -> automatic rollback with the reason
    r.canary("bad", 0.05, None, false, &who()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    traffic(&ev, id, "good", 60, 6, 50, 100.0);
    traffic(&ev, id + 1000, "bad", 40, 16, 34, 100.0);
    let out = canary_step(&mut r, &ev.events(&Window::default()).unwrap(), CONTROL_LABEL, &who()).unwrap();
    let StepOutcome::RolledBack { reason, .. } = out else { panic!("{out:?}") };
    assert!(reason.contains("refusal_rate"), "{reason}");
    let row = r.set.rows().into_iter().find(|x| x.name == "bad").unwrap();
    assert_eq!(row.status, "rolled_back");
    assert!(row.reason.unwrap().contains("refusal_rate"));
    assert_eq!(r.set.active().unwrap().share, 1.0);
    let audit = tresor_guard::audit::AuditLog::for_data_dir(d.path()).entries(None).unwrap();
    assert!(audit.iter().any(|e| e["event"] == "release.auto_rollback" && e["data"]["reason"].as_str().unwrap().contains("refusal_rate")));
}

/// The engine answers each conversation with its release: the prompt, the policy and the config
/// of that release, `Answer::variant` and the message event name it; the workspace's own settings
/// are back after the answer.
#[test]
fn the_engine_answers_with_the_release_that_serves_the_conversation() {
    use crate::testing::ScriptedModels;
    use crate::{AskRequest, Assistant, AssistantConfig};
    use std::sync::Arc;
    use tresor_kb::HashEmbedder;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("vacation.md"), "# Vacation\n\nFull-time employees get 30 working days of paid vacation per calendar year.\n").unwrap();
    let emb = HashEmbedder::new(256);
    crate::scratch::ingest_dir(&data, &key(), "default", &docs, &emb).unwrap();
    let models = ScriptedModels::replying("Full-time employees get 30 working days of paid vacation per calendar year.");
    let prompts = models.prompts.clone();
    let mut a = Assistant::new(AssistantConfig::default(), &data, &key(), Arc::new(emb), None, Box::new(models)).unwrap();
    let ask = |a: &mut Assistant, q: &str| {
        let t = a.threads().create_thread(q, Some("default")).unwrap();
        a.answer(&AskRequest { question: q.into(), kb: Some("default".into()), thread: Some(t), no_cache: true, ..Default::default() }, &mut |_| {}).unwrap()
    };
    // no release: the workspace's label
    assert_eq!(ask(&mut a, "How many vacation days do full-time employees get?").variant, CONTROL_LABEL);
    let mut r = Releases::open(&data, &key()).unwrap();
    let p = write(dir.path(), "p.toml", "en = \"RELEASE-MARKER: answer from the sources only.\"\n");
    let pol = write(dir.path(), "pol.toml", "[blocked_terms]\nterms = [\"zebra\"]\n");
    r.create("calm", &ReleaseFiles { prompt: Some(p), policy: Some(pol), config: Some(write(dir.path(), "c.toml", "max_passages = 2\n")) }, None, &who()).unwrap();
    r.promote("calm", None, false, &who()).unwrap();
    let ans = ask(&mut a, "How many vacation days do full-time employees get?");
    assert_eq!(ans.variant, "calm");
    assert!(prompts.lock().unwrap().last().unwrap().contains("RELEASE-MARKER"));
    // the release's policy blocks its term; the workspace's own settings are back afterwards
    let blocked = ask(&mut a, "Do zebra employees get vacation days?");
    assert!(blocked.refused && blocked.variant == "calm", "{blocked:?}");
    assert_eq!(a.config().max_passages, AssistantConfig::default().max_passages);
    assert!(!a.policy().has_blocked_term("zebra"));
    // a canary at 50 %: each conversation keeps its release, both serve, events carry the name
    r.create("bold", &ReleaseFiles::default(), None, &who()).unwrap();
    r.canary("bold", 0.5, None, false, &who()).unwrap();
    let mut seen = std::collections::HashMap::new();
    for i in 0..12 {
        let t = a.threads().create_thread("q", Some("default")).unwrap();
        let req = AskRequest { question: format!("How many vacation days do employees get ({i})?"), kb: Some("default".into()), thread: Some(t), ..Default::default() };
        let v1 = a.answer(&req, &mut |_| {}).unwrap().variant;
        let req2 = AskRequest { question: "And part-time employees?".into(), ..req.clone() };
        assert_eq!(a.answer(&req2, &mut |_| {}).unwrap().variant, v1, "a conversation keeps its release");
        assert_eq!(a.variant_for(&req).unwrap(), v1);
        *seen.entry(v1).or_insert(0) += 1;
    }
    assert!(seen.contains_key("calm") && seen.contains_key("bold"), "{seen:?}");
    let events = a.events().unwrap().events(&Window::default()).unwrap();
    let variants: std::collections::HashSet<String> = events.iter().filter_map(|e| match &e.event.kind { EventKind::Message(m) => Some(m.variant.clone()), _ => None }).collect();
    assert!(variants.contains("calm") && variants.contains("bold") && variants.contains(CONTROL_LABEL), "{variants:?}");
}
