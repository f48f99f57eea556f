//! The KPIs, computed from the events alone, exactly as docs/kpi.md defines
//! them: conversations are assembled from the events in the window, each gets
//! an outcome (resolved / escalated / abandoned / unresolved), and every rate
//! is a count over a count. `compute_by` splits the conversations into groups
//! (day, ISO week, knowledge base, model, variant of their first message).
//!
//! Owns: the formulas, the outcome rule, percentiles, content gaps. Never:
//! reads the store itself or keeps a counter.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::cost::CostTable;
use crate::event::{EvalRun, Feedback, Message, Outcome, StoredEvent, ToolAction};
use crate::event::EventKind;

/// `p50` and `p95` (nearest rank) of a distribution, ms; 0 when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Csat {
    /// CSAT scores given.
    pub count: u64,
    /// Their mean (null when none).
    pub mean: Option<f64>,
    /// Share of scores 4 or 5 (null when none).
    pub satisfied_share: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TokenKpis {
    #[serde(rename = "in")]
    pub tokens_in: u64,
    #[serde(rename = "out")]
    pub tokens_out: u64,
    /// (in + out) / conversations.
    pub per_conversation: f64,
    /// (in + out) / messages.
    pub per_message: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CloudCost {
    pub name: String,
    pub currency: String,
    pub total: f64,
    pub per_conversation: f64,
    pub per_resolved: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CostKpis {
    pub currency: String,
    /// Energy of the answers' busy time, kWh.
    pub energy_kwh: f64,
    /// Local inference: energy + amortisation over every answer's total_ms.
    pub total: f64,
    pub per_conversation: f64,
    pub per_resolved: Option<f64>,
    /// The same tokens at cloud list prices.
    pub cloud: Vec<CloudCost>,
}

/// Every KPI over one set of conversations (docs/kpi.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Kpis {
    pub conversations: u64,
    pub messages: u64,
    pub resolved: u64,
    pub escalated: u64,
    pub abandoned: u64,
    /// Conversations without a handoff / conversations.
    pub containment_rate: f64,
    /// Resolved conversations / conversations (resolved without a human).
    pub deflection_rate: f64,
    /// Resolved with one message whose question did not come back in a later conversation / conversations.
    pub fcr_rate: f64,
    pub escalation_rate: f64,
    pub abandonment_rate: f64,
    /// Refused messages / messages.
    pub refusal_rate: f64,
    pub grounded_rate: f64,
    pub extractive_rate: f64,
    /// Mean conversation handle time: first message's start to last message's end, ms.
    pub aht_ms: f64,
    pub csat: Csat,
    pub thumbs_up: u64,
    pub thumbs_down: u64,
    pub cache_hit_rate: f64,
    pub ttft_ms: Percentiles,
    pub total_ms: Percentiles,
    pub tokens: TokenKpis,
    pub tool_actions: u64,
    pub tool_errors: u64,
    pub tool_error_rate: f64,
    pub cost: CostKpis,
    /// Local cost / conversations.
    pub cost_per_conversation: f64,
    /// Local cost / resolved conversations (null when none resolved).
    pub cost_per_resolved: Option<f64>,
    /// Retrieval quality from the latest recorded eval run in the window (null when none; not per group).
    pub retrieval: Option<RetrievalKpi>,
}

/// Retrieval recall and rerank lift, from `eval_run` events (docs/kpi.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RetrievalKpi {
    /// Eval runs recorded in the window.
    pub runs: u64,
    /// The latest run's time, gold set and figures.
    pub ts_ms: i64,
    pub kb: Option<String>,
    pub dataset: String,
    pub cases: u64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
    pub rerank_lift: Option<f64>,
}

/// The latest `retrieval` eval run of `events` and how many there were.
pub fn retrieval(events: &[StoredEvent]) -> Option<RetrievalKpi> {
    let runs: Vec<(&StoredEvent, &EvalRun)> = events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::EvalRun(r) if r.eval == "retrieval" => Some((e, r)),
            _ => None,
        })
        .collect();
    let (e, r) = runs.iter().max_by_key(|(e, _)| (e.event.ts_ms, e.event_id))?;
    Some(RetrievalKpi {
        runs: runs.len() as u64,
        ts_ms: e.event.ts_ms,
        kb: e.event.kb.clone(),
        dataset: r.dataset.clone(),
        cases: r.cases,
        recall_at_1: r.recall_at_1,
        recall_at_5: r.recall_at_5,
        mrr: r.mrr,
        rerank_lift: r.rerank_lift,
    })
}

