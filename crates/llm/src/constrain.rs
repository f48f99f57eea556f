//! Constrained decoding's seam: a [`TokenConstraint`] says which tokens may
//! come next, takes each token generated, and says when its output is
//! complete ("accepting") or cannot go on ("finished").
//! [`crate::LlmModel::generate_constrained`] runs the generation loop under
//! one; [`crate::grammar::GrammarConstraint`] is the implementation from a
//! JSON Schema or a Lark grammar.
//!
//! The rule of how a mask meets the logits lives here ([`restrict_logits`]):
//! disallowed tokens get `-inf` before sampling, and the model's stop tokens
//! (EOS, end of turn) are allowed exactly when the constraint is accepting,
//! whatever the mask says of them.
//!
//! Owns: the trait, the mask type, applying a mask to logits. Never: runs a
//! model, samples, knows a grammar.

use crate::error::{GrammarError, Result};

/// A set of token ids allowed at one step (a bitset over the vocabulary;
/// ids past its length are not allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMask {
    words: Vec<u32>,
    len: usize,
}

impl TokenMask {
    /// No token allowed, over ids `0..len`.
    pub fn none(len: usize) -> Self {
        TokenMask { words: vec![0; len.div_ceil(32)], len }
    }

    /// Every token in `0..len` allowed.
    pub fn all(len: usize) -> Self {
        let mut m = TokenMask::none(len);
        for id in 0..len as u32 {
            m.allow(id);
        }
        m
    }

    /// From 32-bit words (bit `i % 32` of word `i / 32` is id `i`), as
    /// llguidance's masks hold them; bits past `len` are ignored.
    pub fn from_words(words: &[u32], len: usize) -> Self {
        let mut w = words.to_vec();
        w.resize(len.div_ceil(32), 0);
        if len % 32 != 0 {
            if let Some(last) = w.last_mut() {
                *last &= (1u32 << (len % 32)) - 1;
            }
        }
        TokenMask { words: w, len }
    }

    pub fn allow(&mut self, id: u32) {
        if (id as usize) < self.len {
            self.words[id as usize / 32] |= 1 << (id % 32);
        }
    }

    pub fn disallow(&mut self, id: u32) {
        if (id as usize) < self.len {
            self.words[id as usize / 32] &= !(1 << (id % 32));
        }
    }

    pub fn allows(&self, id: u32) -> bool {
        (id as usize) < self.len && self.words[id as usize / 32] & (1 << (id % 32)) != 0
    }

    /// Ids the mask covers (allowed or not).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many ids are allowed.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The allowed ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len as u32).filter(|&id| self.allows(id))
    }
}

/// Restricts what a model may generate, one token at a time.
///
/// The generation loop asks [`forced`](Self::forced) first; when nothing is
/// forced it asks [`allowed`](Self::allowed) and [`is_accepting`](Self::is_accepting),
/// samples under that mask, and hands the token to [`commit`](Self::commit)
/// (forced tokens are committed the same way). It stops when
/// [`is_finished`](Self::is_finished) says nothing more may follow.
pub trait TokenConstraint {
    /// The tokens allowed next. The model's stop tokens are decided by
    /// [`is_accepting`](Self::is_accepting), not by this mask.
    fn allowed(&mut self) -> Result<TokenMask>;
    /// Takes the token generated (sampled or forced). A token the constraint
    /// does not allow is an error.
    fn commit(&mut self, token: u32) -> Result<()>;
    /// Whether the output so far is complete: the model may end its turn now.
    fn is_accepting(&mut self) -> Result<bool>;
    /// Whether nothing may follow (generation stops here).
    fn is_finished(&self) -> bool;
    /// Tokens the constraint forces next, in order (empty when the model has
    /// a choice). The loop runs them through the model without sampling.
    fn forced(&mut self) -> Result<Vec<u32>> {
        Ok(Vec::new())
    }
}

/// What the loop does after [`restrict_logits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Some token is allowed: sample from the restricted logits.
    Sample,
    /// The constraint is complete and allows nothing but ending: stop (EOS).
    End,
}

