//! `tresor guard injection`, `tresor eval injection` and the hidden
//! `tresor guard train-injection`: front door to tresor-guard's
//! prompt-injection firewall. Reads files, embeds with the installed MiniLM
//! (the guard crate never loads a model), prints. No detection logic here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use tresor_guard::injection::classifier::{self, Classifier, TrainOptions, Weights};
use tresor_guard::injection::{lexical, rules, Detector, InstanceKind, Verdict};

use crate::ctx::Ctx;
use crate::text_input::TextInput;


#[derive(Args)]
pub struct InjectionArgs {
    #[command(flatten)]
    pub input: TextInput,
    /// Print {injection, score, reasons}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalInjectionArgs {
    /// JSONL cases: {id, text, label: "injection"|"benign", source?, subtype?}. Repeat for
    /// several held-out splits; each is reported on its own, named by --split or its file.
    #[arg(long, required = true)]
    pub cases: Vec<PathBuf>,
    /// Names for the --cases files, in order (default: parent folder/file stem).
    #[arg(long)]
    pub split: Vec<String>,
    /// Gate: exit non-zero when a split's TPR is below this (a split without injections is not gated on TPR).
    #[arg(long)]
    pub min_tpr: Option<f64>,
    /// Gate: exit non-zero when a split's FPR is above this.
    #[arg(long)]
    pub max_fpr: Option<f64>,
    #[arg(long)]
    pub json: bool,
    /// Skip the end-to-end attack run (detection rates only).
    #[arg(long)]
    pub no_attack: bool,
    /// Score with these classifier weights instead of the built-in ones (weights a
    /// training run just wrote, measured before they are built in).
    #[arg(long, hide = true)]
    pub weights: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainInjectionArgs {
    /// JSONL cases: {id, text, label, source, subtype}.
    #[arg(long)]
    pub cases: PathBuf,
    /// Where to write the weights (crates/guard/data/injection_weights.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Folds of the stratified cross-validation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// The operating threshold keeps the false-positive rate at or below this, on the
    /// leave-one-source-out scores (each source scored by a model that never saw it).
    #[arg(long, default_value_t = 0.03)]
    pub max_fpr: f64,
    /// Words per scoring window (long texts: the maximum over windows counts).
    #[arg(long, default_value_t = 120)]
    pub window_words: usize,
    #[arg(long, default_value_t = 80)]
    pub window_stride: usize,
    #[arg(long, default_value_t = 3000)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2.0)]
    pub learning_rate: f32,
    #[arg(long, default_value_t = 1e-4)]
    pub l2: f32,
    /// Hashed lexical feature buckets (word uni/bigrams, character 3/4-grams) beside the
    /// embedding; 0: embedding and rule features only.
    #[arg(long, default_value_t = 0)]
    pub lexical_dim: usize,
    /// Cache window embeddings here (JSON) to retrain quickly.
    #[arg(long)]
    pub embed_cache: Option<PathBuf>,
    /// Also score spans of this many consecutive sentences (the maximum over windows and
    /// spans counts), learned as multiple instances; 0: word windows only (format 1 weights).
    #[arg(long, default_value_t = 0)]
    pub sentence_span: usize,
    /// Rounds of re-choosing each injection's top-scoring sentence span.
    #[arg(long, default_value_t = 2)]
    pub mil_rounds: usize,
    /// Instance features with --sentence-span (comma-separated, of: sentence, off_context,
    /// addresses_reader, addresses_reader_rel; "none").
    #[arg(long, default_value = "sentence,off_context")]
    pub instance_features: String,
    /// Multiple instances over windows too: after the first round only an injection's
    /// top-scoring window or span is positive (default: all its windows, and its top span).
    #[arg(long)]
    pub mil_all: bool,
    /// Skip the k-fold cross-validation (quicker LOSO-only comparisons; the weights record no CV).
    #[arg(long, hide = true)]
    pub skip_cv: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct Case {
    id: String,
    text: String,
    label: String,
    #[serde(default)]
    subtype: String,
    /// Where the case comes from (a package's data file): the unit of leave-one-source-out.
    #[serde(default)]
    source: String,
}

impl Case {
    fn positive(&self) -> bool {
        self.label == "injection"
    }
    fn group(&self) -> String {
        if self.subtype.is_empty() {
            self.label.clone()
        } else {
            self.subtype.clone()
        }
    }
    fn source(&self) -> String {
        if self.source.is_empty() {
            self.group()
        } else {
            self.source.clone()
        }
    }
}

fn load_cases(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let c: Case = serde_json::from_str(line).with_context(|| format!("{}:{}: not a case {{id, text, label}}", path.display(), i + 1))?;
        if c.label != "injection" && c.label != "benign" {
            bail!("{}:{}: label {:?} is neither \"injection\" nor \"benign\"", path.display(), i + 1, c.label);
        }
        out.push(c);
    }
    if out.is_empty() {
        bail!("{}: no cases", path.display());
    }
    Ok(out)
}

pub(crate) fn load_embedder(ctx: &Ctx) -> Result<tresor_llm::embed::Embedder> {
    let device = crate::ctx::device(ctx).with_context(|| format!("device `{}`", ctx.device))?;
    Ok(tresor_assistant::open::load_embedder(&ctx.models_dir, None, &device)?)
}

/// The embeddings of every window of every text (batched), per text.
fn embed_windows(emb: &tresor_llm::embed::Embedder, windows: &[Vec<String>]) -> Result<Vec<Vec<Vec<f32>>>> {
    let flat: Vec<&str> = windows.iter().flatten().map(String::as_str).collect();
    let mut vecs = Vec::with_capacity(flat.len());
    for batch in flat.chunks(16) {
        vecs.extend(emb.embed(batch).context("embedding windows")?);
    }
    let mut it = vecs.into_iter();
    Ok(windows.iter().map(|w| it.by_ref().take(w.len()).collect()).collect())
}

/// The shipped detector and, when its embedder is installed and matches the
/// weights, the embedder; otherwise rules only (said on stderr).
fn detector_and_embedder(ctx: &Ctx) -> Result<(Detector, Option<tresor_llm::embed::Embedder>)> {
    let det = Detector::shipped().context("loading the shipped injection classifier")?;
    match load_embedder(ctx) {
        Ok(e) if e.model_id() == det.embed_model() => Ok((det, Some(e))),
        Ok(e) => {
            eprintln!("note: embedder {} is not the classifier's {}: rules only", e.model_id(), det.embed_model());
            Ok((det, None))
        }
        Err(err) => {
            eprintln!("note: no embedder ({err:#}): rules only");
            Ok((det, None))
        }
    }
}

fn verdict(det: &Detector, emb: Option<&tresor_llm::embed::Embedder>, text: &str) -> Result<Verdict> {
    match emb {
        Some(e) => {
            let w = det.windows(text);
            let refs: Vec<&str> = w.iter().map(String::as_str).collect();
            let v = e.embed(&refs).context("embedding the text")?;
            Ok(det.detect(text, &v)?)
        }
        None => Ok(det.detect_rules_only(text)),
    }
}

pub fn run_injection(args: InjectionArgs, ctx: &Ctx) -> Result<()> {
    let text = args.input.read()?;
    if text.trim().is_empty() {
        bail!("the text is empty");
    }
    let (det, emb) = detector_and_embedder(ctx)?;
    let v = verdict(&det, emb.as_ref(), &text)?;
    if args.json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{} (score {:.3})", if v.injection { "INJECTION" } else { "no injection" }, v.score);
        for r in &v.reasons {
            println!("  {r}");
        }
    }
    Ok(())
}

