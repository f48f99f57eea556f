//! `tresor bench ab`: a simulated experiment on scripted traffic with known
//! answers, through the real release store, assignment, events table,
//! comparison and canary code (the chat model is not in the loop: each
//! conversation's outcome is drawn from its arm's scripted rates, so the
//! truth is known). Three runs, each in its own scratch workspace:
//! an A/B test where the candidate is better (the test must find it), an
//! A/A test (same rates: it must not), and a canary of a worse release that
//! must roll back automatically with its reason recorded.
//!
//! Owns: the scripted rates and the traffic generator. Never: a statistic or a
//! guard rule (tresor-assistant's `release`), a user's workspace.

use std::path::Path;

use serde::Serialize;
use tresor_assistant::release::{canary_step, compare, conversation_key, pick, Actor, CanaryConfig, Comparison, ReleaseFiles, Releases, StepOutcome};
use tresor_assistant::tresor_telemetry::{Event, EventKind, EventStore, Feedback, Message, Window};
use tresor_assistant::{AskRequest, Result};
use tresor_guard::crypto::WorkspaceKey;

/// An arm's true rates.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ArmSpec {
    /// Answers refused.
    pub refusal: f64,
    /// Conversations handed to a human.
    pub escalation: f64,
    /// Answers grounded.
    pub grounded: f64,
    /// Conversations rated (CSAT), and the share of ratings that are 4-5.
    pub rated: f64,
    pub satisfied: f64,
    /// Median total latency, ms (uniform ±40 %).
    pub latency_ms: f64,
}

pub const CONTROL: ArmSpec = ArmSpec { refusal: 0.18, escalation: 0.22, grounded: 0.76, rated: 0.3, satisfied: 0.70, latency_ms: 900.0 };
pub const BETTER: ArmSpec = ArmSpec { refusal: 0.12, escalation: 0.15, grounded: 0.82, rated: 0.3, satisfied: 0.80, latency_ms: 900.0 };
pub const WORSE: ArmSpec = ArmSpec { refusal: 0.32, escalation: 0.25, grounded: 0.70, rated: 0.3, satisfied: 0.60, latency_ms: 950.0 };

/// SplitMix64: a seeded, dependency-free stream of uniforms (the runs are reproducible).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn hit(&mut self, p: f64) -> bool {
        self.next() < p
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AbRun {
    pub conversations: u64,
    pub share: f64,
    pub control_spec: ArmSpec,
    pub candidate_spec: ArmSpec,
    pub comparison: Comparison,
    /// The containment test is significant.
    pub found: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CanaryRun {
    pub control_spec: ArmSpec,
    pub candidate_spec: ArmSpec,
    pub config: CanaryConfig,
    /// (conversations so far, outcome) per `canary-step`.
    pub steps: Vec<(u64, StepOutcome)>,
    pub rolled_back: bool,
    /// The reason `release list` shows.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AbReport {
    pub seed: u64,
    pub ab: AbRun,
    pub aa: AbRun,
    pub canary: CanaryRun,
}

fn who() -> Actor {
    Actor { actor: "bench:ab".into(), workspace: "scratch".into() }
}

/// One scripted conversation of `variant`: a message, maybe a handoff, maybe a rating.
fn conversation(ev: &EventStore, rng: &mut Rng, id: i64, variant: &str, s: &ArmSpec) -> Result<()> {
    let refused = rng.hit(s.refusal);
    let grounded = !refused && rng.hit(s.grounded / (1.0 - s.refusal).max(1e-9));
    let ms = s.latency_ms * (0.6 + 0.8 * rng.next());
    let m = Message { variant: variant.into(), route: "kb_question".into(), model: "scripted".into(), refused, grounded, total_ms: ms, ttft_ms: ms * 0.4, ..Default::default() };
    ev.record(&Event::now(Some(id), Some(id), Some("kb".into()), EventKind::Message(m)))?;
    if rng.hit(s.escalation) {
        ev.record(&Event::now(Some(id), None, None, EventKind::Handoff { reason: None }))?;
    }
    if rng.hit(s.rated) {
        let csat = if rng.hit(s.satisfied) { 4 + rng.hit(0.5) as u8 } else { 1 + (rng.next() * 3.0) as u8 };
        ev.record(&Event::now(Some(id), Some(id), None, EventKind::Feedback(Feedback { csat: Some(csat), ..Default::default() })))?;
    }
    Ok(())
}

/// Traffic for conversations `ids`: each goes to the release the store assigns it.
fn traffic(ev: &EventStore, rel: &Releases, rng: &mut Rng, ids: std::ops::Range<i64>, specs: &[(&str, ArmSpec)]) -> Result<()> {
    for id in ids {
        let key = conversation_key(&AskRequest { thread: Some(id), ..Default::default() });
        let name = pick(&rel.set, &key).map(|r| r.name.clone()).unwrap_or_default();
        let spec = specs.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).unwrap_or(specs[0].1);
        conversation(ev, rng, id, &name, &spec)?;
    }
    Ok(())
}

