//! The learned half of the detector: logistic regression over a sentence
//! embedding (MiniLM, computed by the caller) concatenated with the rule
//! features of [`super::rules`], the instance features (format 2: whether
//! the scored text is a sentence span or a word window, how far it is from
//! the rest of the text) and, when the weights have them, the hashed
//! lexical features of [`super::lexical`]. Owns the weights format, loading, scoring and
//! the training math (class-weighted, L2-regularised gradient descent;
//! threshold chosen on out-of-fold scores). Never computes an embedding:
//! this crate does not depend on the model crates.

use serde::{Deserialize, Serialize};

use super::rules::CATEGORIES;
use super::InjectionError;

/// The shipped weights, trained by `tresor guard train-injection` on
/// ../shared/eval/injection_dev (see docs/guard-injection.md).
pub const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../data/injection_weights.json");

/// Weights as stored in `crates/guard/data/injection_weights.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weights {
    pub format: u32,
    /// The embedder the weights were trained on (callers must embed with it).
    pub embed_model: String,
    pub dim: usize,
    /// Rule categories in feature order (after the `dim` embedding features).
    pub rule_features: Vec<String>,
    /// Hashed lexical feature buckets after the rule features (0: none).
    #[serde(default)]
    pub lexical_dim: usize,
    /// `dim + rule_features.len() + instance_features.len() + lexical_dim` weights.
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Operating threshold on the combined score.
    pub threshold: f32,
    /// Long texts are scored in windows of this many words (the max counts).
    pub window_words: usize,
    pub window_stride: usize,
    /// Format 2: texts are also scored per span of this many consecutive
    /// sentences (the maximum over windows and spans counts); 0: windows only.
    #[serde(default)]
    pub sentence_span: usize,
    /// Format 2: per-instance features after the rule features, by name
    /// ([`INSTANCE_FEATURES`]); empty in format 1.
    #[serde(default)]
    pub instance_features: Vec<String>,
    /// What training measured (cross-validated), for the record.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The weights formats this build reads: 1 (windows only), 2 (adds sentence spans and instance features).
pub const FORMAT: u32 = 2;

/// Instance features a format-2 file may name: `sentence` is 1 for a
/// sentence span and 0 for a word window; `off_context` is, for a sentence
/// span, 1 − its cosine to the mean of the text's window embeddings (an
/// order dropped into unrelated text sits far from it), 0 for a window.
/// `addresses_reader` is 1 for a sentence span that opens with an imperative
/// or says "you" ([`super::rules::addresses_reader`]); `addresses_reader_rel` is
/// that minus the share of the text's sentences that do (an order in a text
/// that otherwise does not speak to its reader).
pub const INSTANCE_FEATURES: &[&str] = &["sentence", "off_context", "addresses_reader", "addresses_reader_rel"];

/// Where a sentence span stands in its text (the values of the instance features; all 0 for a window).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstanceContext {
    pub off_context: f32,
    pub addresses_reader: f32,
    pub addresses_reader_rel: f32,
}

/// What is being scored: a word window of the text or a span of its sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceKind {
    Window,
    Sentence,
}

#[derive(Debug, Clone)]
pub struct Classifier {
    pub w: Weights,
}

impl Classifier {
    pub fn from_json(bytes: &[u8]) -> Result<Classifier, InjectionError> {
        let w: Weights = serde_json::from_slice(bytes).map_err(|e| InjectionError::Weights(e.to_string()))?;
        if w.format == 0 || w.format > FORMAT {
            return Err(InjectionError::Weights(format!("format {} (this build reads formats 1 to {FORMAT}): retrain or update tresor", w.format)));
        }
        if w.format < 2 && (w.sentence_span > 0 || !w.instance_features.is_empty()) {
            return Err(InjectionError::Weights("sentence spans or instance features need format 2".into()));
        }
        if let Some(f) = w.instance_features.iter().find(|f| !INSTANCE_FEATURES.contains(&f.as_str())) {
            return Err(InjectionError::Weights(format!("unknown instance feature {f:?} (known: {INSTANCE_FEATURES:?})")));
        }
        if w.rule_features.iter().map(String::as_str).ne(CATEGORIES.iter().copied()) {
            return Err(InjectionError::Weights(format!(
                "rule features {:?} do not match this build's categories {:?}: retrain",
                w.rule_features, CATEGORIES
            )));
        }
        let n = w.dim + CATEGORIES.len() + w.instance_features.len() + w.lexical_dim;
        if w.weights.len() != n {
            return Err(InjectionError::Weights(format!("{} weights for {n} features", w.weights.len())));
        }
        if !(0.0..=1.0).contains(&w.threshold) || w.window_words == 0 || w.window_stride == 0 {
            return Err(InjectionError::Weights("threshold outside 0..1 or empty window".into()));
        }
        Ok(Classifier { w })
    }

