//! `tresor bench traffic`: replays a scripted mix of conversations through the
//! real `tresor` binary (answered, refused, rated, escalated, tool calls — a
//! price lookup, order lookups that succeed and fail, a booking, a booking
//! outside opening hours) on a scratch data dir with the shipped models, then
//! compares `tresor kpi --json` with the KPIs computed here, independently,
//! from the script and what each `tresor ask --json` printed (its `refused`,
//! `cache_hit`, `timings`, `tokens`, `actions`). A KPI that differs is a bug in
//! the events or the KPI code: the report says which, and the door exits non-zero.
//!
//! Owns the script, the independent arithmetic and the comparison table.
//! Never reads the events table or calls the KPI code (that is what it checks).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tresor_assistant::tresor_telemetry::CostTable;

use crate::{nearest_rank, BenchError, Result};

/// One step of a scripted conversation.
#[derive(Debug, Clone)]
pub enum Step {
    /// Ask (with `--yes` when the bool is set: side effects run at once).
    Ask(&'static str, bool),
    /// Rate the last answer: thumbs (+1/-1) and/or CSAT.
    Rate(Option<i8>, Option<u8>),
    /// Hand the conversation to a human.
    Handoff(&'static str),
}

use Step::*;

/// The mix: questions the sample documents answer (EN/DE), questions they do
/// not, ratings good and bad, a handoff, tool calls that succeed and fail, a
/// question asked twice (the semantic cache), a conversation of several turns.
pub fn script() -> Vec<Vec<Step>> {
    vec![
        vec![Ask("How many vacation days do full-time employees get?", false), Rate(Some(1), Some(5))],
        vec![Ask("Wie hoch ist die Hotelpauschale pro Nacht bei Dienstreisen?", false)],
        vec![Ask("What is the current stock index in Japan?", false), Handoff("needs market data")],
        vec![Ask("What does Nordlicht Vault Starter cost?", false), Rate(None, Some(4))],
        vec![Ask("Where is order A-1001?", false), Ask("And where is order Z-9999?", false)],
        vec![Ask("Book an appointment tomorrow at 10:00 about onboarding", true), Rate(Some(1), None)],
        vec![Ask("Book an appointment on Sunday at 11:00 about onboarding", true)],
        vec![Ask("Who won the football world cup in 1998?", false), Ask("Who won the world cup in 2002?", false), Rate(Some(-1), Some(1))],
        vec![Ask("How many vacation days do full-time employees get?", false)],
        vec![Ask("Wie melde ich mich krank?", false), Rate(None, Some(2)), Handoff("wants a person")],
    ]
}

/// Where and how the replay runs.
#[derive(Debug, Clone)]
pub struct TrafficOptions {
    /// The `tresor` binary.
    pub tresor: PathBuf,
    /// The documents the knowledge base is made of (the sample data in `assets/sample-kb`).
    pub docs: PathBuf,
    /// The scratch data dir (created, must be empty or absent).
    pub data_dir: PathBuf,
    /// The models (the children find them here).
    pub models_dir: PathBuf,
    /// The clock of the run (tool dates resolve against it): a Monday morning in Berlin.
    pub now: String,
}

/// One compared KPI.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kpi: String,
    pub expected: Value,
    pub measured: Value,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    pub conversations: usize,
    pub asks: usize,
    pub rows: Vec<Row>,
    /// What each ask got: `route refused|answered [tool:status …]`, in script order.
    pub turns: Vec<String>,
    /// Every row matched.
    pub ok: bool,
    /// `tresor kpi --json` as printed.
    pub kpi: Value,
}

const PRICES: &str = "sku,product,price,currency\nNV-100,Nordlicht Vault Starter,1490.00,EUR\nNV-200,Nordlicht Vault Business,4900.00,EUR\n";
/// One busy hour on the run's Tuesday; the rest of the week is free.
const CALENDAR: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tresor//bench traffic//EN\r\nBEGIN:VEVENT\r\nUID:busy-1@tresor\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261208T140000Z\r\nDTEND:20261208T150000Z\r\nSUMMARY:busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
const ORDERS: &str = "order_id,customer,status,updated_at\nA-1001,Muster GmbH,shipped,2026-12-03\nA-1002,Beispiel AG,processing,2026-12-05\n";

struct Run {
    t: crate::process::ScratchTresor,
}

impl Run {
    fn new(o: &TrafficOptions) -> Run {
        let mut t = crate::process::ScratchTresor::new(&o.tresor, &o.data_dir, &o.models_dir);
        t.passphrase = "bench-traffic-passphrase".into();
        t.env.push(("TRESOR_NOW".into(), o.now.clone()));
        Run { t }
    }

