//! The evals a regression suite ([`crate::eval_suite`]) runs, each on
//! scratch data with the catalogue's installed models: retrieval
//! ([`crate::retrieval_eval`]), answers ([`crate::answer_eval`]), PII
//! ([`crate::pii_eval`]), injection detection (the shipped detector, as
//! `tresor eval injection --no-attack` scores it) and tool calls
//! ([`crate::tools_eval`]). Each returns its report as JSON, which the suite
//! flattens into metric names.
//!
//! Owns: setting up each run (scratch knowledge base or data dir, the
//! models). Never: writes outside its scratch folders, or judges a score.
//! A `redteam` eval runs [`crate::redteam`] (its `cases` a suite file, else
//! the built-in full suite) with the firewall on, on a scratch engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tresor_assistant::{Assistant, EnginePaths};
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::chunk::ChunkConfig;
use tresor_kb::retrieve::Fusion;
use tresor_kb::{ingest, IngestOptions, Kb, NoProgress, SearchOptions, TextReranker};

use crate::eval_suite::{EvalSpec, Kind, LoadedConfig, SuiteError};

/// Where the runs find their models and run them.
pub struct RunEnv {
    pub models_dir: PathBuf,
    pub device: tresor_llm::Device,
}

fn fail(spec: &EvalSpec, reason: impl std::fmt::Display) -> SuiteError {
    SuiteError::Eval { name: spec.name(), reason: reason.to_string() }
}

/// A configured path, resolved against the config's folder; it must exist.
fn path(spec: &EvalSpec, cfg: &LoadedConfig, field: &str, p: &Option<PathBuf>) -> Result<PathBuf, SuiteError> {
    let p = p.as_ref().ok_or_else(|| fail(spec, format!("needs `{field}`")))?;
    let full = cfg.resolve(p);
    if !full.exists() {
        return Err(fail(spec, format!("{field} {} does not exist", full.display())));
    }
    Ok(full)
}

/// Runs one eval and returns its report.
pub fn run(spec: &EvalSpec, cfg: &LoadedConfig, env: &RunEnv) -> Result<Value, SuiteError> {
    match spec.kind {
        Kind::Retrieval => retrieval(spec, cfg, env),
        Kind::Answers => answers(spec, cfg, env),
        Kind::Pii => pii(spec, cfg),
        Kind::Injection => injection(spec, cfg, env),
        Kind::Tools => tools(spec, cfg, env),
        Kind::Redteam => redteam(spec, cfg, env),
    }
}

fn retrieval(spec: &EvalSpec, cfg: &LoadedConfig, env: &RunEnv) -> Result<Value, SuiteError> {
    let goldset = path(spec, cfg, "goldset", &spec.goldset)?;
    let docs = path(spec, cfg, "docs", &spec.docs)?;
    let gold = crate::retrieval_eval::load_goldset(&goldset).map_err(|e| fail(spec, e))?;
    let embedder = tresor_assistant::open::load_embedder(&env.models_dir, None, &env.device).map_err(|e| fail(spec, e))?;
    let reranker = tresor_assistant::open::load_reranker(&env.models_dir, None, &env.device).map_err(|e| fail(spec, e))?;
    let (_tmp, dir) = crate::retrieval_eval::temp_kb_dir().map_err(|e| fail(spec, e))?;
    let mut kb = Kb::open(&dir, &WorkspaceKey::ephemeral()).map_err(|e| fail(spec, e))?;
    let d = ChunkConfig::default();
    let iopts = IngestOptions {
        chunk: ChunkConfig {
            target_tokens: spec.chunk_tokens.unwrap_or(d.target_tokens).max(16),
            overlap_tokens: spec.overlap_tokens.unwrap_or(d.overlap_tokens),
        },
        ..IngestOptions::default()
    };
    ingest(&mut kb, &embedder, std::slice::from_ref(&docs), &iopts, &NoProgress).map_err(|e| fail(spec, e))?;
    let s = SearchOptions::default();
    let base = SearchOptions {
        fusion: match spec.fusion.as_deref() {
            Some("rrf") => Fusion::Rrf,
            Some(_) => Fusion::Convex,
            None => s.fusion,
        },
        w_bm25: spec.w_bm25.unwrap_or(s.w_bm25),
        w_vector: spec.w_vector.unwrap_or(s.w_vector),
        mmr_lambda: spec.mmr_lambda.unwrap_or(s.mmr_lambda),
        ..s
    };
    let rep = crate::retrieval_eval::evaluate(
        &mut kb,
        &gold,
        &goldset,
        &docs,
        &embedder,
        reranker.as_ref().map(|r| r as &dyn TextReranker),
        &base,
    )
    .map_err(|e| fail(spec, e))?;
    serde_json::to_value(&rep).map_err(|e| fail(spec, e))
}

