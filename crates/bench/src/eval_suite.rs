//! The regression gate (`tresor eval suite`): a TOML config names evals
//! (retrieval, answers, PII, injection, tools, red team), their data and the
//! metrics that must not get worse, each with a direction and a tolerance;
//! the suite runs them ([`crate::suite_runs`]), compares every metric with a
//! baseline file and says which regressed. `--update-baseline` writes the
//! baseline: the metric values, the config's hash, the version that measured
//! them and the date. The format is documented in docs/evals.md.
//!
//! Owns: the config schema and its checks, metric names (a report flattened
//! to dot paths, [`flatten`]), the baseline file, the comparison and its
//! table. Never: decides which models run (the runs resolve the catalogue's
//! defaults through tresor-assistant), touches a user's knowledge bases, or
//! exits the process (the door turns a failed gate into an exit code).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("eval `{name}`: {reason}")]
    Eval { name: String, reason: String },
    #[error("baseline {path}: {reason}")]
    Baseline { path: PathBuf, reason: String },
}

pub type Result<T, E = SuiteError> = std::result::Result<T, E>;

/// The kinds of eval a suite can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Retrieval,
    Answers,
    Pii,
    Injection,
    Tools,
    Redteam,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Retrieval => "retrieval",
            Kind::Answers => "answers",
            Kind::Pii => "pii",
            Kind::Injection => "injection",
            Kind::Tools => "tools",
            Kind::Redteam => "redteam",
        }
    }
}

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Higher,
    Lower,
}

/// How one metric is gated: it regresses when it moves the wrong way by
/// more than `tolerance` (absolute, in the metric's own unit).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricRule {
    #[serde(default)]
    pub direction: Direction,
    /// None: the suite's `[defaults] tolerance`.
    #[serde(default)]
    pub tolerance: Option<f64>,
}

/// One `[[eval]]` table. Paths are relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Unique within the suite; prefixes its metrics (`NAME.metric`). Default: the kind.
    pub name: Option<String>,
    pub kind: Kind,
    /// retrieval, answers: the gold set (JSONL, shared/eval/rag_goldset_dev format).
    pub goldset: Option<PathBuf>,
    /// retrieval, answers: the gold set's documents.
    pub docs: Option<PathBuf>,
    /// pii, injection, tools: the cases file.
    pub cases: Option<PathBuf>,
    /// tools: the folder with prices.csv / orders.csv / calendar.ics (and docs/); default: the cases' folder.
    pub data: Option<PathBuf>,
    /// answers: documents of an unrelated knowledge base (refusal rate when the answer is not there).
    pub unrelated_docs: Option<PathBuf>,
    /// answers, tools: only the first N items.
    pub limit: Option<usize>,
    /// retrieval: chunking and fusion knobs (default: the engine's).
    pub chunk_tokens: Option<usize>,
    pub overlap_tokens: Option<usize>,
    pub fusion: Option<String>,
    pub w_bm25: Option<f32>,
    pub w_vector: Option<f32>,
    pub mmr_lambda: Option<f32>,
    /// The gated metrics: dot paths into the eval's report (see docs/evals.md).
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricRule>,
}

impl EvalSpec {
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.kind.as_str().to_string())
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub tolerance: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    /// Default baseline file (relative to the config) when `--baseline` is not given.
    pub baseline: Option<PathBuf>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(rename = "eval", default)]
    pub evals: Vec<EvalSpec>,
}

/// A config as read: the parsed tables, the folder its paths are relative
/// to, and the hash of its bytes (recorded in the baseline).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub hash: String,
    pub config: SuiteConfig,
}

impl LoadedConfig {
    /// A path of the config, resolved against its folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
    /// `--baseline`, else the config's `baseline`, else `baseline.json` beside it.
    pub fn baseline_path(&self, flag: Option<&Path>) -> PathBuf {
        match flag {
            Some(p) => p.to_path_buf(),
            None => self.resolve(self.config.baseline.as_deref().unwrap_or(Path::new("baseline.json"))),
        }
    }
}