    fn tresor(&self, what: &str, args: &[&str]) -> Result<String> {
        self.t.run(what, args)
    }

    fn json(&self, what: &str, args: &[&str]) -> Result<Value> {
        let out = self.tresor(what, args)?;
        serde_json::from_str(&out).map_err(|e| BenchError::Output { what: what.to_string(), reason: format!("{e}: {}", out.chars().take(300).collect::<String>()) })
    }
}

/// What the script and the asks' own output say the KPIs must be.
#[derive(Debug, Default)]
struct Expected {
    conversations: u64,
    messages: u64,
    resolved: u64,
    escalated: u64,
    refused: u64,
    cache_hits: u64,
    csat: Vec<f64>,
    ttft: Vec<f64>,
    total_ms: f64,
    tokens: u64,
    tool_runs: u64,
    tool_errors: u64,
}


/// Replays [`script`] and compares. Fails only when the replay itself cannot run
/// (a command failed); a KPI mismatch is a row with `ok: false`.
pub fn run(o: &TrafficOptions, progress: &mut dyn FnMut(&str)) -> Result<TrafficReport> {
    if o.data_dir.exists() && std::fs::read_dir(&o.data_dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(BenchError::Output { what: "bench traffic".into(), reason: format!("{} is not empty: the replay needs a scratch data dir", o.data_dir.display()) });
    }
    let io = |e: std::io::Error| BenchError::Output { what: "bench traffic".into(), reason: e.to_string() };
    std::fs::create_dir_all(&o.data_dir).map_err(io)?;
    let r = Run::new(o);
    let docs = o.docs.to_string_lossy().to_string();
    progress(&format!("ingesting {docs}"));
    r.tresor("tresor ingest", &["ingest", &docs])?;
    let (prices, orders) = (o.data_dir.join("traffic-prices.csv"), o.data_dir.join("traffic-orders.csv"));
    std::fs::write(&prices, PRICES).map_err(io)?;
    std::fs::write(&orders, ORDERS).map_err(io)?;
    r.tresor("tresor tools import prices", &["tools", "import", "prices", &prices.to_string_lossy()])?;
    r.tresor("tresor tools import orders", &["tools", "import", "orders", &orders.to_string_lossy()])?;
    let calendar = o.data_dir.join("traffic-calendar.ics");
    std::fs::write(&calendar, CALENDAR).map_err(io)?;
    r.tresor("tresor tools import calendar", &["tools", "import", "calendar", &calendar.to_string_lossy()])?;

    let script = script();
    let mut e = Expected::default();
    let mut turns = Vec::new();
    for (i, conv) in script.iter().enumerate() {
        let mut conversation: Option<String> = None;
        let (mut last_msg, mut last_refused, mut negative, mut handoff) = (None::<String>, false, false, false);
        for step in conv {
            match step {
                Ask(q, yes) => {
                    progress(&format!("conversation {}: {q}", i + 1));
                    let mut args = vec!["ask", "--json"];
                    if *yes {
                        args.push("--yes");
                    }
                    if let Some(c) = &conversation {
                        args.extend(["--conversation", c.as_str()]);
                    }
                    args.push(q);
                    let a = r.json("tresor ask", &args)?;
                    let field = |p: &str| a.pointer(p).cloned().unwrap_or(Value::Null);
                    conversation = Some(field("/conversation_id").to_string());
                    last_msg = Some(field("/message_id").to_string());
                    last_refused = field("/refused").as_bool().unwrap_or(false);
                    e.messages += 1;
                    e.refused += last_refused as u64;
                    e.cache_hits += field("/cache_hit").as_bool().unwrap_or(false) as u64;
                    e.ttft.push(field("/timings/ttft_ms").as_f64().unwrap_or(0.0));
                    e.total_ms += field("/timings/total_ms").as_f64().unwrap_or(0.0);
                    e.tokens += field("/tokens/prompt").as_u64().unwrap_or(0) + field("/tokens/completion").as_u64().unwrap_or(0);
                    let acts: Vec<String> = a.get("actions").and_then(Value::as_array).into_iter().flatten().map(|x| format!("{}:{}", x["tool"].as_str().unwrap_or("?"), x["status"].as_str().unwrap_or("?"))).collect();
                    turns.push(format!("{q} → {} {} {}", field("/route").as_str().unwrap_or("?"), if last_refused { "refused" } else { "answered" }, acts.join(" ")).trim_end().to_string());
                    for act in a.get("actions").and_then(Value::as_array).into_iter().flatten() {
                        // an action that ran (not one waiting for confirmation or input)
                        match act.get("status").and_then(Value::as_str).unwrap_or("") {
                            "succeeded" => e.tool_runs += 1,
                            "failed" | "timed_out" => {
                                e.tool_runs += 1;
                                e.tool_errors += 1;
                            }
                            _ => {}
                        }
                    }
                }
                Rate(thumbs, csat) => {
                    let m = last_msg.clone().expect("a rating follows an answer");
                    let mut args = vec!["feedback".to_string(), m];
                    match thumbs {
                        Some(1) => args.push("--up".into()),
                        Some(_) => args.push("--down".into()),
                        None => {}
                    }
                    if let Some(c) = csat {
                        args.extend(["--csat".into(), c.to_string()]);
                        e.csat.push(f64::from(*c));
                    }
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    r.tresor("tresor feedback", &args)?;
                    negative |= *thumbs == Some(-1) || csat.is_some_and(|c| c <= 2);
                }
                Handoff(reason) => {
                    let c = conversation.clone().expect("a handoff follows an answer");
                    r.tresor("tresor handoff", &["handoff", &c, "--reason", reason])?;
                    handoff = true;
                }
            }
        }
        e.conversations += 1;
        e.escalated += handoff as u64;
        e.resolved += (!handoff && !last_refused && !negative) as u64;
    }

    let kpi = r.json("tresor kpi", &["kpi", "--json"])?;
    let rows = compare(&e, &kpi);
    let ok = rows.iter().all(|r| r.ok);
    Ok(TrafficReport { conversations: script.len(), asks: e.messages as usize, rows, turns, ok, kpi })
}

fn compare(e: &Expected, kpi: &Value) -> Vec<Row> {
    let c = e.conversations as f64;
    let m = e.messages as f64;
    let rate = |n: u64, d: f64| if d == 0.0 { 0.0 } else { n as f64 / d };
    let cost = CostTable::default().local(e.total_ms);
    let csat_mean = (!e.csat.is_empty()).then(|| e.csat.iter().sum::<f64>() / e.csat.len() as f64);
    let expected: Vec<(&str, Value)> = vec![
        ("/conversations", e.conversations.into()),
        ("/messages", e.messages.into()),
        ("/resolved", e.resolved.into()),
        ("/escalated", e.escalated.into()),
        ("/containment_rate", rate(e.conversations - e.escalated, c).into()),
        ("/escalation_rate", rate(e.escalated, c).into()),
        ("/refusal_rate", rate(e.refused, m).into()),
        ("/cache_hit_rate", rate(e.cache_hits, m).into()),
        ("/csat/count", (e.csat.len() as u64).into()),
        ("/csat/mean", csat_mean.map(Value::from).unwrap_or(Value::Null)),
        ("/ttft_ms/p50", nearest_rank(e.ttft.clone(), 0.5).into()),
        ("/ttft_ms/p95", nearest_rank(e.ttft.clone(), 0.95).into()),
        ("/tokens/per_conversation", (e.tokens as f64 / c).into()),
        ("/tool_actions", e.tool_runs.into()),
        ("/tool_error_rate", rate(e.tool_errors, e.tool_runs as f64).into()),
        ("/cost_per_resolved", if e.resolved == 0 { Value::Null } else { (cost / e.resolved as f64).into() }),
    ];
    expected
        .into_iter()
        .map(|(p, want)| {
            let got = kpi.pointer(p).cloned().unwrap_or(Value::Null);
            Row { kpi: p.trim_start_matches('/').replace('/', "."), ok: same(&want, &got), expected: want, measured: got }
        })
        .collect()
}

/// Equal, numbers within a relative 1e-6 (JSON round trips of f64 sums).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-9),
        _ => a == b,
    }
}