// ---- training -------------------------------------------------------------

#[derive(Serialize, Deserialize, Default)]
struct EmbedCache {
    /// 2: embeddings per text (windows and sentence spans alike).
    version: u32,
    embed_model: String,
    /// embedded text → its embedding
    texts: BTreeMap<String, Vec<f32>>,
}

/// One scored instance of a training case, computed once: kind, dense row
/// ([`Detector::instance_rows`]) and lexical features.
struct Inst {
    kind: InstanceKind,
    x: Vec<f32>,
    lex: Vec<(u32, f32)>,
}

/// A training case with the embeddings of its texts and its instances.
struct CaseData<'a> {
    case: &'a Case,
    embs: Vec<Vec<f32>>,
    insts: Vec<Inst>,
}

fn logit(w: &[f32], b: f32, i: &Inst) -> f32 {
    let d = i.x.len();
    b + classifier::dot(&i.x, &w[..d]) + i.lex.iter().map(|&(j, v)| v * w.get(d + j as usize).copied().unwrap_or(0.0)).sum::<f32>()
}

/// Fits the classifier. Word windows carry their case's label (as in format 1);
/// sentence spans are learned as multiple instances: every span of a benign
/// case is negative, and of an injection case only its top-scoring span is
/// positive (the order hidden in benign text), re-chosen for `mil_rounds`
/// rounds, each going on from the previous weights for half the epochs.
/// `mil_all`: after the first round an injection's windows are instances like
/// its spans (only the top-scoring one of all is positive).
fn fit(det_proto: &Weights, train: &[&CaseData], opts: &TrainOptions, mil_rounds: usize, mil_all: bool) -> Detector {
    let mut x = Vec::new();
    let mut xs = Vec::new();
    let mut y = Vec::new();
    for cd in train {
        for i in &cd.insts {
            if i.kind == InstanceKind::Window || !cd.case.positive() {
                x.push(i.x.clone());
                xs.push(i.lex.clone());
                y.push(cd.case.positive());
            }
        }
    }
    let (mut w, mut b) = classifier::train_sparse(&x, &xs, det_proto.lexical_dim, &y, opts);
    if det_proto.sentence_span > 0 {
        let later = TrainOptions { epochs: (opts.epochs / 2).max(1), ..opts.clone() };
        for _ in 0..mil_rounds {
            let (mut x2, mut xs2, mut y2) = (x.clone(), xs.clone(), y.clone());
            if mil_all {
                let keep: Vec<usize> = (0..y.len()).filter(|&k| !y[k]).collect();
                x2 = keep.iter().map(|&k| x[k].clone()).collect();
                xs2 = keep.iter().map(|&k| xs[k].clone()).collect();
                y2 = vec![false; keep.len()];
            }
            for cd in train.iter().filter(|cd| cd.case.positive()) {
                let top = cd
                    .insts
                    .iter()
                    .filter(|i| mil_all || i.kind == InstanceKind::Sentence)
                    .max_by(|a, c| logit(&w, b, a).total_cmp(&logit(&w, b, c)));
                if let Some(i) = top {
                    x2.push(i.x.clone());
                    xs2.push(i.lex.clone());
                    y2.push(true);
                }
            }
            (w, b) = classifier::train_from(&x2, &xs2, det_proto.lexical_dim, &y2, &later, Some((w, b)));
        }
    }
    let mut wt = det_proto.clone();
    wt.weights = w;
    wt.bias = b;
    Detector::with_classifier(Classifier { w: wt })
}

