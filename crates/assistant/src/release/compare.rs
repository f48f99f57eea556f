//! Comparing releases on live traffic, from the events table alone: the KPIs
//! per variant (tresor-telemetry's `compute_by(.., Variant)`), a
//! two-proportion z-test per rate with the sample size each arm still needs
//! for the observed difference, and the canary's guard check and step.
//!
//! Owns: which metrics are compared and guarded, the guard rule (candidate
//! worse than control by more than the margin, once the candidate has
//! `min_conversations` in the current step's window), the step rule (the
//! next share of `[canary] steps`, after the last: promote). Never: a KPI
//! formula (docs/kpi.md), a change to the store not made through
//! [`Releases`]' audited transitions.

use serde::Serialize;
use tresor_telemetry::{compute_by, CostTable, GroupBy, Kpis, StoredEvent};

use super::stats::{sample_size, two_proportion};
use super::{Actor, Releases, Status};
use crate::error::{AssistantError, Result};

/// One arm's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ArmMetrics {
    pub variant: String,
    pub conversations: u64,
    pub messages: u64,
    /// Conversations not escalated / conversations.
    pub containment: f64,
    /// Refused answers / messages.
    pub refusal: f64,
    /// Grounded answers (every sentence supported by a cited passage) / messages.
    pub groundedness: f64,
    /// CSAT mean (1–5) and the share of ratings ≥ 4.
    pub csat_mean: Option<f64>,
    pub csat_count: u64,
    pub csat_satisfied: Option<f64>,
    /// Failed tool actions / tool actions.
    pub error_rate: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

impl ArmMetrics {
    fn from_kpis(variant: &str, k: &Kpis) -> ArmMetrics {
        ArmMetrics {
            variant: variant.into(),
            conversations: k.conversations,
            messages: k.messages,
            containment: k.containment_rate,
            refusal: k.refusal_rate,
            groundedness: k.grounded_rate,
            csat_mean: k.csat.mean,
            csat_count: k.csat.count,
            csat_satisfied: k.csat.satisfied_share,
            error_rate: k.tool_error_rate,
            latency_p50_ms: k.total_ms.p50,
            latency_p95_ms: k.total_ms.p95,
        }
    }
    fn empty(variant: &str) -> ArmMetrics {
        ArmMetrics::from_kpis(variant, &tresor_telemetry::kpi::kpis_of(&[], &[], &CostTable::default()))
    }
}

/// One rate compared between the arms.
#[derive(Debug, Clone, Serialize)]
pub struct MetricTest {
    /// containment | refusal | groundedness | csat_satisfied
    pub metric: String,
    pub control: f64,
    pub candidate: f64,
    /// Candidate minus control.
    pub diff: f64,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
    /// 95 % interval of the difference.
    pub ci: Option<[f64; 2]>,
    /// p < 0.05.
    pub significant: bool,
    /// Per arm, to find the observed difference at α = 0.05 with power 0.8 (None: no difference).
    pub needed_per_arm: Option<u64>,
    /// What the smaller arm still lacks of it (0 once reached).
    pub still_needed_per_arm: Option<u64>,
}

/// `tresor release compare --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub control: ArmMetrics,
    pub candidate: ArmMetrics,
    pub tests: Vec<MetricTest>,
    /// Every other variant seen in the window (for the record).
    pub others: Vec<ArmMetrics>,
}

fn count(rate: f64, n: u64) -> u64 {
    (rate * n as f64).round() as u64
}

fn test(metric: &str, c: (f64, u64), k: (f64, u64)) -> MetricTest {
    let t = two_proportion(count(c.0, c.1), c.1, count(k.0, k.1), k.1);
    let needed = sample_size(c.0, k.0);
    MetricTest {
        metric: metric.into(),
        control: c.0,
        candidate: k.0,
        diff: k.0 - c.0,
        z: t.map(|t| t.z),
        p_value: t.map(|t| t.p_value),
        ci: t.map(|t| [t.ci_low, t.ci_high]),
        significant: t.is_some_and(|t| t.p_value < 0.05),
        needed_per_arm: needed,
        still_needed_per_arm: needed.map(|n| n.saturating_sub(c.1.min(k.1))),
    }
}

/// Variant `control` against variant `candidate` over `events`.
pub fn compare(events: &[StoredEvent], control: &str, candidate: &str) -> Comparison {
    let groups = compute_by(events, GroupBy::Variant, &CostTable::default());
    let arm = |v: &str| groups.iter().find(|g| g.key == v).map(|g| ArmMetrics::from_kpis(v, &g.kpis)).unwrap_or_else(|| ArmMetrics::empty(v));
    let (c, k) = (arm(control), arm(candidate));
    let mut tests = vec![
        test("containment", (c.containment, c.conversations), (k.containment, k.conversations)),
        test("refusal", (c.refusal, c.messages), (k.refusal, k.messages)),
        test("groundedness", (c.groundedness, c.messages), (k.groundedness, k.messages)),
    ];
    if let (Some(a), Some(b)) = (c.csat_satisfied, k.csat_satisfied) {
        tests.push(test("csat_satisfied", (a, c.csat_count), (b, k.csat_count)));
    }
    let others = groups.iter().filter(|g| g.key != control && g.key != candidate).map(|g| ArmMetrics::from_kpis(&g.key, &g.kpis)).collect();
    Comparison { control: c, candidate: k, tests, others }
}

