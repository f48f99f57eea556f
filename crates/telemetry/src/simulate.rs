//! `tresor simulate`: what monthly cost and latency become when volume,
//! containment, cache hits or the model mix change — starting from what the
//! events measured (volume per day, messages per conversation, containment,
//! cache hit rate, each model's share, latency samples and tokens), never from
//! invented constants; the prices are the cost table's. Every assumption is
//! listed in the result.
//!
//! Owns: the scenario arithmetic. Never: a measurement of its own.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::CostTable;
use crate::event::Message;
use crate::kpi::{self, Conversation};
use crate::event::StoredEvent;
use crate::{Result, TelemetryError};

/// Days in the simulated month.
pub const MONTH_DAYS: f64 = 30.0;

/// What to change; None keeps the measured value.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Conversations per day.
    pub volume_per_day: Option<f64>,
    /// Added to the measured containment rate (−0.1: ten points fewer conversations contained).
    pub containment_delta: f64,
    /// The cache hit rate (0–1).
    pub cache_hit_rate: Option<f64>,
    /// Share of each model among the answers that are not cache hits (normalised to 1).
    pub model_mix: Option<Vec<(String, f64)>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "SimulatedOutcome"))]
pub struct Outcome {
    pub volume_per_day: f64,
    pub conversations_per_month: f64,
    pub messages_per_month: f64,
    pub containment_rate: f64,
    pub cache_hit_rate: f64,
    pub model_mix: BTreeMap<String, f64>,
    pub handoffs_per_month: f64,
    /// Local inference (energy + amortisation).
    pub inference_cost: f64,
    /// Handoffs × the cost table's handoff cost.
    pub handoff_cost: f64,
    pub total_cost: f64,
    pub cost_per_conversation: f64,
    /// The same tokens at each cloud price (cache hits cost nothing there either), per month.
    pub cloud_cost: BTreeMap<String, f64>,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Simulation {
    pub currency: String,
    /// With the measured values.
    pub baseline: Outcome,
    /// With the scenario's changes.
    pub scenario: Outcome,
    /// Every measured input and every assumption, in words.
    pub assumptions: Vec<String>,
}

struct Measured<'a> {
    days: f64,
    conversations: f64,
    msgs_per_conv: f64,
    containment: f64,
    hits: Vec<&'a Message>,
    by_model: BTreeMap<String, Vec<&'a Message>>,
}

fn measure<'a>(convs: &'a [Conversation]) -> Measured<'a> {
    let first = convs.iter().map(|c| c.messages[0].ts_ms).min().unwrap_or(0);
    let last = convs.iter().flat_map(|c| c.messages.iter().map(|t| t.ts_ms)).max().unwrap_or(0);
    let days = ((last - first) as f64 / 86_400_000.0).max(1.0);
    let n = convs.len() as f64;
    let msgs: Vec<&Message> = convs.iter().flat_map(|c| c.messages.iter().map(|t| &t.message)).collect();
    let refs: Vec<&Conversation> = convs.iter().collect();
    let k = kpi::kpis_of(&refs, &[], &CostTable::default());
    let mut by_model: BTreeMap<String, Vec<&Message>> = BTreeMap::new();
    let mut hits = Vec::new();
    for m in &msgs {
        if m.cache_hit {
            hits.push(*m);
        } else {
            by_model.entry(m.model.clone()).or_default().push(*m);
        }
    }
    Measured { days, conversations: n, msgs_per_conv: msgs.len() as f64 / n, containment: k.containment_rate, hits, by_model }
}

/// Weighted quantile: the smallest value whose cumulative weight reaches `p` of the total.
fn weighted_quantile(samples: &mut [(f64, f64)], p: f64) -> f64 {
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = samples.iter().map(|s| s.1).sum();
    let mut acc = 0.0;
    for s in samples.iter() {
        acc += s.1;
        if acc >= p * total - 1e-12 {
            return s.0;
        }
    }
    samples.last().map_or(0.0, |s| s.0)
}

fn mean(v: &[&Message], f: impl Fn(&Message) -> f64) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().map(|m| f(m)).sum::<f64>() / v.len() as f64
    }
}