    pub fn shipped() -> Result<Classifier, InjectionError> {
        Self::from_json(SHIPPED_WEIGHTS)
    }

    /// Probability that a window is an injection, from its embedding, rule
    /// features and the window's text (for the lexical features, when the weights have them).
    pub fn prob(&self, embedding: &[f32], rule_features: &[f32], text: &str) -> Result<f32, InjectionError> {
        let row = self.row(embedding, rule_features, InstanceKind::Window, InstanceContext::default())?;
        Ok(self.prob_row(&row, text))
    }

    /// The dense feature row of one instance: embedding, rule features, instance
    /// features (see [`INSTANCE_FEATURES`]). What training fits on.
    pub fn row(&self, embedding: &[f32], rule_features: &[f32], kind: InstanceKind, ctx: InstanceContext) -> Result<Vec<f32>, InjectionError> {
        if embedding.len() != self.w.dim {
            return Err(InjectionError::Dim { expected: self.w.dim, got: embedding.len() });
        }
        let mut r = Vec::with_capacity(self.w.dim + rule_features.len() + self.w.instance_features.len());
        r.extend_from_slice(embedding);
        r.extend_from_slice(rule_features);
        let sentence = kind == InstanceKind::Sentence;
        for f in &self.w.instance_features {
            r.push(match (f.as_str(), sentence) {
                ("sentence", true) => 1.0,
                ("off_context", true) => ctx.off_context,
                ("addresses_reader", true) => ctx.addresses_reader,
                ("addresses_reader_rel", true) => ctx.addresses_reader_rel,
                _ => 0.0,
            });
        }
        Ok(r)
    }

    /// Probability from a [`Classifier::row`] and the instance's text (lexical features).
    pub fn prob_row(&self, row: &[f32], text: &str) -> f32 {
        let lex = super::lexical::features(text, self.w.lexical_dim);
        sigmoid(linear(&self.w.weights, self.w.bias, row, &[], &lex))
    }
}

fn linear(w: &[f32], b: f32, emb: &[f32], rf: &[f32], lex: &[(u32, f32)]) -> f32 {
    let d = emb.len();
    let mut z = b;
    for (x, wi) in emb.iter().zip(&w[..d]) {
        z += x * wi;
    }
    for (x, wi) in rf.iter().zip(&w[d..]) {
        z += x * wi;
    }
    let off = d + rf.len();
    for &(i, x) in lex {
        z += x * w.get(off + i as usize).copied().unwrap_or(0.0);
    }
    z
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Training options for [`train`].
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { epochs: 600, learning_rate: 0.5, l2: 1e-3 }
    }
}

/// Full-batch gradient descent on the class-balanced logistic loss.
/// `x[i]` is one feature row (embedding then rule features), `y[i]` its label.
/// Returns (weights, bias). Deterministic.
pub fn train(x: &[Vec<f32>], y: &[bool], opts: &TrainOptions) -> (Vec<f32>, f32) {
    train_sparse(x, &[], 0, y, opts)
}

/// [`train`] with a sparse block after the dense features: `xs[i]` holds row
/// i's (index, value) pairs in `0..sparse_dim` (empty `xs`: no sparse block).
/// Returns `dense + sparse_dim` weights and the bias.
pub fn train_sparse(x: &[Vec<f32>], xs: &[Vec<(u32, f32)>], sparse_dim: usize, y: &[bool], opts: &TrainOptions) -> (Vec<f32>, f32) {
    train_from(x, xs, sparse_dim, y, opts, None)
}