/// A guard metric the candidate fell behind on.
#[derive(Debug, Clone, Serialize)]
pub struct GuardBreach {
    pub metric: String,
    pub control: f64,
    pub candidate: f64,
    pub margin: f64,
}

impl GuardBreach {
    pub fn reason(&self) -> String {
        format!("guard {}: candidate {:.3} vs control {:.3} (margin {})", self.metric, self.candidate, self.control, self.margin)
    }
}

/// What `canary-step` did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Too few conversations on the candidate since the current step began.
    Wait { release: String, share: f64, conversations: u64, needed: u64 },
    /// Guards held: the share went up.
    Stepped { release: String, from: f64, to: f64 },
    /// Guards held at the last step: the candidate is active now.
    Promoted { release: String },
    /// A guard broke: rolled back, with the reason recorded (audit log, `list`).
    RolledBack { release: String, reason: String, breaches: Vec<GuardBreach> },
}

fn guards(cfg: &super::CanaryConfig, c: &ArmMetrics, k: &ArmMetrics) -> Vec<GuardBreach> {
    let mut out = Vec::new();
    let mut check = |metric: &str, control: f64, candidate: f64, margin: f64, worse: bool| {
        if worse {
            out.push(GuardBreach { metric: metric.into(), control, candidate, margin });
        }
    };
    check("refusal_rate", c.refusal, k.refusal, cfg.max_refusal_increase, k.refusal - c.refusal > cfg.max_refusal_increase);
    check("groundedness", c.groundedness, k.groundedness, cfg.max_grounded_drop, c.groundedness - k.groundedness > cfg.max_grounded_drop);
    check("error_rate", c.error_rate, k.error_rate, cfg.max_error_increase, k.error_rate - c.error_rate > cfg.max_error_increase);
    check("p95_latency_ms", c.latency_p95_ms, k.latency_p95_ms, cfg.max_p95_ratio, c.latency_p95_ms > 0.0 && k.latency_p95_ms > c.latency_p95_ms * cfg.max_p95_ratio);
    out
}

/// One canary step over `events` (the workspace's events; only those since the current step count):
/// roll back on a broken guard, else move to the next share, else promote. `control_label` is the
/// control's variant when no release is active (the workspace's `[telemetry] variant`).
pub fn canary_step(store: &mut Releases, events: &[StoredEvent], control_label: &str, who: &Actor) -> Result<StepOutcome> {
    let Some(canary) = store.set.canary_release().cloned() else {
        return Err(AssistantError::Invalid("no canary is running (tresor release canary NAME --share S)".into()));
    };
    debug_assert_eq!(canary.status, Status::Canary);
    let control = store.set.active().map(|r| r.name.clone()).unwrap_or_else(|| control_label.to_string());
    let window: Vec<StoredEvent> = events.iter().filter(|e| e.event.ts_ms >= canary.since_ms).cloned().collect();
    let cmp = compare(&window, &control, &canary.name);
    let cfg = store.set.canary.clone();
    if cmp.candidate.conversations < cfg.min_conversations {
        return Ok(StepOutcome::Wait { release: canary.name, share: canary.share, conversations: cmp.candidate.conversations, needed: cfg.min_conversations });
    }
    let breaches = guards(&cfg, &cmp.control, &cmp.candidate);
    if !breaches.is_empty() {
        let reason = format!("automatic rollback at share {}: {}", canary.share, breaches.iter().map(|b| b.reason()).collect::<Vec<_>>().join("; "));
        store.rollback_as(Some(reason.clone()), who, "release.auto_rollback")?;
        return Ok(StepOutcome::RolledBack { release: canary.name, reason, breaches });
    }
    match cfg.steps.iter().copied().find(|s| *s > canary.share + 1e-9) {
        Some(next) => {
            let why = format!("guards held over {} candidate conversations at share {}", cmp.candidate.conversations, canary.share);
            store.step_to(&canary.name, next, &why, who)?;
            Ok(StepOutcome::Stepped { release: canary.name, from: canary.share, to: next })
        }
        None => {
            let why = format!("guards held at the last canary step ({})", canary.share);
            store.promote_as(&canary.name, None, true, who, "canary_promote", Some(why))?;
            Ok(StepOutcome::Promoted { release: canary.name })
        }
    }
}