#[derive(Serialize, Clone)]
struct Rates {
    n: usize,
    flagged: usize,
    rate: f64,
}

fn per_group(cases: &[&Case], scores: &[f32], t: f32) -> BTreeMap<String, Rates> {
    let mut m: BTreeMap<String, Rates> = BTreeMap::new();
    for (c, &s) in cases.iter().zip(scores) {
        let r = m.entry(c.group()).or_insert(Rates { n: 0, flagged: 0, rate: 0.0 });
        r.n += 1;
        r.flagged += (s >= t) as usize;
    }
    for r in m.values_mut() {
        r.rate = r.flagged as f64 / r.n.max(1) as f64;
    }
    m
}

fn fold_of(id: &str) -> u64 {
    // FNV-1a: a stable shuffle independent of file order
    id.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

pub fn run_train_injection(args: TrainInjectionArgs, ctx: &Ctx) -> Result<()> {
    let cases = load_cases(&args.cases)?;
    if args.folds < 2 {
        bail!("--folds must be at least 2");
    }
    let emb = load_embedder(ctx)?;
    let dim = emb.dim();
    let instance_features: Vec<String> = if args.sentence_span == 0 || args.instance_features == "none" {
        Vec::new()
    } else {
        args.instance_features.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect()
    };
    let mut proto = Weights {
        format: if args.sentence_span > 0 { 2 } else { 1 },
        embed_model: emb.model_id().to_string(),
        dim,
        rule_features: rules::CATEGORIES.iter().map(|s| s.to_string()).collect(),
        lexical_dim: args.lexical_dim,
        weights: vec![0.0; dim + rules::CATEGORIES.len() + instance_features.len() + args.lexical_dim],
        bias: 0.0,
        threshold: 0.5,
        window_words: args.window_words,
        window_stride: args.window_stride,
        sentence_span: args.sentence_span,
        instance_features,
        training: serde_json::Value::Null,
    };
    Classifier::from_json(&serde_json::to_vec(&proto)?).context("the training options")?;
    let probe = Detector::with_classifier(Classifier { w: proto.clone() });
    // embeddings per text (windows and sentence spans), from the cache when it matches
    let mut cache: EmbedCache = args
        .embed_cache
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &EmbedCache| c.version == 2 && c.embed_model == proto.embed_model)
        .unwrap_or_default();
    let case_texts: Vec<Vec<String>> = cases.iter().map(|c| probe.windows(&c.text)).collect();
    let mut todo: Vec<&str> = case_texts.iter().flatten().map(String::as_str).filter(|t| !cache.texts.contains_key(*t)).collect();
    todo.sort_by_key(|t| (t.len(), *t));
    todo.dedup();
    if !todo.is_empty() {
        eprintln!("embedding {} texts ...", todo.len());
        // sorted by length: a batch pads to its longest text
        for (k, batch) in todo.chunks(16).enumerate() {
            for (t, v) in batch.iter().zip(emb.embed(batch).context("embedding")?) {
                cache.texts.insert(t.to_string(), v);
            }
            if k % 100 == 99 {
                eprintln!("  {} of {}", (k + 1) * 16, todo.len());
            }
        }
        cache.version = 2;
        cache.embed_model = proto.embed_model.clone();
        if let Some(p) = &args.embed_cache {
            std::fs::write(p, serde_json::to_vec(&cache)?).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    let mut data: Vec<CaseData> = Vec::with_capacity(cases.len());
    for (c, texts) in cases.iter().zip(&case_texts) {
        let embs: Vec<Vec<f32>> = texts.iter().map(|t| cache.texts[t].clone()).collect();
        let insts = probe
            .instance_rows(&c.text, &embs)?
            .into_iter()
            .map(|(kind, x, t)| Inst { kind, x, lex: lexical::features(&t, args.lexical_dim) })
            .collect();
        data.push(CaseData { case: c, embs, insts });
    }
    drop(cache);
    eprintln!(
        "{} cases, {} instances ({} sentence spans)",
        data.len(),
        data.iter().map(|d| d.insts.len()).sum::<usize>(),
        data.iter().flat_map(|d| &d.insts).filter(|i| i.kind == InstanceKind::Sentence).count()
    );
    let opts = TrainOptions { epochs: args.epochs, learning_rate: args.learning_rate, l2: args.l2 };

    // stratified k-fold: out-of-fold raw scores for every case
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| (data[i].case.positive(), fold_of(&data[i].case.id)));
    let mut fold = vec![0usize; data.len()];
    for (k, &i) in order.iter().enumerate() {
        fold[i] = k % args.folds;
    }
    let mut oof = vec![f32::NAN; data.len()];
    for f in (0..args.folds).filter(|_| !args.skip_cv) {
        let train: Vec<&CaseData> = data.iter().enumerate().filter(|(i, _)| fold[*i] != f).map(|(_, d)| d).collect();
        let det = fit(&proto, &train, &opts, args.mil_rounds, args.mil_all);
        for (i, d) in data.iter().enumerate().filter(|(i, _)| fold[*i] == f) {
            oof[i] = det.raw_score(&d.case.text, &d.embs)?;
        }
        eprintln!("fold {}/{} done", f + 1, args.folds);
    }
    let y: Vec<bool> = data.iter().map(|d| d.case.positive()).collect();
    let refs: Vec<&Case> = data.iter().map(|d| d.case).collect();

    // leave-one-source-out: each source scored by a model that never saw it —
    // what predicts unseen data (a new jailbreak collection, a new kind of benign prompt)
    let sources: Vec<String> = {
        let mut g: Vec<String> = refs.iter().map(|c| c.source()).collect();
        g.sort();
        g.dedup();
        g
    };
    let mut loso = vec![f32::NAN; data.len()];
    for s in &sources {
        let train: Vec<&CaseData> = data.iter().filter(|d| &d.case.source() != s).collect();
        if train.iter().all(|d| d.case.positive()) || train.iter().all(|d| !d.case.positive()) {
            continue;
        }
        let det = fit(&proto, &train, &opts, args.mil_rounds, args.mil_all);
        for (i, d) in data.iter().enumerate().filter(|(_, d)| &d.case.source() == s) {
            loso[i] = det.raw_score(&d.case.text, &d.embs)?;
        }
        eprintln!("held out {s}");
    }
    let scored: Vec<usize> = (0..data.len()).filter(|&i| !loso[i].is_nan()).collect();
    let loso_s: Vec<f32> = scored.iter().map(|&i| loso[i]).collect();
    let loso_y: Vec<bool> = scored.iter().map(|&i| y[i]).collect();
    // the threshold: on the leave-one-source-out scores (cross-validation within
    // sources picked thresholds that flagged a fifth of unseen benign prompts)
    let threshold = classifier::pick_threshold(&loso_s, &loso_y, args.max_fpr);
    let (loso_tpr, loso_fpr) = classifier::rates(&loso_s, &loso_y, threshold);
    let mut per_source: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for s in &sources {
        let idx: Vec<usize> = scored.iter().copied().filter(|&i| &refs[i].source() == s).collect();
        if idx.is_empty() {
            continue;
        }
        let flagged = idx.iter().filter(|&&i| loso[i] >= threshold).count();
        let pos = idx.iter().filter(|&&i| y[i]).count();
        let kind = if pos == idx.len() { "tpr" } else if pos == 0 { "fpr" } else { "flag_rate" };
        per_source.insert(s.clone(), serde_json::json!({"n": idx.len(), "flagged": flagged, kind: flagged as f64 / idx.len() as f64}));
    }
    let (cv_tpr, cv_fpr) = classifier::rates(&oof, &y, threshold);
    let cv_groups = per_group(&refs, &oof, threshold);
    let cv = if args.skip_cv {
        serde_json::json!({"note": "not run (--skip-cv)"})
    } else {
        serde_json::json!({"tpr": cv_tpr, "fpr": cv_fpr, "per_subtype": cv_groups, "note": "stratified k-fold within sources (optimistic)"})
    };

    // the shipped model: all cases
    let all: Vec<&CaseData> = data.iter().collect();
    let det = fit(&proto, &all, &opts, args.mil_rounds, args.mil_all);
    let mut train_scores = Vec::new();
    for d in &data {
        train_scores.push(det.raw_score(&d.case.text, &d.embs)?);
    }
    let (tr_tpr, tr_fpr) = classifier::rates(&train_scores, &y, threshold);
    let mut w = det.classifier().w.clone();
    w.threshold = threshold;
    w.training = serde_json::json!({
        "cases": args.cases.file_name().map(|n| n.to_string_lossy().to_string()),
        "n": data.len(),
        "positives": y.iter().filter(|&&b| b).count(),
        "folds": args.folds,
        "max_fpr": args.max_fpr,
        "epochs": args.epochs, "learning_rate": args.learning_rate, "l2": args.l2, "lexical_dim": args.lexical_dim,
        "sentence_span": args.sentence_span, "mil_rounds": if args.sentence_span > 0 { args.mil_rounds } else { 0 }, "mil_all": args.mil_all,
        "instance_features": proto.instance_features,
        "threshold_chosen_on": "loso",
        "loso": {"tpr": loso_tpr, "fpr": loso_fpr, "per_source": per_source,
                 "note": "leave-one-source-out on the training corpus; the threshold was chosen on these scores"},
        "cv": cv,
        "train_set": {"tpr": tr_tpr, "fpr": tr_fpr},
    });
    proto.threshold = threshold;
    let json = serde_json::to_string(&w)?;
    Classifier::from_json(json.as_bytes()).context("the trained weights do not load back")?;
    std::fs::write(&args.out, json + "\n").with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", serde_json::to_string_pretty(&w.training)?);
    println!("threshold {threshold:.4}; weights written to {}", args.out.display());
    Ok(())
}

// ---- evaluation -----------------------------------------------------------

#[derive(Serialize, Clone)]
struct SplitReport {
    /// Where the cases come from (the file) and what it is to the shipped weights.
    file: String,
    cases: usize,
    positives: usize,
    negatives: usize,
    tpr: f64,
    fpr: f64,
    per_subtype: BTreeMap<String, Rates>,
    per_source: BTreeMap<String, Rates>,
}

#[derive(Serialize)]
struct EvalReport {
    /// The first split's figures at the top level (the eval suite's gated metrics).
    cases: usize,
    positives: usize,
    negatives: usize,
    /// The operating threshold on the raw score (score 0.5 in `guard injection`).
    threshold: f32,
    classifier: bool,
    tpr: f64,
    fpr: f64,
    per_subtype: BTreeMap<String, Rates>,
    /// Every split by name (held out: none of them is training data).
    splits: BTreeMap<String, SplitReport>,
    /// Leave-one-source-out on the training corpus (from the shipped weights).
    loso: serde_json::Value,
    /// What training measured (from the shipped weights).
    training: serde_json::Value,
    /// Gate failures (`--min-tpr` / `--max-fpr`), empty when it passed or no gate was asked.
    gate_failures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attack: Option<tresor_bench::attack::AttackReport>,
}

fn split_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(d) => format!("{}/{stem}", d.to_string_lossy()),
        None => stem,
    }
}

