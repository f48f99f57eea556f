//! `tresor guard pii` and `tresor eval pii`: front door to tresor-guard's PII
//! detector. No detection logic here; the Presidio peer is
//! `scripts/peer/presidio_eval.py` (compiled in) run by the venv that
//! `scripts/peer/setup-presidio.sh` creates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use tresor_bench::pii_eval::{self as eval, Case, Pred, Report};
use tresor_guard::pii::{self, PiiType};
use tresor_guard::redact::{self, Mode};

use crate::ctx::Ctx;
use crate::text_input::TextInput;

const PRESIDIO_SCRIPT: &str = include_str!("../../../scripts/peer/presidio_eval.py");
/// The matching rule the headline numbers (and the CI quality gate) use.
const HEADLINE: &str = "overlap";

#[derive(Args)]
pub struct PiiArgs {
    #[command(flatten)]
    pub input: TextInput,
    /// Print an array of spans {start, end, type, score} (Unicode character offsets, end exclusive).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalPiiArgs {
    /// JSONL cases: {id, lang, text, spans:[{start,end,type}]}.
    #[arg(long)]
    pub cases: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Gate: fail (exit 2) when Tresor's overlap recall of TYPE is below X, overall and in
    /// every language of the set (`ADDRESS=0.9`; repeatable).
    #[arg(long = "min-recall", value_name = "TYPE=X")]
    pub min_recall: Vec<String>,
    /// Gate: fail (exit 2) when Tresor's micro overlap precision is below X.
    #[arg(long = "min-precision", value_name = "X")]
    pub min_precision: Option<f64>,
}

/// What the figures on a set mean: the dev set is what the rules were tuned on.
fn provenance(path: &std::path::Path) -> &'static str {
    let p = path.to_string_lossy();
    if p.contains("pii_dev") {
        "dev set: the rules were tuned on these cases (in-sample)"
    } else if p.contains("pii-heldout") {
        "held-out set: generated independently of the rules, never tuned on (eval/pii-heldout.md)"
    } else {
        "your cases"
    }
}

/// Checks the gate thresholds; one line per failure.
fn gate_failures(r: &Report, min_recall: &[(String, f64)], min_precision: Option<f64>) -> Vec<String> {
    let mut fails = Vec::new();
    for (t, min) in min_recall {
        let mut scopes: Vec<(String, &eval::Scores)> = vec![("all".to_string(), &r.overlap)];
        scopes.extend(r.per_lang.iter().map(|(l, lr)| (format!("lang {l}"), &lr.overlap)));
        for (scope, sc) in scopes {
            match sc.per_type.get(t) {
                Some(c) if c.recall + 1e-9 < *min => fails.push(format!("{t} overlap recall {:.3} < {min} ({scope})", c.recall)),
                None if scope == "all" => fails.push(format!("{t}: no such gold spans in the set")),
                _ => {}
            }
        }
    }
    if let Some(min) = min_precision {
        if r.overlap.micro.precision + 1e-9 < min {
            fails.push(format!("micro overlap precision {:.3} < {min}", r.overlap.micro.precision));
        }
    }
    fails
}

fn parse_min_recall(v: &[String]) -> Result<Vec<(String, f64)>> {
    v.iter()
        .map(|s| {
            let (t, x) = s.split_once('=').with_context(|| format!("--min-recall {s:?}: expected TYPE=X"))?;
            let kind = PiiType::from_name(t).with_context(|| format!("--min-recall {s:?}: unknown PII type {t:?}"))?;
            let x: f64 = x.trim().parse().with_context(|| format!("--min-recall {s:?}: {x:?} is not a number"))?;
            Ok((kind.as_str().to_string(), x))
        })
        .collect()
}

pub fn run_pii(args: PiiArgs, _ctx: &Ctx) -> Result<()> {
    let text = args.input.read()?;
    let spans = pii::detect(&text);
    if args.json {
        println!("{}", serde_json::to_string(&spans)?);
        return Ok(());
    }
    if spans.is_empty() {
        println!("no PII found");
    }
    for s in &spans {
        let value: String = text.chars().skip(s.start).take(s.end - s.start).collect();
        println!("{:>6}..{:<6} {:<14} {:.2}  {}", s.start, s.end, s.kind.as_str(), s.score, value.replace('\n', "\\n"));
    }
    println!("\n{}", redact::redact(&text, &spans, Mode::Mask));
    Ok(())
}