/// The report as a table.
pub fn table(r: &TrafficReport) -> String {
    let mut s = String::from("| KPI | from the script | tresor kpi --json | |\n|---|---|---|---|\n");
    for row in &r.rows {
        s.push_str(&format!("| {} | {} | {} | {} |\n", row.kpi, fmt(&row.expected), fmt(&row.measured), if row.ok { "=" } else { "DIFFERS" }));
    }
    s
}

fn fmt(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && x.abs() < 0.01 && x != 0.0 => format!("{x:.3e}"),
        Some(x) if v.is_f64() => format!("{x:.3}"),
        _ => v.to_string(),
    }
}

/// The default documents: `assets/sample-kb` of the source tree this binary was built from, else of the working dir.
pub fn default_docs() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample-kb");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("assets/sample-kb")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kpi_from(e: &Expected) -> Value {
        let rows = compare(e, &Value::Null);
        let mut out = serde_json::Map::new();
        for r in rows {
            let mut parts = r.kpi.split('.');
            let (a, b) = (parts.next().unwrap().to_string(), parts.next());
            match b {
                None => {
                    out.insert(a, r.expected);
                }
                Some(b) => {
                    out.entry(a).or_insert_with(|| Value::Object(Default::default())).as_object_mut().unwrap().insert(b.into(), r.expected);
                }
            }
        }
        Value::Object(out)
    }

    #[test]
    fn the_comparison_finds_a_kpi_that_differs() {
        let e = Expected { conversations: 4, messages: 6, resolved: 2, escalated: 1, refused: 2, csat: vec![5.0, 1.0], ttft: vec![10.0, 30.0, 20.0], total_ms: 900.0, tokens: 400, tool_runs: 3, tool_errors: 1, ..Default::default() };
        let mut kpi = kpi_from(&e);
        assert!(compare(&e, &kpi).iter().all(|r| r.ok), "{kpi:#}");
        assert_eq!(kpi["containment_rate"], 0.75);
        assert_eq!(kpi["ttft_ms"]["p50"], 20.0);
        kpi["escalation_rate"] = 0.5.into();
        let bad: Vec<_> = compare(&e, &kpi).into_iter().filter(|r| !r.ok).map(|r| r.kpi).collect();
        assert_eq!(bad, ["escalation_rate"]);
        kpi.as_object_mut().unwrap().remove("messages");
        assert_eq!(compare(&e, &kpi).iter().filter(|r| !r.ok).count(), 2);
    }

    #[test]
    fn nearest_rank_follows_the_docs() {
        assert_eq!(nearest_rank(vec![4.0, 1.0, 3.0, 2.0], 0.5), 2.0);
        assert_eq!(nearest_rank(vec![4.0, 1.0, 3.0, 2.0], 0.95), 4.0);
        assert_eq!(nearest_rank(vec![], 0.5), 0.0);
    }

    #[test]
    fn the_script_mixes_every_kind_of_turn() {
        let s = script();
        let steps: Vec<&Step> = s.iter().flatten().collect();
        assert!(steps.iter().any(|s| matches!(s, Handoff(_))));
        assert!(steps.iter().any(|s| matches!(s, Rate(Some(-1), _))));
        assert!(steps.iter().any(|s| matches!(s, Ask(_, true))));
        assert!(s.iter().any(|c| c.iter().filter(|s| matches!(s, Ask(..))).count() > 1));
    }
}
