//! Choosing the next token from logits: greedy, or repetition penalty →
//! top-k → top-p → min-p → temperature → a seeded draw (llama.cpp's order).
//! Owns the choice only; never runs the model.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// Drop tokens below min_p × the best token's probability (0 = off).
    pub min_p: f32,
    /// Divide (or multiply, if negative) the logits of recent tokens (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, repeat_penalty: 1.0, ..Default::default() }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(LlmError::Sampling(m.to_string()));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad("temperature must be ≥ 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1)");
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad("repeat_penalty must be > 0");
        }
        Ok(())
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        let rng = StdRng::seed_from_u64(params.seed);
        Ok(Sampler { params, rng, candidates: Vec::new() })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token. `logits` is modified in place by the penalty;
    /// `history` holds the tokens so far (prompt and answer).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
            let start = history.len().saturating_sub(p.repeat_last_n);
            let mut seen = std::collections::HashSet::new();
            for &t in &history[start..] {
                if let Some(l) = logits.get_mut(t as usize) {
                    if seen.insert(t) {
                        *l = if *l > 0.0 { *l / p.repeat_penalty } else { *l * p.repeat_penalty };
                    }
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l)));
        if c.is_empty() {
            return argmax(logits);
        }
        c.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if p.top_k > 0 && p.top_k < c.len() {
            c.truncate(p.top_k);
        }
        // Probabilities at temperature 1 for the cut-offs (as llama.cpp).
        softmax_in_place(c, 1.0);
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = c.len();
            for (i, (_, pr)) in c.iter().enumerate() {
                cum += *pr;
                if cum >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            let floor = c[0].1 * p.min_p;
            let keep = c.iter().take_while(|(_, pr)| *pr >= floor).count().max(1);
            c.truncate(keep);
        }
        // Back to logits of the survivors, then temperature.
        for (id, pr) in c.iter_mut() {
            *pr = logits[*id as usize];
        }
        softmax_in_place(c, p.temperature);
        let r: f32 = self.rng.gen();
        let mut cum = 0.0;
        for (id, pr) in c.iter() {
            cum += pr;
            if r < cum {
                return *id;
            }
        }
        c.last().map(|(id, _)| *id).unwrap_or(0)
    }
}

fn softmax_in_place(c: &mut [(u32, f32)], temperature: f32) {
    let max = c.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in c.iter_mut() {
        x.1 = ((x.1 - max) / temperature).exp();
        sum += x.1;
    }
    for x in c.iter_mut() {
        x.1 /= sum;
    }
}

/// Index of the largest logit; the first one on ties (like llama.cpp).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37 % 101) as f32) / 10.0).collect()
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
        let mut l = logits();
        let best = argmax(&l);
        assert_eq!(s.sample(&mut l, &[]), best);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let run = |seed| {
            let mut s = Sampler::new(SamplingParams { temperature: 1.5, top_k: 0, top_p: 1.0, min_p: 0.0, seed, ..Default::default() }).unwrap();
            (0..64).map(|_| s.sample(&mut logits(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplingParams { temperature: 2.0, top_k: 1, ..Default::default() }).unwrap();
        let best = argmax(&logits());
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits(), &[]), best);
        }
    }

    #[test]
    fn top_p_and_min_p_restrict_to_likely_tokens() {
        let mut l = vec![0.0f32; 10];
        l[3] = 10.0;
        l[5] = 9.5;
        let mut s = Sampler::new(SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.9, min_p: 0.1, repeat_penalty: 1.0, ..Default::default() }).unwrap();
        for _ in 0..50 {
            let t = s.sample(&mut l.clone(), &[]);
            assert!(t == 3 || t == 5, "{t}");
        }
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut l = vec![0.0f32; 4];
        l[1] = 2.0;
        l[2] = 1.9;
        let mut s = Sampler::new(SamplingParams { temperature: 0.0, repeat_penalty: 1.5, repeat_last_n: 8, ..Default::default() }).unwrap();
        assert_eq!(s.sample(&mut l, &[1]), 2);
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(Sampler::new(SamplingParams { temperature: -1.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { top_p: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { min_p: 1.0, ..Default::default() }).is_err());
    }
}