fn redteam(spec: &EvalSpec, cfg: &LoadedConfig, env: &RunEnv) -> Result<Value, SuiteError> {
    let suite = match &spec.cases {
        Some(_) => Some(path(spec, cfg, "cases", &spec.cases)?.to_string_lossy().to_string()),
        None => None,
    };
    let suite = crate::redteam::Suite::load(suite.as_deref()).map_err(|e| fail(spec, e))?;
    let (_tmp, data) = tresor_assistant::scratch::scratch_dir().map_err(|e| fail(spec, e))?;
    let key = WorkspaceKey::ephemeral();
    let mut a = open_assistant(spec, &data, &key, env)?;
    let r = crate::redteam::run(&mut a, &data, &suite, true, &mut |_| {}).map_err(|e| fail(spec, e))?;
    serde_json::to_value(&r).map_err(|e| fail(spec, e))
}

fn open_assistant(spec: &EvalSpec, dir: &Path, key: &WorkspaceKey, env: &RunEnv) -> Result<Assistant, SuiteError> {
    let paths = EnginePaths::new(dir, &env.models_dir, "default");
    Assistant::open(&paths, key, env.device.clone()).map_err(|e| fail(spec, format!("opening the engine: {e}")))
}

fn answers(spec: &EvalSpec, cfg: &LoadedConfig, env: &RunEnv) -> Result<Value, SuiteError> {
    let goldset = path(spec, cfg, "goldset", &spec.goldset)?;
    let docs = path(spec, cfg, "docs", &spec.docs)?;
    let unrelated = match &spec.unrelated_docs {
        Some(_) => Some(path(spec, cfg, "unrelated_docs", &spec.unrelated_docs)?),
        None => None,
    };
    let mut gold = crate::retrieval_eval::load_goldset(&goldset).map_err(|e| fail(spec, e))?;
    if let Some(n) = spec.limit {
        gold.truncate(n);
    }
    let (_tmp, dir) = tresor_assistant::scratch::scratch_dir().map_err(|e| fail(spec, e))?;
    let key = WorkspaceKey::ephemeral();
    let mut a = open_assistant(spec, &dir, &key, env)?;
    tresor_assistant::scratch::ingest_dir(&dir, &key, "gold", &docs, a.embedder()).map_err(|e| fail(spec, e))?;
    if let Some(u) = &unrelated {
        tresor_assistant::scratch::ingest_dir(&dir, &key, "unrelated", u, a.embedder()).map_err(|e| fail(spec, e))?;
    }
    let rep = crate::answer_eval::evaluate(&mut a, "gold", &gold, unrelated.as_ref().map(|_| "unrelated"), &mut |_| {}).map_err(|e| fail(spec, e))?;
    serde_json::to_value(&rep).map_err(|e| fail(spec, e))
}

fn pii(spec: &EvalSpec, cfg: &LoadedConfig) -> Result<Value, SuiteError> {
    let cases_path = path(spec, cfg, "cases", &spec.cases)?;
    let raw = std::fs::read_to_string(&cases_path).map_err(|e| fail(spec, format!("{}: {e}", cases_path.display())))?;
    let cases = crate::pii_eval::parse_cases(&raw).map_err(|e| fail(spec, format!("{}: {e}", cases_path.display())))?;
    if cases.is_empty() {
        return Err(fail(spec, format!("{} has no cases", cases_path.display())));
    }
    let preds: Vec<Vec<crate::pii_eval::Pred>> = cases
        .iter()
        .map(|c| tresor_guard::pii::detect(&c.text).into_iter().map(|s| crate::pii_eval::Pred { start: s.start, end: s.end, kind: s.kind }).collect())
        .collect();
    let rep = crate::pii_eval::score(&cases, &preds);
    let mut v = serde_json::to_value(&rep).map_err(|e| fail(spec, e))?;
    v["cases"] = json!(cases.len());
    Ok(v)
}

#[derive(serde::Deserialize)]
struct InjectionCase {
    text: String,
    label: String,
    #[serde(default)]
    subtype: String,
}