fn scratch(dir: &Path, key: &WorkspaceKey, name: &str) -> Result<(EventStore, Releases)> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).map_err(|source| tresor_assistant::AssistantError::Io { path: d.clone(), source })?;
    Ok((EventStore::open(&d, key)?, Releases::open(&d, key)?))
}

/// An A/B (or A/A) run: `control` active, the candidate a canary at `share`, `n` conversations.
fn ab(dir: &Path, key: &WorkspaceKey, name: &str, seed: u64, n: i64, share: f64, control: ArmSpec, candidate: ArmSpec) -> Result<AbRun> {
    let (ev, mut rel) = scratch(dir, key, name)?;
    rel.create("v1", &ReleaseFiles::default(), None, &who())?;
    rel.create("v2", &ReleaseFiles::default(), None, &who())?;
    rel.promote("v1", None, false, &who())?;
    rel.canary("v2", share, None, false, &who())?;
    let mut rng = Rng(seed);
    traffic(&ev, &rel, &mut rng, 1..n + 1, &[("v1", control), ("v2", candidate)])?;
    let comparison = compare(&ev.events(&Window::default())?, "v1", "v2");
    let found = comparison.tests.iter().any(|t| t.metric == "containment" && t.significant);
    Ok(AbRun { conversations: n as u64, share, control_spec: control, candidate_spec: candidate, comparison, found })
}

/// The canary of a worse release: batches of traffic, `canary-step` after each, until it rolls back
/// (or is promoted, which would be the failure this run exists to show does not happen).
fn canary(dir: &Path, key: &WorkspaceKey, seed: u64, batch: i64) -> Result<CanaryRun> {
    let (ev, mut rel) = scratch(dir, key, "canary")?;
    rel.create("v2", &ReleaseFiles::default(), None, &who())?;
    rel.create("v3", &ReleaseFiles::default(), None, &who())?;
    rel.promote("v2", None, false, &who())?;
    let config = CanaryConfig::default();
    rel.set_canary_config(config.clone(), &who())?;
    rel.canary("v3", config.steps[0], None, false, &who())?;
    let mut rng = Rng(seed);
    let mut steps = Vec::new();
    let mut next = 1;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        traffic(&ev, &rel, &mut rng, next..next + batch, &[("v2", BETTER), ("v3", WORSE)])?;
        next += batch;
        let out = canary_step(&mut rel, &ev.events(&Window::default())?, "default", &who())?;
        let done = matches!(out, StepOutcome::RolledBack { .. } | StepOutcome::Promoted { .. });
        steps.push(((next - 1) as u64, out));
        if done {
            break;
        }
    }
    let v3 = rel.set.get("v3").expect("created above");
    Ok(CanaryRun {
        control_spec: BETTER,
        candidate_spec: WORSE,
        config,
        steps,
        rolled_back: v3.status == tresor_assistant::release::Status::RolledBack,
        reason: v3.reason.clone(),
    })
}

/// The three runs in `dir` (a scratch folder the caller owns).
pub fn run(dir: &Path, seed: u64) -> Result<AbReport> {
    let key = WorkspaceKey::ephemeral();
    Ok(AbReport {
        seed,
        ab: ab(dir, &key, "ab", seed, 2000, 0.5, CONTROL, BETTER)?,
        aa: ab(dir, &key, "aa", seed ^ 0xA5A5, 2000, 0.5, CONTROL, CONTROL)?,
        canary: canary(dir, &key, seed ^ 0x5A5A, 400)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_better_variant_is_found_the_same_one_is_not_and_the_worse_canary_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let r = run(d.path(), 7).unwrap();
        // the candidate got about half the conversations (deterministic assignment)
        let share = r.ab.comparison.candidate.conversations as f64 / 2000.0;
        assert!((share - 0.5).abs() < 0.04, "{share}");
        assert!(r.ab.found, "{:#?}", r.ab.comparison.tests);
        let refusal = r.ab.comparison.tests.iter().find(|t| t.metric == "refusal").unwrap();
        assert!(refusal.diff < 0.0 && refusal.significant, "{refusal:?}");
        assert!(!r.aa.comparison.tests.iter().any(|t| t.significant), "A/A: {:#?}", r.aa.comparison.tests);
        assert!(r.canary.rolled_back, "{:#?}", r.canary.steps);
        let reason = r.canary.reason.unwrap();
        assert!(reason.contains("refusal_rate"), "{reason}");
        // it never got past the first steps
        assert!(!r.canary.steps.iter().any(|(_, s)| matches!(s, StepOutcome::Promoted { .. })));
    }
}