/// Reads and checks a suite config: at least one eval, unique names, each
/// kind's required paths, at least one gated metric per eval, non-negative
/// tolerances.
pub fn load_config(path: &Path) -> Result<LoadedConfig> {
    let err = |reason: String| SuiteError::Config { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| err("not UTF-8".into()))?;
    let config: SuiteConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    if config.evals.is_empty() {
        return Err(err("no [[eval]] tables".into()));
    }
    if config.defaults.tolerance < 0.0 {
        return Err(err("[defaults] tolerance must be ≥ 0".into()));
    }
    let mut names = std::collections::BTreeSet::new();
    for e in &config.evals {
        let name = e.name();
        if !names.insert(name.clone()) {
            return Err(err(format!("two evals are named `{name}`: give each a unique `name`")));
        }
        let need = |field: &str, v: &Option<PathBuf>| match v {
            Some(_) => Ok(()),
            None => Err(err(format!("eval `{name}` ({}) needs `{field}`", e.kind.as_str()))),
        };
        match e.kind {
            Kind::Retrieval | Kind::Answers => {
                need("goldset", &e.goldset)?;
                need("docs", &e.docs)?;
            }
            Kind::Pii | Kind::Injection | Kind::Tools => need("cases", &e.cases)?,
            Kind::Redteam => {}
        }
        if let Some(f) = &e.fusion {
            if f != "convex" && f != "rrf" {
                return Err(err(format!("eval `{name}`: fusion `{f}` is neither \"convex\" nor \"rrf\"")));
            }
        }
        if e.metrics.is_empty() {
            return Err(err(format!("eval `{name}` gates no metric: add an [eval.metrics] table")));
        }
        for (m, r) in &e.metrics {
            if r.tolerance.is_some_and(|t| !(t >= 0.0)) {
                return Err(err(format!("eval `{name}` metric `{m}`: tolerance must be ≥ 0")));
            }
        }
    }
    let dir = path.parent().map(Path::to_path_buf).filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("."));
    Ok(LoadedConfig { path: path.to_path_buf(), dir, hash: hex::encode(Sha256::digest(text.as_bytes())), config })
}

/// Every number in a report as `a.b.c` → value. Objects nest by key; an
/// array of objects nests by each element's `mode`, `name` or `id`; arrays
/// named `items` (per-question detail) and non-numbers are left out.
pub fn flatten(v: &Value) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, f64>) {
        let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match v {
            Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                    out.insert(prefix.to_string(), f);
                }
            }
            Value::Object(m) => {
                for (k, v) in m {
                    if k != "items" {
                        walk(&join(k), v, out);
                    }
                }
            }
            Value::Array(a) => {
                for el in a {
                    let key = ["mode", "name", "id"].iter().find_map(|k| el.get(*k).and_then(Value::as_str));
                    if let Some(k) = key {
                        walk(&join(k), el, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", v, &mut out);
    out
}

/// The stored baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    pub schema: u32,
    /// sha256 of the config file the values were measured with.
    pub config_hash: String,
    /// `tresor X.Y.Z` and the git commit when known.
    pub version: String,
    /// RFC 3339, UTC.
    pub date: String,
    pub metrics: BTreeMap<String, f64>,
}

pub fn read_baseline(path: &Path) -> Result<Baseline> {
    let err = |reason: String| SuiteError::Baseline { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            err("not found: run `tresor eval suite --config FILE --update-baseline` to write one".into())
        } else {
            err(e.to_string())
        }
    })?;
    let b: Baseline = serde_json::from_str(&text).map_err(|e| err(format!("not a baseline: {e}")))?;
    if b.schema != 1 {
        return Err(err(format!("schema {} (this version reads 1)", b.schema)));
    }
    Ok(b)
}

/// Writes the baseline atomically (a temp file beside it, then rename): a
/// killed run leaves the old one whole.
pub fn write_baseline(path: &Path, b: &Baseline) -> Result<()> {
    let err = |reason: String| SuiteError::Baseline { path: path.to_path_buf(), reason };
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| err(e.to_string()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(b).map_err(|e| err(e.to_string()))? + "\n";
    std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// The version string recorded in a baseline: `tresor VERSION`, plus the git
/// commit of the folder `dir` when it is a git checkout (local `git`, no network).
pub fn version_string(pkg_version: &str, dir: &Path) -> String {
    let git = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    match git {
        Some(g) => format!("tresor {pkg_version} (git {g})"),
        None => format!("tresor {pkg_version}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Within tolerance.
    Ok,
    /// Better by more than the tolerance.
    Improved,
    /// Worse by more than the tolerance: the gate fails.
    Regressed,
    /// Not in the baseline (a new metric): reported, never a failure.
    New,
}

/// One gated metric, before and after.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub before: Option<f64>,
    pub after: f64,
    pub delta: Option<f64>,
    pub direction: Direction,
    pub tolerance: f64,
    pub status: Status,
}

impl Row {
    /// The message that names a regression.
    pub fn regression_message(&self) -> String {
        let (worse, limit) = match self.direction {
            Direction::Higher => ("fell", "at least"),
            Direction::Lower => ("rose", "at most"),
        };
        let before = self.before.unwrap_or(f64::NAN);
        let bound = match self.direction {
            Direction::Higher => before - self.tolerance,
            Direction::Lower => before + self.tolerance,
        };
        format!(
            "{} {worse} from {} to {} (Δ {:+.4}; tolerance {}, so {limit} {})",
            self.metric,
            fmt(before),
            fmt(self.after),
            self.after - before,
            fmt(self.tolerance),
            fmt(bound)
        )
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// Compares each gated metric `(name, value, rule)` with the baseline.
/// Floating-point noise (1e-9) is never a regression.
pub fn compare(gated: &[(String, f64, Direction, f64)], baseline: Option<&Baseline>) -> Vec<Row> {
    gated
        .iter()
        .map(|(name, after, direction, tolerance)| {
            let before = baseline.and_then(|b| b.metrics.get(name)).copied();
            let status = match before {
                None => Status::New,
                Some(b) => {
                    // positive = better
                    let gain = match direction {
                        Direction::Higher => after - b,
                        Direction::Lower => b - after,
                    };
                    if gain < -(tolerance + 1e-9) {
                        Status::Regressed
                    } else if gain > tolerance + 1e-9 {
                        Status::Improved
                    } else {
                        Status::Ok
                    }
                }
            };
            Row { metric: name.clone(), before, after: *after, delta: before.map(|b| after - b), direction: *direction, tolerance: *tolerance, status }
        })
        .collect()
}

/// The gated metrics of one eval's flattened report: `NAME.metric`, value,
/// direction, tolerance. A configured metric the report lacks is an error
/// that lists what the report has.
pub fn gated_metrics(spec: &EvalSpec, defaults: &Defaults, report: &BTreeMap<String, f64>) -> Result<Vec<(String, f64, Direction, f64)>> {
    let name = spec.name();
    let mut out = Vec::new();
    for (m, rule) in &spec.metrics {
        let Some(v) = report.get(m) else {
            let have: Vec<&str> = report.keys().map(String::as_str).collect();
            return Err(SuiteError::Eval { name, reason: format!("its report has no metric `{m}`; it has: {}", have.join(", ")) });
        };
        out.push((format!("{name}.{m}"), *v, rule.direction, rule.tolerance.unwrap_or(defaults.tolerance)));
    }
    Ok(out)
}

/// The before/after/Δ table (Markdown).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from("| metric | better | before | after | Δ | tolerance | status |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.metric,
            match r.direction {
                Direction::Higher => "higher",
                Direction::Lower => "lower",
            },
            r.before.map(fmt).unwrap_or_else(|| "–".into()),
            fmt(r.after),
            r.delta.map(|d| format!("{d:+.4}")).unwrap_or_else(|| "–".into()),
            fmt(r.tolerance),
            match r.status {
                Status::Ok => "ok",
                Status::Improved => "improved",
                Status::Regressed => "REGRESSED",
                Status::New => "new",
            }
        ));
    }
    s
}

/// One eval's outcome in a suite run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalOutcome {
    pub name: String,
    pub kind: Kind,
    pub seconds: f64,
    /// Every metric of its report (gated or not).
    pub metrics: BTreeMap<String, f64>,
}