fn eval_split(det: &Detector, emb: Option<&tresor_llm::embed::Embedder>, path: &Path) -> Result<SplitReport> {
    let cases = load_cases(path)?;
    let wins: Vec<Vec<String>> = cases.iter().map(|c| det.windows(&c.text)).collect();
    let embs = match emb {
        Some(e) => Some(embed_windows(e, &wins)?),
        None => None,
    };
    let mut scores = Vec::with_capacity(cases.len());
    for (i, c) in cases.iter().enumerate() {
        scores.push(match &embs {
            Some(v) => det.raw_score(&c.text, &v[i])?,
            None => tresor_guard::injection::combine(0.0, &rules::hits(&c.text)),
        });
    }
    let y: Vec<bool> = cases.iter().map(Case::positive).collect();
    let t = det.threshold();
    let (tpr, fpr) = classifier::rates(&scores, &y, t);
    let refs: Vec<&Case> = cases.iter().collect();
    let per_source = {
        let mut m: BTreeMap<String, Rates> = BTreeMap::new();
        for (c, &s) in refs.iter().zip(&scores) {
            let r = m.entry(format!("{} [{}]", c.source(), c.label)).or_insert(Rates { n: 0, flagged: 0, rate: 0.0 });
            r.n += 1;
            r.flagged += (s >= t) as usize;
        }
        m.values_mut().for_each(|r| r.rate = r.flagged as f64 / r.n.max(1) as f64);
        m
    };
    Ok(SplitReport {
        file: path.display().to_string(),
        cases: cases.len(),
        positives: y.iter().filter(|&&b| b).count(),
        negatives: y.iter().filter(|&&b| !b).count(),
        tpr,
        fpr,
        per_subtype: per_group(&refs, &scores, t),
        per_source,
    })
}

