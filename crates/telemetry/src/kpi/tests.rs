use super::*;
use crate::event::{Event, EventKind, Feedback, Message, Outcome, StoredEvent, ToolAction};

struct Log(Vec<StoredEvent>);

impl Log {
    fn push(&mut self, ts: i64, conv: Option<i64>, msg: Option<i64>, kind: EventKind) {
        let id = self.0.len() as i64 + 1;
        self.0.push(StoredEvent { event_id: id, schema_version: 1, event: Event { ts_ms: ts, conversation_id: conv, message_id: msg, kb: Some("kb".into()), kind } });
    }
    fn msg(&mut self, ts: i64, conv: i64, id: i64, q: &str, refused: bool, total: f64, hit: bool) {
        let m = Message {
            model: if hit { "none".into() } else { "small".into() },
            question_id: q.into(),
            topic_id: format!("t-{q}"),
            refused,
            total_ms: total,
            ttft_ms: total / 2.0,
            cache_hit: hit,
            tokens_in: 100,
            tokens_out: 20,
            ..Default::default()
        };
        self.push(ts, Some(conv), Some(id), EventKind::Message(m));
    }
}

#[test]
fn kpis_follow_the_documented_formulas() {
    let mut l = Log(Vec::new());
    // c1: one answer, thumbs up + CSAT 5 -> resolved, first contact
    l.msg(10_000, 1, 11, "q1", false, 1000.0, false);
    l.push(11_000, Some(1), Some(11), EventKind::Feedback(Feedback { thumbs: Some(1), csat: Some(5), comment: None }));
    // c2: refused -> unresolved
    l.msg(20_000, 2, 21, "q2", true, 200.0, false);
    // c3: two answers, then a handoff -> escalated
    l.msg(30_000, 3, 31, "q3", false, 3000.0, false);
    l.msg(40_000, 3, 32, "q3b", false, 500.0, true);
    l.push(41_000, Some(3), None, EventKind::Handoff { reason: Some("wants a human".into()) });
    // c4: answered, CSAT 2 -> negative -> unresolved; a tool error in it
    l.msg(50_000, 4, 41, "q4", false, 800.0, false);
    l.push(50_500, Some(4), Some(41), EventKind::Feedback(Feedback { thumbs: None, csat: Some(2), comment: None }));
    l.push(50_200, Some(4), None, EventKind::ToolAction(ToolAction { tool: "calendar".into(), status: "error".into(), latency_ms: 5.0, error_class: Some("io".into()) }));
    // c5: answered, explicit abandoned
    l.msg(60_000, 5, 51, "q5", false, 400.0, false);
    l.push(61_000, Some(5), None, EventKind::Resolution { outcome: Outcome::Abandoned });
    // c6: q1 asked again later: resolved, but c1 then is no first-contact resolution
    l.msg(70_000, 6, 61, "q1", false, 100.0, true);
    // a tool call outside any conversation, ok
    l.push(80_000, None, None, EventKind::ToolAction(ToolAction { tool: "calendar".into(), status: "ok".into(), latency_ms: 3.0, error_class: None }));
    let cost = CostTable { watts: 100.0, price_per_kwh: 1.0, hardware_price: 0.0, amortisation_hours: 1.0, ..Default::default() };
    let k = compute(&l.0, &cost);
    assert_eq!((k.conversations, k.messages), (6, 7));
    assert_eq!((k.resolved, k.escalated, k.abandoned), (2, 1, 1)); // c1, c6 | c3 | c5
    assert_eq!(k.containment_rate, 5.0 / 6.0);
    assert_eq!(k.escalation_rate, 1.0 / 6.0);
    assert_eq!(k.deflection_rate, 2.0 / 6.0);
    assert_eq!(k.fcr_rate, 1.0 / 6.0); // c6 only: q1 came back after c1
    assert_eq!(k.refusal_rate, 1.0 / 7.0);
    assert_eq!(k.cache_hit_rate, 2.0 / 7.0);
    assert_eq!(k.csat, Csat { count: 2, mean: Some(3.5), satisfied_share: Some(0.5) });
    assert_eq!((k.thumbs_up, k.thumbs_down), (1, 0));
    // totals sorted: 100 200 400 500 800 1000 3000: p50 = rank 4, p95 = rank 7
    assert_eq!(k.total_ms, Percentiles { p50: 500.0, p95: 3000.0 });
    assert_eq!(k.ttft_ms, Percentiles { p50: 250.0, p95: 1500.0 });
    assert_eq!(k.tokens.per_conversation, 7.0 * 120.0 / 6.0);
    assert_eq!((k.tool_actions, k.tool_errors, k.tool_error_rate), (2, 1, 0.5));
    // handle time: c3 spans 30_000 - 3000 .. 40_000 = 13_000 ms; the others their one answer
    assert_eq!(k.aht_ms, (1000.0 + 200.0 + 13_000.0 + 800.0 + 400.0 + 100.0) / 6.0);
    // 6000 ms at 100 W = 0.0001667 kWh at 1/kWh
    let busy = 6000.0;
    assert!((k.cost.total - 100.0 * busy / 3.6e6 / 1000.0).abs() < 1e-12);
    assert_eq!(k.cost_per_resolved, Some(k.cost.total / 2.0));
    let by = compute_by(&l.0, GroupBy::Model, &cost);
    assert_eq!(by.iter().map(|g| (g.key.as_str(), g.kpis.conversations)).collect::<Vec<_>>(), vec![("none", 1), ("small", 5)]);
    let g = gaps(&l.0, 10);
    assert_eq!(g.iter().map(|g| g.topic_id.as_str()).collect::<Vec<_>>(), vec!["t-q2", "t-q4"]);
    assert_eq!((g[1].low_rated, g[1].refused), (1, 0));
}

#[test]
fn an_empty_window_has_zero_rates_and_no_cost_per_resolution() {
    let k = compute(&[], &CostTable::default());
    assert_eq!(k.conversations, 0);
    assert_eq!(k.containment_rate, 0.0);
    assert_eq!(k.cost_per_resolved, None);
    assert_eq!(k.csat.mean, None);
}

#[test]
fn retrieval_comes_from_the_latest_eval_run_and_counts_no_conversation() {
    let run = |r1: f64, lift: Option<f64>| EventKind::EvalRun(crate::event::EvalRun { eval: "retrieval".into(), dataset: "gold.jsonl".into(), cases: 40, recall_at_1: r1, recall_at_5: 0.95, mrr: 0.8, rerank_lift: lift });
    let mut l = Log(Vec::new());
    assert_eq!(compute(&l.0, &CostTable::default()).retrieval, None);
    l.push(5_000, None, None, run(0.70, Some(0.05)));
    l.push(9_000, None, None, run(0.75, Some(0.10)));
    l.push(7_000, None, None, run(0.60, None));
    l.msg(10_000, 1, 11, "q1", false, 1000.0, false);
    let k = compute(&l.0, &CostTable::default());
    let r = k.retrieval.expect("an eval run in the window");
    assert_eq!((r.runs, r.ts_ms, r.recall_at_1, r.rerank_lift), (3, 9_000, 0.75, Some(0.10)));
    assert_eq!((k.conversations, k.messages), (1, 1), "an eval run is no conversation");
    // groups carry no retrieval figure (an eval run belongs to no conversation)
    assert!(compute_by(&l.0, GroupBy::Day, &CostTable::default()).iter().all(|g| g.kpis.retrieval.is_none()));
}
