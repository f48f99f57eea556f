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
use tresor_guard::injection::{rules, Detector, Verdict};

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
    /// JSONL cases: {id, text, label: "injection"|"benign"}.
    #[arg(long)]
    pub cases: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Skip the end-to-end attack run (detection rates only).
    #[arg(long)]
    pub no_attack: bool,
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
    /// The operating threshold keeps the cross-validated false-positive rate at or below this.
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
    /// Cache window embeddings here (JSON) to retrain quickly.
    #[arg(long)]
    pub embed_cache: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
struct Case {
    id: String,
    text: String,
    label: String,
    #[serde(default)]
    subtype: String,
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
    embed_model: String,
    window_words: usize,
    window_stride: usize,
    /// case id → window embeddings
    cases: BTreeMap<String, Vec<Vec<f32>>>,
}

/// One training row per window: embedding ++ rule features.
fn rows(det: &Detector, c: &Case, embs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    det.windows(&c.text)
        .iter()
        .zip(embs)
        .map(|(w, e)| {
            let mut r = e.clone();
            r.extend(rules::features(&rules::hits(w)));
            r
        })
        .collect()
}

fn fit(det_proto: &Weights, train: &[(&Case, &Vec<Vec<f32>>)], opts: &TrainOptions) -> Detector {
    let probe = Detector::with_classifier(Classifier { w: det_proto.clone() });
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (c, e) in train {
        for r in rows(&probe, c, e) {
            x.push(r);
            y.push(c.positive());
        }
    }
    let (w, b) = classifier::train(&x, &y, opts);
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
    let mut proto = Weights {
        format: 1,
        embed_model: emb.model_id().to_string(),
        dim,
        rule_features: rules::CATEGORIES.iter().map(|s| s.to_string()).collect(),
        weights: vec![0.0; dim + rules::CATEGORIES.len()],
        bias: 0.0,
        threshold: 0.5,
        window_words: args.window_words,
        window_stride: args.window_stride,
        training: serde_json::Value::Null,
    };
    let probe = Detector::with_classifier(Classifier { w: proto.clone() });
    // window embeddings, from the cache when it matches
    let mut cache: EmbedCache = args
        .embed_cache
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &EmbedCache| c.embed_model == proto.embed_model && c.window_words == args.window_words && c.window_stride == args.window_stride)
        .unwrap_or_default();
    let todo: Vec<&Case> = cases.iter().filter(|c| !cache.cases.contains_key(&c.id)).collect();
    if !todo.is_empty() {
        eprintln!("embedding {} cases ...", todo.len());
        let wins: Vec<Vec<String>> = todo.iter().map(|c| probe.windows(&c.text)).collect();
        let vecs = embed_windows(&emb, &wins)?;
        for (c, v) in todo.iter().zip(vecs) {
            cache.cases.insert(c.id.clone(), v);
        }
        cache.embed_model = proto.embed_model.clone();
        cache.window_words = args.window_words;
        cache.window_stride = args.window_stride;
        if let Some(p) = &args.embed_cache {
            std::fs::write(p, serde_json::to_vec(&cache)?).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    let data: Vec<(&Case, &Vec<Vec<f32>>)> = cases.iter().map(|c| (c, &cache.cases[&c.id])).collect();
    let opts = TrainOptions { epochs: args.epochs, learning_rate: args.learning_rate, l2: args.l2 };

    // stratified k-fold: out-of-fold raw scores for every case
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| (data[i].0.positive(), fold_of(&data[i].0.id)));
    let mut fold = vec![0usize; data.len()];
    for (k, &i) in order.iter().enumerate() {
        fold[i] = k % args.folds;
    }
    let mut oof = vec![0f32; data.len()];
    for f in 0..args.folds {
        let train: Vec<_> = data.iter().enumerate().filter(|(i, _)| fold[*i] != f).map(|(_, d)| *d).collect();
        let det = fit(&proto, &train, &opts);
        for (i, (c, e)) in data.iter().enumerate().filter(|(i, _)| fold[*i] == f) {
            oof[i] = det.raw_score(&c.text, e)?;
        }
        eprintln!("fold {}/{} done", f + 1, args.folds);
    }
    let y: Vec<bool> = data.iter().map(|(c, _)| c.positive()).collect();
    let threshold = classifier::pick_threshold(&oof, &y, args.max_fpr);
    let (cv_tpr, cv_fpr) = classifier::rates(&oof, &y, threshold);
    let refs: Vec<&Case> = data.iter().map(|(c, _)| *c).collect();
    let cv_groups = per_group(&refs, &oof, threshold);

    // leave-one-group-out: each source family scored by a model that never saw it
    let groups: Vec<String> = {
        let mut g: Vec<String> = refs.iter().map(|c| c.group()).collect();
        g.sort();
        g.dedup();
        g
    };
    let mut logo = BTreeMap::new();
    for g in &groups {
        let train: Vec<_> = data.iter().filter(|(c, _)| &c.group() != g).copied().collect();
        if train.iter().all(|(c, _)| c.positive()) || train.iter().all(|(c, _)| !c.positive()) {
            continue;
        }
        let det = fit(&proto, &train, &opts);
        let held: Vec<_> = data.iter().filter(|(c, _)| &c.group() == g).collect();
        let mut flagged = 0;
        for (c, e) in &held {
            flagged += (det.raw_score(&c.text, e)? >= threshold) as usize;
        }
        logo.insert(g.clone(), Rates { n: held.len(), flagged, rate: flagged as f64 / held.len().max(1) as f64 });
        eprintln!("held out {g}: {flagged}/{} flagged", held.len());
    }

    // the shipped model: all cases
    let det = fit(&proto, &data, &opts);
    let mut train_scores = Vec::new();
    for (c, e) in &data {
        train_scores.push(det.raw_score(&c.text, e)?);
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
        "epochs": args.epochs, "learning_rate": args.learning_rate, "l2": args.l2,
        "cv": {"tpr": cv_tpr, "fpr": cv_fpr, "per_subtype": cv_groups},
        "leave_one_subtype_out": logo,
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

#[derive(Serialize)]
struct EvalReport {
    cases: usize,
    positives: usize,
    negatives: usize,
    /// The operating threshold on the raw score (score 0.5 in `guard injection`).
    threshold: f32,
    classifier: bool,
    tpr: f64,
    fpr: f64,
    per_subtype: BTreeMap<String, Rates>,
    /// What training measured by cross-validation (from the shipped weights).
    training: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    attack: Option<tresor_bench::attack::AttackReport>,
}

pub fn run_eval_injection(args: EvalInjectionArgs, ctx: &Ctx) -> Result<()> {
    let cases = load_cases(&args.cases)?;
    let (det, emb) = detector_and_embedder(ctx)?;
    let mut scores = Vec::with_capacity(cases.len());
    let wins: Vec<Vec<String>> = cases.iter().map(|c| det.windows(&c.text)).collect();
    let embs = match &emb {
        Some(e) => Some(embed_windows(e, &wins)?),
        None => None,
    };
    for (i, c) in cases.iter().enumerate() {
        let s = match &embs {
            Some(v) => det.raw_score(&c.text, &v[i])?,
            None => tresor_guard::injection::combine(0.0, &rules::hits(&c.text)),
        };
        scores.push(s);
    }
    let y: Vec<bool> = cases.iter().map(Case::positive).collect();
    let t = det.threshold();
    let (tpr, fpr) = classifier::rates(&scores, &y, t);
    let refs: Vec<&Case> = cases.iter().collect();
    let per_subtype = per_group(&refs, &scores, t);
    let attack = if args.no_attack { None } else { Some(attack_run(ctx, !args.json)?) };
    let rep = EvalReport {
        cases: cases.len(),
        positives: y.iter().filter(|&&b| b).count(),
        negatives: y.iter().filter(|&&b| !b).count(),
        threshold: t,
        classifier: emb.is_some(),
        tpr,
        fpr,
        per_subtype,
        training: det.classifier().w.training.clone(),
        attack,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    println!("cases {} ({} injection, {} benign), threshold {:.3}{}", rep.cases, rep.positives, rep.negatives, t, if rep.classifier { "" } else { " (rules only)" });
    println!("TPR {:.3}  FPR {:.3}", tpr, fpr);
    for (g, r) in &rep.per_subtype {
        println!("  {g:<24} {:>4}/{:<4} flagged ({:.3})", r.flagged, r.n, r.rate);
    }
    if let Some(cv) = rep.training.get("cv") {
        println!("cross-validated at training: TPR {}  FPR {}", cv["tpr"], cv["fpr"]);
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
    Ok(())
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