/// Dot product in eight lanes (vectorises; the order of the adds differs from a plain sum).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// [`train_sparse`] starting from `init` (weights, bias) instead of zeros:
/// the rounds of multiple-instance training go on from the previous round.
pub fn train_from(x: &[Vec<f32>], xs: &[Vec<(u32, f32)>], sparse_dim: usize, y: &[bool], opts: &TrainOptions, init: Option<(Vec<f32>, f32)>) -> (Vec<f32>, f32) {
    let n = x.len();
    let dd = x.first().map(|r| r.len()).unwrap_or(0);
    let d = dd + sparse_dim;
    let no_sparse: Vec<(u32, f32)> = Vec::new();
    let sparse = |i: usize| xs.get(i).unwrap_or(&no_sparse);
    let pos = y.iter().filter(|&&b| b).count().max(1) as f32;
    let neg = (n as f32 - pos).max(1.0);
    // each class carries half of the loss
    let cw = |b: bool| if b { 0.5 / pos } else { 0.5 / neg };
    let (mut w, mut b) = match init {
        Some((w, b)) if w.len() == d => (w, b),
        _ => (vec![0f32; d], 0f32),
    };
    let mut g = vec![0f32; d];
    for _ in 0..opts.epochs {
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut gb = 0f32;
        for (i, (row, &label)) in x.iter().zip(y).enumerate() {
            let sp = sparse(i);
            let z: f32 = b + dot(row, &w[..dd]) + sp.iter().map(|&(j, v)| v * w[dd + j as usize]).sum::<f32>();
            let err = (sigmoid(z) - if label { 1.0 } else { 0.0 }) * cw(label);
            for (gi, xi) in g.iter_mut().zip(row) {
                *gi += err * xi;
            }
            for &(j, v) in sp {
                g[dd + j as usize] += err * v;
            }
            gb += err;
        }
        for (wi, gi) in w.iter_mut().zip(&g) {
            *wi -= opts.learning_rate * (gi + opts.l2 * *wi);
        }
        b -= opts.learning_rate * gb;
    }
    (w, b)
}

/// True/false positive rates of `scores` at `threshold` (score ≥ threshold flags).
pub fn rates(scores: &[f32], y: &[bool], threshold: f32) -> (f64, f64) {
    let (mut tp, mut p, mut fp, mut n) = (0usize, 0usize, 0usize, 0usize);
    for (&s, &l) in scores.iter().zip(y) {
        if l {
            p += 1;
            tp += (s >= threshold) as usize;
        } else {
            n += 1;
            fp += (s >= threshold) as usize;
        }
    }
    (tp as f64 / p.max(1) as f64, fp as f64 / n.max(1) as f64)
}