/// One answered message of a conversation.
#[derive(Debug, Clone)]
pub struct Turn {
    pub ts_ms: i64,
    pub kb: Option<String>,
    pub message_id: Option<i64>,
    pub message: Message,
}

/// A conversation assembled from its events.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub key: String,
    pub messages: Vec<Turn>,
    pub feedback: Vec<(Option<i64>, Feedback)>,
    pub handoff: bool,
    pub explicit: Option<Outcome>,
    pub tools: Vec<ToolAction>,
    pub first_ts: i64,
}

impl Conversation {
    /// Explicit resolution (the latest) first; else a handoff escalates; else resolved when the last answer
    /// was not a refusal and no feedback was negative; else none (unresolved).
    pub fn outcome(&self) -> Option<Outcome> {
        if let Some(o) = self.explicit {
            return Some(o);
        }
        if self.handoff {
            return Some(Outcome::Escalated);
        }
        let last_refused = self.messages.last().is_some_and(|m| m.message.refused);
        let negative = self.feedback.iter().any(|f| f.1.negative());
        (!last_refused && !negative).then_some(Outcome::Resolved)
    }
    /// The first message's start: its end (`ts_ms`) minus its `total_ms`.
    fn start_ms(&self) -> f64 {
        self.messages.first().map_or(0.0, |m| m.ts_ms as f64 - m.message.total_ms)
    }
    fn end_ms(&self) -> f64 {
        self.messages.last().map_or(0.0, |m| m.ts_ms as f64)
    }
    pub fn first(&self) -> &Message {
        &self.messages[0].message
    }
}

/// Conversations with at least one message in the events (oldest first), and the tool actions
/// that belong to no conversation in them.
pub fn conversations(events: &[StoredEvent]) -> (Vec<Conversation>, Vec<ToolAction>) {
    let mut by_key: HashMap<String, Conversation> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut msg_conv: HashMap<i64, String> = HashMap::new();
    let key_of = |e: &StoredEvent| e.event.conversation_id.map(|c| format!("c{c}"));
    for e in events {
        if let EventKind::Message(m) = &e.event.kind {
            let key = key_of(e).unwrap_or_else(|| format!("e{}", e.event_id));
            if let Some(mid) = e.event.message_id {
                msg_conv.insert(mid, key.clone());
            }
            let c = by_key.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                Conversation { key, messages: Vec::new(), feedback: Vec::new(), handoff: false, explicit: None, tools: Vec::new(), first_ts: e.event.ts_ms }
            });
            c.messages.push(Turn { ts_ms: e.event.ts_ms, kb: e.event.kb.clone(), message_id: e.event.message_id, message: m.clone() });
        }
    }
    let mut loose_tools = Vec::new();
    for e in events {
        let key = key_of(e).or_else(|| e.event.message_id.and_then(|m| msg_conv.get(&m).cloned()));
        let conv = key.and_then(|k| by_key.get_mut(&k));
        match (&e.event.kind, conv) {
            (EventKind::Feedback(f), Some(c)) => c.feedback.push((e.event.message_id, f.clone())),
            (EventKind::Handoff { .. }, Some(c)) => c.handoff = true,
            (EventKind::Resolution { outcome }, Some(c)) => c.explicit = Some(*outcome),
            (EventKind::ToolAction(t), Some(c)) => c.tools.push(t.clone()),
            (EventKind::ToolAction(t), None) => loose_tools.push(t.clone()),
            _ => {}
        }
    }
    (order.into_iter().filter_map(|k| by_key.remove(&k)).collect(), loose_tools)
}

/// Nearest-rank percentile `p` (0–100) of `v`; 0 when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

pub fn percentiles(v: &[f64]) -> Percentiles {
    Percentiles { p50: percentile(v, 50.0), p95: percentile(v, 95.0) }
}

