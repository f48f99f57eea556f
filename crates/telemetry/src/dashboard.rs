//! Everything the desktop's dashboard screen shows, in one value, so the
//! screen only renders: the KPI tiles (this window and the one before, for
//! trend arrows), daily time series (volume, containment, CSAT, latency,
//! cost), per-stage latency, the top content gaps and tool errors.
//!
//! Owns: the shape of that data, which KPIs are tiles and which way is
//! better for each. Never: a formula (kpi.rs) or a chart.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::CostTable;
use crate::event::EventKind;
use crate::kpi::{self, percentile, Gap, GroupBy, Kpis};
use crate::store::{EventStore, Window};
use crate::Result;

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SeriesPoint {
    /// The UTC day, `2026-12-06`.
    pub bucket: String,
    pub conversations: u64,
    pub messages: u64,
    pub containment_rate: f64,
    pub refusal_rate: f64,
    pub csat_mean: Option<f64>,
    /// CSAT scores given that day.
    pub csat_count: u64,
    pub ttft_p50_ms: f64,
    pub ttft_p95_ms: f64,
    pub total_p50_ms: f64,
    pub total_p95_ms: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StageLatency {
    pub stage: &'static str,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ToolStats {
    pub tool: String,
    pub actions: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_p95_ms: f64,
    /// Errors per class (`error` when a failure named none).
    pub classes: BTreeMap<String, u64>,
}

/// One KPI tile: its value in this window and in the one before, and which way it moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Tile {
    /// The KPI's path in `tresor kpi --json` (`containment_rate`, `csat.mean`, `ttft_ms.p95`).
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub key: &'static str,
    /// `count`, `rate` (0–1), `ms`, `score` (CSAT 1–5), `tokens` or `money` (the cost table's currency).
    #[cfg_attr(feature = "ts", ts(type = "'count' | 'rate' | 'ms' | 'score' | 'tokens' | 'money'"))]
    pub unit: &'static str,
    /// This window's value (null where the KPI is: no CSAT score, nothing resolved).
    pub value: Option<f64>,
    /// The previous window's (null when there is none, or it had nothing to measure this KPI on).
    pub previous: Option<f64>,
    /// value − previous.
    pub delta: Option<f64>,
    /// `up`, `down`, `flat` (|delta| < 1e-9) or `none` (no delta).
    #[cfg_attr(feature = "ts", ts(type = "'up' | 'down' | 'flat' | 'none'"))]
    pub trend: &'static str,
    /// Whether the move is an improvement (null for flat, none, or a KPI without a better direction: volume).
    pub good: Option<bool>,
}

/// The tiles: (key, unit, whether higher is better).
const TILES: [(&str, &str, Option<bool>); 12] = [
    ("conversations", "count", None),
    ("containment_rate", "rate", Some(true)),
    ("fcr_rate", "rate", Some(true)),
    ("escalation_rate", "rate", Some(false)),
    ("refusal_rate", "rate", Some(false)),
    ("csat.mean", "score", Some(true)),
    ("ttft_ms.p50", "ms", Some(false)),
    ("ttft_ms.p95", "ms", Some(false)),
    ("cache_hit_rate", "rate", Some(true)),
    ("tokens.per_conversation", "tokens", Some(false)),
    ("tool_error_rate", "rate", Some(false)),
    ("cost_per_resolved", "money", Some(false)),
];