/// Applies `constraint`'s mask to `logits` in place: every token it does not
/// allow becomes `-inf`; each of `stop_ids` keeps its logit exactly when the
/// constraint is accepting. An empty choice on a non-accepting constraint
/// (no way to complete the output) is [`GrammarError::DeadEnd`].
pub fn restrict_logits(
    constraint: &mut dyn TokenConstraint,
    logits: &mut [f32],
    stop_ids: impl IntoIterator<Item = u32>,
) -> Result<Step> {
    if constraint.is_finished() {
        return Ok(Step::End);
    }
    let mask = constraint.allowed()?;
    let accepting = constraint.is_accepting()?;
    let stops: Vec<(u32, f32)> =
        stop_ids.into_iter().filter_map(|id| logits.get(id as usize).map(|&l| (id, l))).collect();
    let mut open = 0usize;
    for (id, l) in logits.iter_mut().enumerate() {
        if mask.allows(id as u32) && *l != f32::NEG_INFINITY {
            open += 1;
        } else {
            *l = f32::NEG_INFINITY;
        }
    }
    for &(id, l) in &stops {
        let slot = &mut logits[id as usize];
        if *slot != f32::NEG_INFINITY {
            open -= 1; // counted above as text; it is a stop token
        }
        *slot = if accepting { l } else { f32::NEG_INFINITY };
    }
    match (open, accepting) {
        (0, true) => {
            // Only ending is left: make sure the sampler cannot pick a
            // masked token, and tell the loop to stop.
            Ok(Step::End)
        }
        (0, false) => Err(GrammarError::DeadEnd.into()),
        _ => Ok(Step::Sample),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allows a fixed sequence of tokens, one per step.
    struct Sequence {
        want: Vec<u32>,
        at: usize,
        vocab: usize,
    }

    impl TokenConstraint for Sequence {
        fn allowed(&mut self) -> Result<TokenMask> {
            let mut m = TokenMask::none(self.vocab);
            if let Some(&t) = self.want.get(self.at) {
                m.allow(t);
            }
            Ok(m)
        }
        fn commit(&mut self, token: u32) -> Result<()> {
            if self.want.get(self.at) != Some(&token) {
                return Err(GrammarError::Rejected(format!("token {token}")).into());
            }
            self.at += 1;
            Ok(())
        }
        fn is_accepting(&mut self) -> Result<bool> {
            Ok(self.at == self.want.len())
        }
        fn is_finished(&self) -> bool {
            false
        }
    }

    #[test]
    fn mask_words_roundtrip_and_ignore_bits_past_len() {
        let mut m = TokenMask::none(70);
        for id in [0, 31, 32, 69, 70, 1000] {
            m.allow(id);
        }
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 31, 32, 69]);
        assert_eq!(m.count(), 4);
        let again = TokenMask::from_words(&[u32::MAX, u32::MAX, u32::MAX], 70);
        assert_eq!(again.count(), 70);
        assert!(!again.allows(70));
        m.disallow(31);
        assert!(!m.allows(31));
        assert_eq!(TokenMask::all(33).count(), 33);
    }

    #[test]
    fn disallowed_tokens_get_minus_infinity_and_stops_follow_acceptance() {
        let stop = 9u32;
        let mut c = Sequence { want: vec![3, 5], at: 0, vocab: 10 };
        let mut logits = vec![1.0f32; 12]; // longer than the vocabulary: the tail is masked too
        assert_eq!(restrict_logits(&mut c, &mut logits, [stop]).unwrap(), Step::Sample);
        let open: Vec<usize> = logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, _)| i).collect();
        assert_eq!(open, vec![3], "only the grammar's token; the stop token is closed while not accepting");
        c.commit(3).unwrap();
        c.commit(5).unwrap();
        let mut logits = vec![1.0f32; 12];
        logits[stop as usize] = 7.5;
        // accepting and nothing else allowed: the loop ends, EOS keeps its logit
        assert_eq!(restrict_logits(&mut c, &mut logits, [stop]).unwrap(), Step::End);
        assert_eq!(logits[stop as usize], 7.5);
        assert!(logits.iter().enumerate().all(|(i, l)| i == stop as usize || *l == f32::NEG_INFINITY));
    }

    #[test]
    fn stop_token_allowed_beside_text_when_accepting() {
        struct Open;
        impl TokenConstraint for Open {
            fn allowed(&mut self) -> Result<TokenMask> {
                let mut m = TokenMask::none(4);
                m.allow(1);
                Ok(m)
            }
            fn commit(&mut self, _: u32) -> Result<()> {
                Ok(())
            }
            fn is_accepting(&mut self) -> Result<bool> {
                Ok(true)
            }
            fn is_finished(&self) -> bool {
                false
            }
        }
        let mut logits = vec![0.5f32; 4];
        assert_eq!(restrict_logits(&mut Open, &mut logits, [3]).unwrap(), Step::Sample);
        assert_eq!(logits, vec![f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY, 0.5]);
    }

    #[test]
    fn no_way_forward_is_a_typed_error() {
        let mut c = Sequence { want: vec![20], at: 0, vocab: 30 };
        let mut logits = vec![0.0f32; 10]; // the only allowed id has no logit
        let err = restrict_logits(&mut c, &mut logits, [1]).unwrap_err();
        assert!(matches!(err, crate::LlmError::Grammar(GrammarError::DeadEnd)), "{err}");
    }
}