fn rate(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The KPIs of all conversations in `events`.
pub fn compute(events: &[StoredEvent], cost: &CostTable) -> Kpis {
    let (convs, loose) = conversations(events);
    let refs: Vec<&Conversation> = convs.iter().collect();
    Kpis { retrieval: retrieval(events), ..kpis_of(&refs, &loose, cost) }
}

/// The KPIs of `convs` (plus tool actions outside any conversation).
pub fn kpis_of(convs: &[&Conversation], loose_tools: &[ToolAction], cost: &CostTable) -> Kpis {
    let n = convs.len() as u64;
    let msgs: Vec<&Message> = convs.iter().flat_map(|c| c.messages.iter().map(|m| &m.message)).collect();
    let m = msgs.len() as u64;
    let count = |f: &dyn Fn(&Message) -> bool| msgs.iter().filter(|x| f(x)).count() as u64;
    let outcomes: Vec<Option<Outcome>> = convs.iter().map(|c| c.outcome()).collect();
    let out_n = |o: Outcome| outcomes.iter().filter(|x| **x == Some(o)).count() as u64;
    let (resolved, escalated, abandoned) = (out_n(Outcome::Resolved), out_n(Outcome::Escalated), out_n(Outcome::Abandoned));
    // FCR: resolved with one message, and its question is not asked again in a later conversation
    let mut fcr = 0;
    for (i, c) in convs.iter().enumerate() {
        if outcomes[i] == Some(Outcome::Resolved) && c.messages.len() == 1 {
            let q = &c.first().question_id;
            let again = convs.iter().any(|o| o.first_ts > c.first_ts && o.messages.iter().any(|m| &m.message.question_id == q));
            fcr += (!again) as u64;
        }
    }
    let feedback: Vec<&Feedback> = convs.iter().flat_map(|c| c.feedback.iter().map(|f| &f.1)).collect();
    let scores: Vec<f64> = feedback.iter().filter_map(|f| f.csat.map(f64::from)).collect();
    let csat = Csat {
        count: scores.len() as u64,
        mean: (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64),
        satisfied_share: (!scores.is_empty()).then(|| scores.iter().filter(|s| **s >= 4.0).count() as f64 / scores.len() as f64),
    };
    let ttft: Vec<f64> = msgs.iter().map(|x| x.ttft_ms).collect();
    let total: Vec<f64> = msgs.iter().map(|x| x.total_ms).collect();
    let tokens_in: u64 = msgs.iter().map(|x| x.tokens_in).sum();
    let tokens_out: u64 = msgs.iter().map(|x| x.tokens_out).sum();
    let tools: Vec<&ToolAction> = convs.iter().flat_map(|c| c.tools.iter()).chain(loose_tools.iter()).collect();
    let tool_errors = tools.iter().filter(|t| t.failed()).count() as u64;
    let busy: f64 = total.iter().sum();
    let local = cost.local(busy);
    let per = |x: f64, d: u64| if d == 0 { 0.0 } else { x / d as f64 };
    let per_resolved = |x: f64| (resolved > 0).then(|| x / resolved as f64);
    let cloud = cost
        .cloud
        .iter()
        .map(|p| {
            let t = CostTable::cloud(p, tokens_in, tokens_out);
            CloudCost { name: p.name.clone(), currency: p.currency.clone(), total: t, per_conversation: per(t, n), per_resolved: per_resolved(t) }
        })
        .collect();
    let aht = if n == 0 { 0.0 } else { convs.iter().map(|c| c.end_ms() - c.start_ms()).sum::<f64>() / n as f64 };
    Kpis {
        conversations: n,
        messages: m,
        resolved,
        escalated,
        abandoned,
        containment_rate: rate(n - escalated, n),
        deflection_rate: rate(resolved, n),
        fcr_rate: rate(fcr, n),
        escalation_rate: rate(escalated, n),
        abandonment_rate: rate(abandoned, n),
        refusal_rate: rate(count(&|x| x.refused), m),
        grounded_rate: rate(count(&|x| x.grounded), m),
        extractive_rate: rate(count(&|x| x.extractive), m),
        aht_ms: aht,
        csat,
        thumbs_up: feedback.iter().filter(|f| f.thumbs == Some(1)).count() as u64,
        thumbs_down: feedback.iter().filter(|f| f.thumbs == Some(-1)).count() as u64,
        cache_hit_rate: rate(count(&|x| x.cache_hit), m),
        ttft_ms: percentiles(&ttft),
        total_ms: percentiles(&total),
        tokens: TokenKpis { tokens_in, tokens_out, per_conversation: per((tokens_in + tokens_out) as f64, n), per_message: per((tokens_in + tokens_out) as f64, m) },
        tool_actions: tools.len() as u64,
        tool_errors,
        tool_error_rate: rate(tool_errors, tools.len() as u64),
        cost: CostKpis { currency: cost.currency.clone(), energy_kwh: cost.energy_kwh(busy), total: local, per_conversation: per(local, n), per_resolved: per_resolved(local), cloud },
        cost_per_conversation: per(local, n),
        cost_per_resolved: per_resolved(local),
        retrieval: None,
    }
}

/// `--by`: how conversations are grouped (by their first message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Week,
    Kb,
    Model,
    Variant,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "day" => GroupBy::Day,
            "week" => GroupBy::Week,
            "kb" => GroupBy::Kb,
            "model" => GroupBy::Model,
            "variant" => GroupBy::Variant,
            _ => return Err(format!("--by must be day, week, kb, model or variant, not `{s}`")),
        })
    }
}

