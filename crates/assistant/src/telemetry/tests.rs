//! A scripted mix of conversations (answered, refused, cache hits, rated, escalated, tool calls)
//! replayed through the real engine (hash embedder, scripted chat model); the KPIs read back from
//! the events must equal the KPIs computed here from the script and the answers alone.

use std::path::PathBuf;
use std::sync::Arc;

use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::HashEmbedder;
use tresor_telemetry::{CostTable, EventKind, ToolAction, Window};

use crate::store::Feedback;
use crate::testing::ScriptedModels;
use crate::{AskRequest, Assistant, AssistantConfig};

fn engine(cfg: AssistantConfig) -> (tempfile::TempDir, Assistant) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs: PathBuf = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("vacation.md"),
        "# Vacation policy\n\n## Vacation days\n\nFull-time employees get 30 working days of paid vacation per calendar year. \
         Part-time employees get a pro-rated amount based on their working days per week.\n\n## Sick leave\n\n\
         Report sick to your manager before 9:30 on the first day. From the fourth day on, a doctor's certificate is required.\n",
    )
    .unwrap();
    let key = WorkspaceKey::from_bytes([7; 32]);
    let emb = HashEmbedder::new(256);
    crate::scratch::ingest_dir(&data, &key, "default", &docs, &emb).unwrap();
    let models = ScriptedModels::replying("Full-time employees get 30 working days of paid vacation per calendar year [1].");
    let a = Assistant::new(cfg, &data, &key, Arc::new(emb), None, Box::new(models)).unwrap();
    (dir, a)
}