/// Runs the baseline and `scenario` over the measured `events`.
pub fn simulate(events: &[StoredEvent], scenario: &Scenario, cost: &CostTable) -> Result<Simulation> {
    let (convs, _) = kpi::conversations(events);
    if convs.is_empty() {
        return Err(TelemetryError::Invalid("no answered messages in the events to simulate from (answer some questions first, or widen --since)".into()));
    }
    let m = measure(&convs);
    let mut assumptions = vec![
        format!("measured over {} conversation(s), {:.1} day(s) of events: {:.2} conversations/day", m.conversations, m.days, m.conversations / m.days),
        format!("measured: {:.2} messages per conversation (kept in every scenario)", m.msgs_per_conv),
        format!("measured: containment {:.3}, cache hit rate {:.3}", m.containment, m.hits.len() as f64 / (m.conversations * m.msgs_per_conv)),
        format!("a month is {MONTH_DAYS} days"),
        format!(
            "local inference costs {} W × busy time × {} {}/kWh + hardware {} {} over {} h of inference (cost table)",
            cost.watts, cost.price_per_kwh, cost.currency, cost.hardware_price, cost.currency, cost.amortisation_hours
        ),
        format!("each handoff costs {} {} (cost table)", cost.handoff_cost, cost.currency),
        "a cache hit takes the measured time of cache hits and uses no model tokens (here or in the cloud)".into(),
        "an answer that is not a cache hit takes a measured time of its model (the latency samples are resampled with the mix's weights)".into(),
    ];
    for (model, v) in &m.by_model {
        assumptions.push(format!(
            "measured for `{model}`: {} answer(s), mean total {:.1} ms, {:.0} tokens in / {:.0} out per answer",
            v.len(),
            mean(v, |x| x.total_ms),
            mean(v, |x| x.tokens_in as f64),
            mean(v, |x| x.tokens_out as f64)
        ));
    }
    let hit_ms: Vec<f64> = if m.hits.is_empty() {
        let all: Vec<&Message> = m.by_model.values().flatten().copied().collect();
        let pipeline = mean(&all, |x| x.policy_ms + x.firewall_ms + x.retrieve_ms + x.record_ms);
        assumptions.push(format!(
            "no cache hit was measured: a hit is assumed to take the measured pipeline share of a miss (policy + firewall + retrieve + record = {pipeline:.1} ms)"
        ));
        vec![pipeline]
    } else {
        m.hits.iter().map(|x| x.total_ms).collect()
    };
    let measured_mix: Vec<(String, f64)> = {
        let misses: usize = m.by_model.values().map(Vec::len).sum();
        m.by_model.iter().map(|(k, v)| (k.clone(), v.len() as f64 / misses.max(1) as f64)).collect()
    };
    let measured_hit_rate = m.hits.len() as f64 / (m.conversations * m.msgs_per_conv);
    let run = |volume: f64, containment: f64, hit_rate: f64, mix: &[(String, f64)]| -> Result<Outcome> {
        let total_share: f64 = mix.iter().map(|x| x.1).sum();
        let conv = volume * MONTH_DAYS;
        let msgs = conv * m.msgs_per_conv;
        let mut samples: Vec<(f64, f64)> = hit_ms.iter().map(|t| (*t, hit_rate / hit_ms.len() as f64)).collect();
        let hit_cost = cost.local(hit_ms.iter().sum::<f64>() / hit_ms.len() as f64);
        let mut miss_cost = 0.0;
        let mut cloud: BTreeMap<String, f64> = cost.cloud.iter().map(|p| (p.name.clone(), 0.0)).collect();
        let mut mix_out = BTreeMap::new();
        for (model, share) in mix {
            let share = if total_share > 0.0 { share / total_share } else { 0.0 };
            mix_out.insert(model.clone(), share);
            if share == 0.0 {
                continue;
            }
            let v = m.by_model.get(model).ok_or_else(|| {
                TelemetryError::Invalid(format!("model `{model}` has no measured answers (measured: {})", m.by_model.keys().cloned().collect::<Vec<_>>().join(", ")))
            })?;
            let w = (1.0 - hit_rate) * share;
            samples.extend(v.iter().map(|x| (x.total_ms, w / v.len() as f64)));
            miss_cost += w * cost.local(mean(v, |x| x.total_ms));
            for p in &cost.cloud {
                let per = CostTable::cloud(p, mean(v, |x| x.tokens_in as f64).round() as u64, mean(v, |x| x.tokens_out as f64).round() as u64);
                *cloud.get_mut(&p.name).expect("inserted") += w * per * msgs;
            }
        }
        let inference = msgs * (hit_rate * hit_cost + miss_cost);
        let containment = containment.clamp(0.0, 1.0);
        let handoffs = conv * (1.0 - containment);
        let handoff_cost = handoffs * cost.handoff_cost;
        let total = inference + handoff_cost;
        Ok(Outcome {
            volume_per_day: volume,
            conversations_per_month: conv,
            messages_per_month: msgs,
            containment_rate: containment,
            cache_hit_rate: hit_rate,
            model_mix: mix_out,
            handoffs_per_month: handoffs,
            inference_cost: inference,
            handoff_cost,
            total_cost: total,
            cost_per_conversation: if conv > 0.0 { total / conv } else { 0.0 },
            cloud_cost: cloud,
            latency_p50_ms: weighted_quantile(&mut samples.clone(), 0.5),
            latency_p95_ms: weighted_quantile(&mut samples, 0.95),
        })
    };
    let volume = m.conversations / m.days;
    let baseline = run(volume, m.containment, measured_hit_rate, &measured_mix)?;
    if let Some(r) = scenario.cache_hit_rate {
        if !(0.0..=1.0).contains(&r) {
            return Err(TelemetryError::Invalid(format!("--cache-hit-rate must be between 0 and 1 (got {r})")));
        }
    }
    let s_volume = scenario.volume_per_day.unwrap_or(volume);
    let s_mix = scenario.model_mix.clone().unwrap_or_else(|| measured_mix.clone());
    if let Some(v) = scenario.volume_per_day {
        assumptions.push(format!("scenario: {v} conversations/day"));
    }
    if scenario.containment_delta != 0.0 {
        assumptions.push(format!("scenario: containment {:+.3} (clamped to 0..1)", scenario.containment_delta));
    }
    if let Some(r) = scenario.cache_hit_rate {
        assumptions.push(format!("scenario: cache hit rate {r}"));
    }
    if scenario.model_mix.is_some() {
        assumptions.push(format!("scenario: model mix {:?} (normalised)", s_mix));
    }
    let s = run(s_volume, m.containment + scenario.containment_delta, scenario.cache_hit_rate.unwrap_or(measured_hit_rate), &s_mix)?;
    Ok(Simulation { currency: cost.currency.clone(), baseline, scenario: s, assumptions })
}