pub fn run_eval_pii(args: EvalPiiArgs, _ctx: &Ctx) -> Result<()> {
    let min_recall = parse_min_recall(&args.min_recall)?;
    let raw = std::fs::read_to_string(&args.cases).with_context(|| format!("reading {}", args.cases.display()))?;
    let cases = eval::parse_cases(&raw).map_err(anyhow::Error::msg).with_context(|| format!("parsing {}", args.cases.display()))?;
    if cases.is_empty() {
        bail!("{} has no cases", args.cases.display());
    }
    let t0 = Instant::now();
    let preds: Vec<Vec<Pred>> = cases
        .iter()
        .map(|c| pii::detect(&c.text).into_iter().map(|s| Pred { start: s.start, end: s.end, kind: s.kind }).collect())
        .collect();
    let tresor_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let tresor = eval::score(&cases, &preds);

    let (presidio, presidio_note, presidio_ms) = match presidio_python() {
        None => (None, Some(format!("Presidio not set up: run scripts/peer/setup-presidio.sh (creates {})", venv_dir().display())), None),
        Some(py) => match run_presidio(&py, &args.cases, &cases) {
            Ok((p, ms)) => (Some(eval::score(&cases, &p)), None, Some(ms)),
            Err(e) => (None, Some(format!("Presidio run failed: {e:#}")), None),
        },
    };

    let fails = gate_failures(&tresor, &min_recall, args.min_precision);
    let gated = !min_recall.is_empty() || args.min_precision.is_some();
    if args.json {
        let out = json!({
            "cases": cases.len(),
            "provenance": provenance(&args.cases),
            "gate": if gated { json!({"passed": fails.is_empty(), "failures": fails}) } else { json!(null) },
            "headline": HEADLINE,
            "tresor": tresor,
            "tresor_ms": (tresor_ms * 10.0).round() / 10.0,
            "presidio": presidio,
            "presidio_ms": presidio_ms,
            "presidio_note": presidio_note,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return gate_exit(&fails);
    }
    println!("{} cases from {} — {}", cases.len(), args.cases.display(), provenance(&args.cases));
    println!("headline = {HEADLINE} match (same type, any overlap), exact = same type and offsets");
    print_table("Tresor", &tresor, presidio.as_ref());
    for (lang, lr) in &tresor.per_lang {
        let sub = Report { exact: lr.exact.clone(), overlap: lr.overlap.clone(), per_lang: Default::default() };
        let peer = presidio.as_ref().and_then(|p| p.per_lang.get(lang)).map(|p| Report {
            exact: p.exact.clone(),
            overlap: p.overlap.clone(),
            per_lang: Default::default(),
        });
        print_table(&format!("Tresor, lang {} ({} cases)", if lang.is_empty() { "unset" } else { lang }, lr.cases), &sub, peer.as_ref());
    }
    match (&presidio, &presidio_note) {
        (Some(p), _) => print_table("Presidio (presidio-analyzer + en_core_web_sm, language en)", p, None),
        (None, Some(note)) => println!("\n{note}"),
        _ => {}
    }
    println!("\ntime: Tresor {tresor_ms:.0} ms{}", presidio_ms.map(|m| format!(", Presidio {m:.0} ms (analyze only, after model load)")).unwrap_or_default());
    if gated {
        if fails.is_empty() {
            println!("gate passed");
        }
        for f in &fails {
            println!("gate failed: {f}");
        }
    }
    gate_exit(&fails)
}

/// Exit 2 when a gate threshold failed (as `tresor eval suite` does on a regression).
fn gate_exit(fails: &[String]) -> Result<()> {
    if !fails.is_empty() {
        eprintln!("PII gate failed: {}", fails.join("; "));
        std::process::exit(2);
    }
    Ok(())
}

fn print_table(name: &str, r: &Report, peer: Option<&Report>) {
    println!("\n{name}");
    println!("{:<14} {:>7} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}{}", "type", "support", "P", "R", "F1", "P_ex", "R_ex", "F1_ex", if peer.is_some() { " | peer R" } else { "" });
    for (t, o) in &r.overlap.per_type {
        let e = &r.exact.per_type[t];
        let peer_r = peer.and_then(|p| p.overlap.per_type.get(t)).map(|c| format!(" | {:>6.3}", c.recall)).unwrap_or_default();
        println!("{:<14} {:>7} | {:>6.3} {:>6.3} {:>6.3} | {:>6.3} {:>6.3} {:>6.3}{peer_r}", t, o.support, o.precision, o.recall, o.f1, e.precision, e.recall, e.f1);
    }
    let (o, e) = (&r.overlap.micro, &r.exact.micro);
    println!("{:<14} {:>7} | {:>6.3} {:>6.3} {:>6.3} | {:>6.3} {:>6.3} {:>6.3}", "micro", o.support, o.precision, o.recall, o.f1, e.precision, e.recall, e.f1);
}

fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("TRESOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/tresor"));
    cache.join("venv-presidio")
}

fn presidio_python() -> Option<PathBuf> {
    let py = venv_dir().join("bin/python");
    py.is_file().then_some(py)
}

/// Runs the compiled-in peer script on the cases file; maps Presidio's
/// entity types to Tresor's (types without a counterpart are dropped).
fn run_presidio(py: &PathBuf, cases_path: &PathBuf, cases: &[Case]) -> Result<(Vec<Vec<Pred>>, f64)> {
    let out = Command::new(py)
        .arg("-c")
        .arg(PRESIDIO_SCRIPT)
        .arg(cases_path)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .with_context(|| format!("starting {}", py.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("exit {}: {}", out.status, err.lines().last().unwrap_or(""));
    }
    let mut by_id: HashMap<String, Vec<Pred>> = HashMap::new();
    let mut analyze_ms = 0.0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("bad line from the Presidio script: {line}"))?;
        if let Some(s) = v.get("analyze_s").and_then(|s| s.as_f64()) {
            analyze_ms = s * 1000.0;
            continue;
        }
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let preds = v["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let kind = PiiType::from_name(s["type"].as_str()?)?;
                Some(Pred { start: s["start"].as_u64()? as usize, end: s["end"].as_u64()? as usize, kind })
            })
            .collect();
        by_id.insert(id, preds);
    }
    if by_id.len() != cases.len() {
        bail!("Presidio answered {} of {} cases", by_id.len(), cases.len());
    }
    Ok((cases.iter().map(|c| by_id.remove(&c.id).unwrap_or_default()).collect(), analyze_ms))
}