enum Step {
    /// question, expected refused, expected cache hit
    Ask(&'static str, bool, bool),
    /// thumbs, CSAT on the conversation's last answer
    Rate(Option<i8>, Option<u8>),
    Handoff,
    /// tool, ok
    Tool(&'static str, bool),
}
use Step::*;

const VACATION: &str = "How many vacation days do full-time employees get?";
const AUSTRALIA: &str = "What is the capital of Australia?";

fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let r = (p * v.len() as f64).ceil() as usize;
    v[r.max(1) - 1]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn replayed_traffic_gives_the_kpis_of_its_script() {
    let script: Vec<Vec<Step>> = vec![
        vec![Ask(VACATION, false, false), Rate(Some(1), Some(5))],
        vec![Ask(AUSTRALIA, true, false), Handoff],
        vec![Ask("how many vacation days do full-time employees get", false, true), Tool("calendar", true), Rate(None, Some(4))],
        vec![Ask("When do I have to report sick?", false, false), Ask(AUSTRALIA, true, true), Rate(Some(-1), Some(1)), Tool("ticket", false)],
        vec![Ask(VACATION, false, true)],
        vec![Ask("Wie hoch ist der Aktienindex in Japan?", true, false)],
    ];
    let (_dir, mut a) = engine(AssistantConfig::default());
    let mut answers = Vec::new();
    let (mut escalated, mut resolved, mut csat, mut tools, mut tool_errors) = (0u64, 0u64, Vec::new(), 0u64, 0u64);
    for conv in &script {
        let thread = a.threads().create_thread("t", Some("default")).unwrap();
        let mut last_msg = None;
        let (mut last_refused, mut negative, mut handoff) = (false, false, false);
        for step in conv {
            match step {
                Ask(q, refused, hit) => {
                    let req = AskRequest { question: q.to_string(), kb: Some("default".into()), thread: Some(thread), ..Default::default() };
                    let ans = a.answer(&req, &mut |_| {}).unwrap();
                    assert_eq!((ans.refused, ans.cache_hit), (*refused, *hit), "{q}: {}", ans.answer);
                    last_msg = ans.message_id;
                    last_refused = ans.refused;
                    answers.push(ans);
                }
                Rate(thumbs, c) => {
                    a.feedback(&Feedback { message_id: last_msg, thumbs: *thumbs, csat: *c, ..Default::default() }).unwrap();
                    negative |= *thumbs == Some(-1) || c.is_some_and(|c| c <= 2);
                    csat.extend(c.map(f64::from));
                }
                Handoff => {
                    a.handoff(thread, Some("wants a human, call +49 30 1234567")).unwrap();
                    handoff = true;
                }
                Tool(name, ok) => {
                    let t = ToolAction {
                        tool: name.to_string(),
                        status: if *ok { "ok" } else { "error" }.into(),
                        latency_ms: 4.0,
                        error_class: (!ok).then(|| "io".into()),
                    };
                    a.record_tool_action(Some(thread), last_msg, &t).unwrap();
                    tools += 1;
                    tool_errors += !ok as u64;
                }
            }
        }
        escalated += handoff as u64;
        resolved += (!handoff && !last_refused && !negative) as u64;
    }
    let n = script.len() as f64;
    let m = answers.len() as f64;
    let k = serde_json::to_value(a.kpis(&Window::default()).unwrap()).unwrap();
    let num = |p: &str| k.pointer(p).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{p} missing in {k:#}"));
    assert_eq!(k["conversations"], 6);
    assert_eq!(k["messages"], 7);
    assert_eq!((k["resolved"].as_u64(), k["escalated"].as_u64()), (Some(resolved), Some(escalated)));
    assert!(close(num("/containment_rate"), (n - escalated as f64) / n));
    assert!(close(num("/escalation_rate"), escalated as f64 / n));
    assert!(close(num("/refusal_rate"), answers.iter().filter(|x| x.refused).count() as f64 / m));
    assert!(close(num("/cache_hit_rate"), answers.iter().filter(|x| x.cache_hit).count() as f64 / m));
    assert_eq!(k["csat"]["count"], csat.len());
    assert!(close(num("/csat/mean"), csat.iter().sum::<f64>() / csat.len() as f64));
    let ttft: Vec<f64> = answers.iter().map(|x| x.timings.ttft_ms).collect();
    assert!(close(num("/ttft_ms/p50"), nearest_rank(ttft.clone(), 0.5)));
    assert!(close(num("/ttft_ms/p95"), nearest_rank(ttft, 0.95)));
    let tokens: usize = answers.iter().map(|x| x.tokens.prompt + x.tokens.completion).sum();
    assert!(tokens > 0);
    assert!(close(num("/tokens/per_conversation"), tokens as f64 / n));
    assert!(close(num("/tool_error_rate"), tool_errors as f64 / tools as f64));
    let busy: f64 = answers.iter().map(|x| x.timings.total_ms).sum();
    assert!(close(num("/cost_per_resolved"), CostTable::default().local(busy) / resolved as f64));
    // the events themselves: one start per conversation, the handoff's phone number masked, no question text
    let events = a.events().unwrap().events(&Window::default()).unwrap();
    assert_eq!(events.iter().filter(|e| e.event.kind.name() == "conversation_started").count(), 6);
    for e in &events {
        match &e.event.kind {
            EventKind::Handoff { reason } => assert!(!reason.as_deref().unwrap().contains("1234567"), "{reason:?}"),
            EventKind::Message(msg) => {
                assert!(msg.question_text.is_none());
                assert_eq!(msg.question_id.len(), 16);
                assert_eq!(e.event.kb.as_deref(), Some("default"));
            }
            _ => {}
        }
    }
    // content gaps: the refused Australia question twice in one topic (asked in two conversations), the Japan one
    let gaps = tresor_telemetry::kpi::gaps(&events, 10);
    assert_eq!(gaps[0].count, 2, "{gaps:?}");
    assert_eq!(gaps[0].questions, 1);
    // the desktop's dashboard and simulator (the facade): the tiles show the same KPIs, the simulator measures the same events
    let d = a.dashboard(Window::default()).unwrap();
    assert_eq!(d.kpis.conversations, 6);
    for t in &d.tiles {
        assert_eq!(t.value, k.pointer(&format!("/{}", t.key.replace('.', "/"))).and_then(|v| v.as_f64()), "tile {}", t.key);
    }
    let sim = a.simulate(&Window::default(), &tresor_telemetry::Scenario { volume_per_day: Some(100.0), ..Default::default() }).unwrap();
    assert_eq!(sim.scenario.conversations_per_month, 3000.0);
    assert!(close(sim.baseline.containment_rate, num("/containment_rate")));
}

#[test]
fn question_text_is_kept_only_when_opted_in_and_then_masked() {
    let mut cfg = AssistantConfig::default();
    cfg.telemetry.store_question_text = true;
    let (_dir, mut a) = engine(cfg);
    let q = "I am jane.doe@example.com: what is the capital of Australia?";
    let ans = a.answer(&AskRequest { question: q.into(), kb: Some("default".into()), ..Default::default() }, &mut |_| {}).unwrap();
    assert!(ans.refused);
    let events = a.events().unwrap().events(&Window::default()).unwrap();
    let EventKind::Message(m) = &events[0].event.kind else { panic!("{events:?}") };
    let text = m.question_text.as_deref().unwrap();
    assert!(text.contains("capital of Australia") && !text.contains("jane.doe"), "{text}");
    // outside a thread: no conversation id, no conversation_started, still one conversation in the KPIs
    assert_eq!(events.len(), 1);
    assert_eq!(a.kpis(&Window::default()).unwrap().conversations, 1);
    let gaps = tresor_telemetry::kpi::gaps(&events, 10);
    assert_eq!(gaps[0].examples, vec![text.to_string()]);
}

#[test]
fn telemetry_off_records_nothing_and_handoff_still_delivers() {
    let mut cfg = AssistantConfig::default();
    cfg.telemetry.enabled = false;
    let (_dir, mut a) = engine(cfg);
    let t = a.threads().create_thread("t", Some("default")).unwrap();
    a.answer(&AskRequest { question: VACATION.into(), kb: Some("default".into()), thread: Some(t), ..Default::default() }, &mut |_| {}).unwrap();
    assert!(a.events().is_none());
    // a person who asks for a human gets one whether or not the workspace measures itself
    let r = a.handoff(t, None).unwrap();
    assert_eq!(r.status, "delivered", "{r:?}");
}