/// The gate: every split's TPR (when it has injections) and FPR (when it has benign cases) against the bounds.
fn gate(splits: &BTreeMap<String, SplitReport>, min_tpr: Option<f64>, max_fpr: Option<f64>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in splits {
        if let Some(m) = min_tpr {
            if s.positives > 0 && s.tpr < m {
                out.push(format!("{name}: TPR {:.3} < {m}", s.tpr));
            }
        }
        if let Some(m) = max_fpr {
            if s.negatives > 0 && s.fpr > m {
                out.push(format!("{name}: FPR {:.3} > {m}", s.fpr));
            }
        }
    }
    out
}

pub fn run_eval_injection(args: EvalInjectionArgs, ctx: &Ctx) -> Result<()> {
    if !args.split.is_empty() && args.split.len() != args.cases.len() {
        bail!("{} --split names for {} --cases files", args.split.len(), args.cases.len());
    }
    let (mut det, emb) = detector_and_embedder(ctx)?;
    if let Some(p) = &args.weights {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let clf = Classifier::from_json(&bytes).with_context(|| format!("weights {}", p.display()))?;
        if clf.w.embed_model != det.embed_model() {
            bail!("{}: trained on {}, the built-in detector embeds with {}", p.display(), clf.w.embed_model, det.embed_model());
        }
        det = Detector::with_classifier(clf);
    }
    let mut splits = BTreeMap::new();
    let mut first = None;
    for (i, path) in args.cases.iter().enumerate() {
        let name = args.split.get(i).cloned().unwrap_or_else(|| split_name(path));
        let r = eval_split(&det, emb.as_ref(), path)?;
        first.get_or_insert_with(|| r.clone());
        splits.insert(name, r);
    }
    let first = first.expect("--cases is required");
    let gate_failures = gate(&splits, args.min_tpr, args.max_fpr);
    let attack = if args.no_attack { None } else { Some(attack_run(ctx, !args.json)?) };
    let training = det.classifier().w.training.clone();
    let rep = EvalReport {
        cases: first.cases,
        positives: first.positives,
        negatives: first.negatives,
        threshold: det.threshold(),
        classifier: emb.is_some(),
        tpr: first.tpr,
        fpr: first.fpr,
        per_subtype: first.per_subtype.clone(),
        splits,
        loso: training.get("loso").cloned().unwrap_or(serde_json::Value::Null),
        training,
        gate_failures,
        attack,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print_eval(&rep);
    }
    if !rep.gate_failures.is_empty() {
        bail!("injection gate failed: {}", rep.gate_failures.join("; "));
    }
    Ok(())
}