impl GroupBy {
    pub fn key(self, c: &Conversation) -> String {
        let t = &c.messages[0];
        let m = &t.message;
        match self {
            GroupBy::Day => crate::time::day(t.ts_ms),
            GroupBy::Week => crate::time::week(t.ts_ms),
            GroupBy::Kb => t.kb.clone().unwrap_or_else(|| "(none)".into()),
            GroupBy::Model => m.model.clone(),
            GroupBy::Variant => m.variant.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub key: String,
    #[serde(flatten)]
    pub kpis: Kpis,
}

/// The KPIs per group, groups in key order (tool actions outside a conversation count in no group).
pub fn compute_by(events: &[StoredEvent], by: GroupBy, cost: &CostTable) -> Vec<Group> {
    let (convs, _) = conversations(events);
    let mut groups: BTreeMap<String, Vec<&Conversation>> = BTreeMap::new();
    for c in &convs {
        groups.entry(by.key(c)).or_default().push(c);
    }
    groups.into_iter().map(|(key, cs)| Group { key, kpis: kpis_of(&cs, &[], cost) }).collect()
}

/// A cluster of questions the documents did not answer well.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Gap {
    pub topic_id: String,
    /// Messages refused or rated negatively in this topic.
    pub count: u64,
    pub refused: u64,
    pub low_rated: u64,
    /// Distinct questions (ids) among them.
    pub questions: u64,
    /// Up to three PII-masked phrasings (only where question text was opted in).
    pub examples: Vec<String>,
    pub kbs: Vec<String>,
}

/// Content gaps: messages refused, or whose answer (or conversation, for feedback on it as a whole) got negative
/// feedback, clustered by topic; most frequent first.
pub fn gaps(events: &[StoredEvent], limit: usize) -> Vec<Gap> {
    let (convs, _) = conversations(events);
    let mut by_topic: BTreeMap<String, (Gap, HashSet<String>)> = BTreeMap::new();
    for c in &convs {
        for (i, t) in c.messages.iter().enumerate() {
            let (m, mid) = (&t.message, t.message_id);
            let last = i + 1 == c.messages.len();
            let low = c.feedback.iter().any(|(fm, f)| f.negative() && (*fm == mid && mid.is_some() || fm.is_none() && last));
            if !m.refused && !low {
                continue;
            }
            let (g, qs) = by_topic.entry(m.topic_id.clone()).or_insert_with(|| {
                (Gap { topic_id: m.topic_id.clone(), count: 0, refused: 0, low_rated: 0, questions: 0, examples: Vec::new(), kbs: Vec::new() }, HashSet::new())
            });
            g.count += 1;
            g.refused += m.refused as u64;
            g.low_rated += low as u64;
            qs.insert(m.question_id.clone());
            if let Some(t) = &m.question_text {
                if g.examples.len() < 3 && !g.examples.contains(t) {
                    g.examples.push(t.clone());
                }
            }
            let kb = t.kb.clone().unwrap_or_else(|| "(none)".into());
            if !g.kbs.contains(&kb) {
                g.kbs.push(kb);
            }
        }
    }
    let mut out: Vec<Gap> = by_topic.into_values().map(|(mut g, qs)| {
        g.questions = qs.len() as u64;
        g
    }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.topic_id.cmp(&b.topic_id)));
    out.truncate(limit);
    out
}

/// What `tresor kpi --json` and `GET /api/kpi` answer: the KPIs of the window at the top level, the groups
/// of `--by` and the top content gaps.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// The window, Unix ms (null: open).
    pub since: Option<i64>,
    pub until: Option<i64>,
    #[serde(flatten)]
    pub kpis: Kpis,
    /// `day`, `week`, `kb`, `model` or `variant` when grouped.
    pub by: Option<String>,
    pub groups: Vec<Group>,
    pub gaps: Vec<Gap>,
}

/// The report over `events` (already read for `window`).
pub fn report(events: &[StoredEvent], window: &crate::store::Window, by: Option<GroupBy>, cost: &CostTable) -> Report {
    Report {
        schema_version: crate::event::SCHEMA_VERSION,
        since: window.since,
        until: window.until,
        kpis: compute(events, cost),
        by: by.map(|b| format!("{b:?}").to_lowercase()),
        groups: by.map(|b| compute_by(events, b, cost)).unwrap_or_default(),
        gaps: gaps(events, 10),
    }
}

#[cfg(test)]
mod tests;