/// The tiles of `kpis` against `previous`. A value is read from the KPIs' JSON by its key, so a
/// tile shows exactly what `tresor kpi --json` prints.
pub fn tiles(kpis: &Kpis, previous: Option<&Kpis>) -> Vec<Tile> {
    let json = |k: &Kpis| serde_json::to_value(k).unwrap_or_default();
    let get = |v: &serde_json::Value, key: &str| v.pointer(&format!("/{}", key.replace('.', "/"))).and_then(serde_json::Value::as_f64);
    let now = json(kpis);
    let before = previous.map(|p| (json(p), p));
    TILES
        .iter()
        .map(|&(key, unit, higher_better)| {
            let value = get(&now, key);
            // a previous window with nothing to measure on has no value to compare with (its rates read 0)
            let previous = before.as_ref().and_then(|(v, p)| {
                let measured = match key {
                    "conversations" => true,
                    "tool_error_rate" => p.tool_actions > 0,
                    _ => p.conversations > 0,
                };
                if measured {
                    get(v, key)
                } else {
                    None
                }
            });
            let delta = value.zip(previous).map(|(a, b)| a - b);
            let trend = match delta {
                None => "none",
                Some(d) if d.abs() < 1e-9 => "flat",
                Some(d) if d > 0.0 => "up",
                Some(_) => "down",
            };
            let good = match (trend, higher_better) {
                ("up", Some(h)) => Some(h),
                ("down", Some(h)) => Some(!h),
                _ => None,
            };
            Tile { key, unit, value, previous, delta, trend, good }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DashboardData {
    pub window: Window,
    pub kpis: Kpis,
    /// The KPIs of the window of the same length just before (null when the window has no start).
    pub previous: Option<Kpis>,
    /// The KPI tiles with their trend against `previous`.
    pub tiles: Vec<Tile>,
    pub series: Vec<SeriesPoint>,
    pub stages: Vec<StageLatency>,
    pub gaps: Vec<Gap>,
    pub tool_errors: Vec<ToolStats>,
}

/// The dashboard over `window` (its end defaults to now, inclusive: the window is `ts < until`, so
/// an open end becomes the millisecond after now and an event recorded this millisecond is counted).
pub fn dashboard(store: &EventStore, window: Window, cost: &CostTable) -> Result<DashboardData> {
    dashboard_at(store, window, cost, crate::time::now_ms())
}

fn dashboard_at(store: &EventStore, window: Window, cost: &CostTable, now_ms: i64) -> Result<DashboardData> {
    let until = window.until.unwrap_or(now_ms + 1);
    let window = Window { since: window.since, until: Some(until) };
    let events = store.events(&window)?;
    let previous = match window.since {
        Some(s) => Some(kpi::compute(&store.events(&Window { since: Some(s - (until - s)), until: Some(s) })?, cost)),
        None => None,
    };
    let series = kpi::compute_by(&events, GroupBy::Day, cost)
        .into_iter()
        .map(|g| SeriesPoint {
            bucket: g.key,
            conversations: g.kpis.conversations,
            messages: g.kpis.messages,
            containment_rate: g.kpis.containment_rate,
            refusal_rate: g.kpis.refusal_rate,
            csat_mean: g.kpis.csat.mean,
            csat_count: g.kpis.csat.count,
            ttft_p50_ms: g.kpis.ttft_ms.p50,
            ttft_p95_ms: g.kpis.ttft_ms.p95,
            total_p50_ms: g.kpis.total_ms.p50,
            total_p95_ms: g.kpis.total_ms.p95,
            cost: g.kpis.cost.total,
        })
        .collect();
    let msgs: Vec<_> = events.iter().filter_map(|e| if let EventKind::Message(m) = &e.event.kind { Some(m) } else { None }).collect();
    let stage_names = crate::event::Message::default().stages().map(|s| s.0);
    let stages = stage_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let v: Vec<f64> = msgs.iter().map(|m| m.stages()[i].1).collect();
            let mean = if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
            StageLatency { stage: name, mean_ms: mean, p50_ms: percentile(&v, 50.0), p95_ms: percentile(&v, 95.0) }
        })
        .collect();
    let mut tools: BTreeMap<String, (Vec<f64>, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for e in &events {
        if let EventKind::ToolAction(t) = &e.event.kind {
            let s = tools.entry(t.tool.clone()).or_default();
            s.0.push(t.latency_ms);
            if t.failed() {
                s.1 += 1;
                *s.2.entry(t.error_class.clone().unwrap_or_else(|| t.status.clone())).or_default() += 1;
            }
        }
    }
    let tool_errors = tools
        .into_iter()
        .map(|(tool, (lat, errors, classes))| ToolStats {
            tool,
            actions: lat.len() as u64,
            errors,
            error_rate: errors as f64 / lat.len() as f64,
            latency_p95_ms: percentile(&lat, 95.0),
            classes,
        })
        .collect();
    let kpis = kpi::compute(&events, cost);
    let tiles = tiles(&kpis, previous.as_ref());
    Ok(DashboardData { window, kpis, previous, tiles, series, stages, gaps: kpi::gaps(&events, 10), tool_errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile<'a>(t: &'a [Tile], key: &str) -> &'a Tile {
        t.iter().find(|x| x.key == key).unwrap_or_else(|| panic!("no tile {key}"))
    }

    #[test]
    fn an_event_of_this_millisecond_is_on_the_dashboard() {
        // the window is `ts < until`: an open end must include now, or the last conversation of a
        // fast session (recorded in the same millisecond the dashboard is asked for) goes missing
        let dir = tempfile::tempdir().unwrap();
        let s = EventStore::open(dir.path(), &tresor_guard::crypto::WorkspaceKey::from_bytes([5; 32])).unwrap();
        let m = crate::event::Message { route: "kb_question".into(), ..Default::default() };
        s.record(&crate::Event { ts_ms: 7_000, conversation_id: Some(1), message_id: Some(1), kb: None, kind: EventKind::Message(m) }).unwrap();
        let d = dashboard_at(&s, Window::default(), &CostTable::default(), 7_000).unwrap();
        assert_eq!((d.kpis.messages, d.window.until), (1, Some(7_001)));
        // an explicit end stays exclusive
        let d = dashboard_at(&s, Window { since: None, until: Some(7_000) }, &CostTable::default(), 9_000).unwrap();
        assert_eq!(d.kpis.messages, 0);
    }

    #[test]
    fn tiles_read_the_kpis_json_and_say_which_way_is_better() {
        let mut now = Kpis { conversations: 10, containment_rate: 0.8, escalation_rate: 0.2, cost_per_resolved: Some(0.5), ..Default::default() };
        now.csat.mean = Some(4.5);
        now.ttft_ms.p95 = 900.0;
        let mut before = Kpis { conversations: 5, containment_rate: 0.6, escalation_rate: 0.2, ..Default::default() };
        before.ttft_ms.p95 = 1200.0;
        let t = tiles(&now, Some(&before));
        assert_eq!(t.len(), TILES.len());
        let c = tile(&t, "containment_rate");
        assert_eq!((c.value, c.previous, c.trend, c.good), (Some(0.8), Some(0.6), "up", Some(true)));
        assert!((c.delta.unwrap() - 0.2).abs() < 1e-12);
        let l = tile(&t, "ttft_ms.p95");
        assert_eq!((l.unit, l.value, l.trend, l.good), ("ms", Some(900.0), "down", Some(true)), "lower latency is better");
        let e = tile(&t, "escalation_rate");
        assert_eq!((e.trend, e.good), ("flat", None));
        let v = tile(&t, "conversations");
        assert_eq!((v.value, v.trend, v.good), (Some(10.0), "up", None), "volume has no better direction");
        let s = tile(&t, "csat.mean");
        assert_eq!((s.value, s.previous, s.trend), (Some(4.5), None, "none"), "no CSAT before: no trend");
        assert_eq!(tile(&t, "cost_per_resolved").previous, None);
        // no previous window (open start), or one without conversations: no trend but the volume's
        assert!(tiles(&now, None).iter().all(|x| x.trend == "none" && x.previous.is_none()));
        let empty = tiles(&now, Some(&Kpis::default()));
        assert_eq!(tile(&empty, "conversations").previous, Some(0.0));
        assert_eq!(tile(&empty, "containment_rate").trend, "none");
        assert_eq!(tile(&empty, "tool_error_rate").previous, None);
    }
}