fn print_eval(rep: &EvalReport) {
    println!("threshold {:.3}{}", rep.threshold, if rep.classifier { "" } else { " (rules only: no embedder)" });
    if let Some(l) = rep.loso.as_object() {
        println!(
            "split LOSO (leave-one-source-out on the training corpus, threshold chosen on it): TPR {:.3}  FPR {:.3}",
            l["tpr"].as_f64().unwrap_or(f64::NAN),
            l["fpr"].as_f64().unwrap_or(f64::NAN)
        );
        if let Some(ps) = l.get("per_source").and_then(|v| v.as_object()) {
            for (s, v) in ps {
                let (k, r) = if let Some(r) = v.get("tpr") { ("TPR", r) } else if let Some(r) = v.get("fpr") { ("FPR", r) } else { ("flagged", &v["flag_rate"]) };
                println!("  {s:<34} {k} {:.3}  ({}/{})", r.as_f64().unwrap_or(f64::NAN), v["flagged"], v["n"]);
            }
        }
    } else {
        println!("split LOSO: not recorded in the shipped weights");
    }
    for (name, s) in &rep.splits {
        println!("split {name} (held out: not training data) — {} cases ({} injection, {} benign): TPR {:.3}  FPR {:.3}", s.cases, s.positives, s.negatives, s.tpr, s.fpr);
        for (g, r) in &s.per_source {
            println!("  {g:<48} {:>4}/{:<4} flagged ({:.3})", r.flagged, r.n, r.rate);
        }
        for (g, r) in &s.per_subtype {
            println!("  subtype {g:<40} {:>4}/{:<4} flagged ({:.3})", r.flagged, r.n, r.rate);
        }
    }
    if let Some(a) = &rep.attack {
        println!(
            "attack run ({} poisoned pages): {} questions, attack success {} ({:.3}); canary {}, exfiltration {}; quarantined chunks {}; answered {}",
            a.documents, a.attacks, a.succeeded, a.success_rate, a.canary_in_answer, a.exfil_in_answer, a.quarantined_chunks, a.firewall.answered
        );
        println!(
            "  firewall off: attack success {} ({:.3}); canary {}, exfiltration {}; answered {}",
            a.firewall_off.succeeded, a.firewall_off.success_rate, a.firewall_off.canary_in_answer, a.firewall_off.exfil_in_answer, a.firewall_off.answered
        );
    }
    for f in &rep.gate_failures {
        println!("GATE FAILED: {f}");
    }
}