/// A suite run compared with its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub config: String,
    pub config_hash: String,
    pub baseline: String,
    /// The baseline was measured with a different config file (its values still compare by name).
    pub baseline_config_differs: bool,
    pub baseline_version: Option<String>,
    pub baseline_date: Option<String>,
    pub passed: bool,
    pub regressions: Vec<String>,
    pub rows: Vec<Row>,
    pub evals: Vec<EvalOutcome>,
}

/// Runs every eval of `cfg` with `run` (the real runs: [`crate::suite_runs::run`]),
/// collecting the gated metrics; `progress` hears each eval's start.
pub fn run_suite(
    cfg: &LoadedConfig,
    run: &mut dyn FnMut(&EvalSpec) -> Result<Value>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<EvalOutcome>, Vec<(String, f64, Direction, f64)>)> {
    let mut outcomes = Vec::new();
    let mut gated = Vec::new();
    for spec in &cfg.config.evals {
        progress(&format!("eval {} ({})", spec.name(), spec.kind.as_str()));
        let t = std::time::Instant::now();
        let report = run(spec)?;
        let metrics = flatten(&report);
        gated.extend(gated_metrics(spec, &cfg.config.defaults, &metrics)?);
        outcomes.push(EvalOutcome { name: spec.name(), kind: spec.kind, seconds: t.elapsed().as_secs_f64(), metrics });
    }
    Ok((outcomes, gated))
}

/// Compares a run with the baseline at `baseline_path` (None: no baseline
/// read, every row is new — the `--update-baseline` case).
pub fn report(
    cfg: &LoadedConfig,
    baseline_path: &Path,
    baseline: Option<&Baseline>,
    outcomes: Vec<EvalOutcome>,
    gated: &[(String, f64, Direction, f64)],
) -> SuiteReport {
    let rows = compare(gated, baseline);
    let regressions: Vec<String> = rows.iter().filter(|r| r.status == Status::Regressed).map(|r| r.metric.clone()).collect();
    SuiteReport {
        config: cfg.path.display().to_string(),
        config_hash: cfg.hash.clone(),
        baseline: baseline_path.display().to_string(),
        baseline_config_differs: baseline.is_some_and(|b| b.config_hash != cfg.hash),
        baseline_version: baseline.map(|b| b.version.clone()),
        baseline_date: baseline.map(|b| b.date.clone()),
        passed: regressions.is_empty(),
        regressions,
        rows,
        evals: outcomes,
    }
}

/// The baseline a run writes: the gated metrics' values.
pub fn new_baseline(cfg: &LoadedConfig, gated: &[(String, f64, Direction, f64)], version: String) -> Baseline {
    Baseline {
        schema: 1,
        config_hash: cfg.hash.clone(),
        version,
        date: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        metrics: gated.iter().map(|(n, v, _, _)| (n.clone(), *v)).collect(),
    }
}

#[cfg(test)]
mod tests;