fn injection(spec: &EvalSpec, cfg: &LoadedConfig, env: &RunEnv) -> Result<Value, SuiteError> {
    use tresor_guard::injection::{classifier, Detector};
    let cases_path = path(spec, cfg, "cases", &spec.cases)?;
    let raw = std::fs::read_to_string(&cases_path).map_err(|e| fail(spec, format!("{}: {e}", cases_path.display())))?;
    let mut cases = Vec::new();
    for (i, line) in raw.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let c: InjectionCase = serde_json::from_str(line).map_err(|e| fail(spec, format!("{}:{}: {e}", cases_path.display(), i + 1)))?;
        if c.label != "injection" && c.label != "benign" {
            return Err(fail(spec, format!("{}:{}: label {:?} is neither injection nor benign", cases_path.display(), i + 1, c.label)));
        }
        cases.push(c);
    }
    if cases.is_empty() {
        return Err(fail(spec, format!("{} has no cases", cases_path.display())));
    }
    let det = Detector::shipped().map_err(|e| fail(spec, e))?;
    // the classifier needs its own embedder; a gate never silently falls back to rules only
    let emb = tresor_assistant::open::load_embedder(&env.models_dir, None, &env.device).map_err(|e| fail(spec, e))?;
    if emb.model_id() != det.embed_model() {
        return Err(fail(spec, format!("the installed embedder {} is not the classifier's {}", emb.model_id(), det.embed_model())));
    }
    let mut scores = Vec::with_capacity(cases.len());
    for c in &cases {
        let wins = det.windows(&c.text);
        let refs: Vec<&str> = wins.iter().map(String::as_str).collect();
        let mut vecs = Vec::with_capacity(refs.len());
        for batch in refs.chunks(16) {
            vecs.extend(emb.embed(batch).map_err(|e| fail(spec, e))?);
        }
        scores.push(det.raw_score(&c.text, &vecs).map_err(|e| fail(spec, e))?);
    }
    let y: Vec<bool> = cases.iter().map(|c| c.label == "injection").collect();
    let t = det.threshold();
    let (tpr, fpr) = classifier::rates(&scores, &y, t);
    let mut groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (c, s) in cases.iter().zip(&scores) {
        let g = if c.subtype.is_empty() { c.label.clone() } else { c.subtype.clone() };
        let e = groups.entry(g).or_default();
        e.0 += 1;
        e.1 += (*s >= t) as usize;
    }
    let per_subtype: serde_json::Map<String, Value> =
        groups.into_iter().map(|(g, (n, f))| (g, json!({"n": n, "flagged": f, "rate": f as f64 / n.max(1) as f64}))).collect();
    Ok(json!({
        "cases": cases.len(),
        "positives": y.iter().filter(|b| **b).count(),
        "negatives": y.iter().filter(|b| !**b).count(),
        "threshold": t,
        "tpr": tpr,
        "fpr": fpr,
        "per_subtype": per_subtype,
    }))
}

fn tools(spec: &EvalSpec, cfg: &LoadedConfig, env: &RunEnv) -> Result<Value, SuiteError> {
    let cases_path = path(spec, cfg, "cases", &spec.cases)?;
    let data = match &spec.data {
        Some(_) => path(spec, cfg, "data", &spec.data)?,
        None => cases_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
    };
    let mut cases = crate::tools_eval::load_cases(&cases_path).map_err(|e| fail(spec, e))?;
    if let Some(n) = spec.limit {
        cases.truncate(n);
    }
    let (_tmp, dir) = tresor_assistant::scratch::scratch_dir().map_err(|e| fail(spec, e))?;
    let key = WorkspaceKey::ephemeral();
    let mut a = open_assistant(spec, &dir, &key, env)?;
    let imported = tresor_assistant::tools_data::import_folder(&dir, &key, &data).map_err(|e| fail(spec, format!("importing {}: {e}", data.display())))?;
    if imported == 0 {
        return Err(fail(spec, format!("{}: no prices.csv, orders.csv or calendar.ics to import", data.display())));
    }
    let docs = data.join("docs");
    let kb = if docs.is_dir() {
        tresor_assistant::scratch::ingest_dir(&dir, &key, "default", &docs, a.embedder()).map_err(|e| fail(spec, e))?;
        Some("default")
    } else {
        None
    };
    let items = crate::tools_eval::evaluate(&mut a, &cases, kb, &mut |_| {}).map_err(|e| fail(spec, e))?;
    let mode = a.config_mut().tools.model_arguments;
    let rep = crate::tools_eval::summarise(&format!("{mode:?}").to_lowercase(), items);
    serde_json::to_value(&rep).map_err(|e| fail(spec, e))
}