/// The end-to-end attack run (tresor-assistant's generated poisoned handbook) in a scratch data dir.
fn attack_run(ctx: &Ctx, verbose: bool) -> Result<tresor_bench::attack::AttackReport> {
    let (_tmp, data) = tresor_assistant::scratch::scratch_dir()?;
    let mut assistant = crate::assistant_cmd::build_assistant(ctx, &data, &tresor_guard::crypto::WorkspaceKey::ephemeral()).context("the attack run needs the chat and embedding models")?;
    let rep = tresor_bench::attack::run(&mut assistant, &data, &mut |on, c| {
        if verbose {
            eprintln!(
                "{} {:<4} {} {}  {}",
                if on { "firewall" } else { "off     " },
                if c.succeeded { "HIT" } else { "ok" },
                c.lang,
                c.question,
                c.answer.chars().take(80).collect::<String>().replace('\n', " ")
            );
        }
    })?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(positives: usize, negatives: usize, tpr: f64, fpr: f64) -> SplitReport {
        SplitReport { file: "x".into(), cases: positives + negatives, positives, negatives, tpr, fpr, per_subtype: BTreeMap::new(), per_source: BTreeMap::new() }
    }

    #[test]
    fn the_gate_fails_on_either_bound_and_names_the_split() {
        let mut s = BTreeMap::new();
        s.insert("dev".to_string(), split(10, 10, 0.95, 0.02));
        s.insert("hard".to_string(), split(0, 50, 0.0, 0.08));
        assert!(gate(&s, None, None).is_empty());
        // a split without injections is not held to a TPR
        assert!(gate(&s, Some(0.9), None).is_empty());
        let f = gate(&s, Some(0.9), Some(0.05));
        assert_eq!(f, vec!["hard: FPR 0.080 > 0.05".to_string()]);
        let f = gate(&s, Some(0.96), Some(0.1));
        assert_eq!(f, vec!["dev: TPR 0.950 < 0.96".to_string()]);
    }

    #[test]
    fn split_names_come_from_the_folder_and_file() {
        assert_eq!(split_name(Path::new("../shared/eval/injection_dev/cases.jsonl")), "injection_dev/cases");
    }
}
