//! Everything the desktop's dashboard screen shows, in one value, so the
//! screen only renders: the KPI tiles (this window and the one before, for
//! trend arrows), daily time series (volume, containment, CSAT, latency,
//! cost), per-stage latency, the top content gaps and tool errors.
//!
//! Owns: the shape of that data. Never: a formula (kpi.rs) or a chart.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::CostTable;
use crate::event::EventKind;
use crate::kpi::{self, percentile, Gap, GroupBy, Kpis};
use crate::store::{EventStore, Window};
use crate::Result;

#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    /// The UTC day, `2026-12-06`.
    pub bucket: String,
    pub conversations: u64,
    pub messages: u64,
    pub containment_rate: f64,
    pub refusal_rate: f64,
    pub csat_mean: Option<f64>,
    pub ttft_p50_ms: f64,
    pub ttft_p95_ms: f64,
    pub total_p95_ms: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageLatency {
    pub stage: &'static str,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolStats {
    pub tool: String,
    pub actions: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency_p95_ms: f64,
    /// Errors per class (`error` when a failure named none).
    pub classes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DashboardData {
    pub window: Window,
    pub kpis: Kpis,
    /// The KPIs of the window of the same length just before (null when the window has no start).
    pub previous: Option<Kpis>,
    pub series: Vec<SeriesPoint>,
    pub stages: Vec<StageLatency>,
    pub gaps: Vec<Gap>,
    pub tool_errors: Vec<ToolStats>,
}

/// The dashboard over `window` (its end defaults to now).
pub fn dashboard(store: &EventStore, window: Window, cost: &CostTable) -> Result<DashboardData> {
    let until = window.until.unwrap_or_else(crate::time::now_ms);
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
            ttft_p50_ms: g.kpis.ttft_ms.p50,
            ttft_p95_ms: g.kpis.ttft_ms.p95,
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
    Ok(DashboardData { window, kpis: kpi::compute(&events, cost), previous, series, stages, gaps: kpi::gaps(&events, 10), tool_errors })
}