/// The lowest threshold (most recall) whose false-positive rate stays ≤ `max_fpr`.
pub fn pick_threshold(scores: &[f32], y: &[bool], max_fpr: f64) -> f32 {
    let mut cands: Vec<f32> = scores.to_vec();
    cands.sort_by(|a, b| a.total_cmp(b));
    cands.dedup();
    for t in cands {
        let (_, fpr) = rates(scores, y, t);
        if fpr <= max_fpr {
            return t.clamp(0.05, 0.99);
        }
    }
    0.99
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_weights_load_and_score_in_range() {
        let c = Classifier::shipped().expect("shipped weights");
        assert_eq!(c.w.weights.len(), c.w.dim + CATEGORIES.len() + c.w.instance_features.len() + c.w.lexical_dim);
        let e = vec![0.05f32; c.w.dim];
        let p = c.prob(&e, &vec![0.0; CATEGORIES.len()], "some text").unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert!(matches!(c.prob(&[0.0; 3], &[], ""), Err(InjectionError::Dim { .. })));
    }

    #[test]
    fn bad_weights_are_rejected_with_a_reason() {
        assert!(Classifier::from_json(b"{}").is_err());
        let mut w = Classifier::shipped().unwrap().w;
        w.weights.pop();
        let err = Classifier::from_json(&serde_json::to_vec(&w).unwrap()).unwrap_err();
        assert!(err.to_string().contains("weights"), "{err}");
    }

    #[test]
    fn format_2_adds_instance_features_and_newer_formats_are_refused() {
        let mut w = Classifier::shipped().unwrap().w;
        w.format = 1;
        w.sentence_span = 0;
        w.instance_features.clear();
        w.weights.truncate(w.dim + CATEGORIES.len());
        w.lexical_dim = 0;
        // a format-1 file (no instance fields at all) still loads
        let mut v = serde_json::to_value(&w).unwrap();
        v.as_object_mut().unwrap().remove("sentence_span");
        v.as_object_mut().unwrap().remove("instance_features");
        let c1 = Classifier::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        // format 1 with sentence spans is inconsistent
        let mut bad = w.clone();
        bad.sentence_span = 1;
        assert!(Classifier::from_json(&serde_json::to_vec(&bad).unwrap()).unwrap_err().to_string().contains("format 2"));
        let mut w2 = w.clone();
        w2.format = 2;
        w2.sentence_span = 1;
        w2.instance_features = vec!["sentence".into(), "off_context".into()];
        w2.weights.extend([0.5, 2.0]);
        let c2 = Classifier::from_json(&serde_json::to_vec(&w2).unwrap()).unwrap();
        let e = vec![0.01f32; w.dim];
        let rf = vec![0f32; CATEGORIES.len()];
        let ctx = InstanceContext { off_context: 0.25, addresses_reader: 1.0, addresses_reader_rel: 0.5 };
        let row = c2.row(&e, &rf, InstanceKind::Sentence, ctx).unwrap();
        assert_eq!(&row[row.len() - 2..], &[1.0, 0.25]);
        assert_eq!(&c2.row(&e, &rf, InstanceKind::Window, ctx).unwrap()[row.len() - 2..], &[0.0, 0.0]);
        // a window scores as in format 1; a sentence gets 0.5 + 2 * 0.25 more logit
        let (p1, pw) = (c1.prob(&e, &rf, "x").unwrap(), c2.prob(&e, &rf, "x").unwrap());
        assert!((p1 - pw).abs() < 1e-6);
        let ps = c2.prob_row(&row, "x");
        let logit = |p: f32| (p / (1.0 - p)).ln();
        assert!((logit(ps) - logit(pw) - 1.0).abs() < 1e-3, "{ps} {pw}");
        let mut w3 = w2.clone();
        w3.format = 3;
        assert!(Classifier::from_json(&serde_json::to_vec(&w3).unwrap()).unwrap_err().to_string().contains("format 3"));
        let mut w4 = w2;
        w4.instance_features[1] = "colour".into();
        assert!(Classifier::from_json(&serde_json::to_vec(&w4).unwrap()).unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }

    #[test]
    fn the_sparse_block_is_learned_too() {
        // the label sits only in sparse feature 3 (of 8); the dense feature is noise
        let mut x = Vec::new();
        let mut xs = Vec::new();
        let mut y = Vec::new();
        for i in 0..120 {
            let pos = i % 3 == 0;
            x.push(vec![((i * 53) % 100) as f32 / 50.0 - 1.0]);
            xs.push(if pos { vec![(3u32, 1.0f32)] } else { vec![((i % 2) as u32 * 5, 1.0f32)] });
            y.push(pos);
        }
        let (w, _) = train_sparse(&x, &xs, 8, &y, &TrainOptions::default());
        assert_eq!(w.len(), 9);
        assert!(w[1 + 3] > 1.0 && w[1 + 3] > 5.0 * w[0].abs(), "{w:?}");
    }

    #[test]
    fn training_separates_a_learnable_problem() {
        // label = first feature positive; second feature is noise
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let a = ((i * 37) % 100) as f32 / 50.0 - 1.0;
            let b = ((i * 91) % 100) as f32 / 50.0 - 1.0;
            x.push(vec![a, b]);
            y.push(a > 0.1);
        }
        let (w, b) = train(&x, &y, &TrainOptions::default());
        let scores: Vec<f32> = x.iter().map(|r| sigmoid(b + r[0] * w[0] + r[1] * w[1])).collect();
        let t = pick_threshold(&scores, &y, 0.05);
        let (tpr, fpr) = rates(&scores, &y, t);
        assert!(tpr > 0.9 && fpr <= 0.05, "tpr {tpr} fpr {fpr}");
        assert!(w[0].abs() > 3.0 * w[1].abs());
    }
}
