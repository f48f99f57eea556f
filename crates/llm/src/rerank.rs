//! The cross-encoder reranker: scores (query, passage) pairs jointly with a
//! BERT encoder plus classification head (the layout of
//! ms-marco-MiniLM-L-6-v2: `bert.*`, `bert.pooler.dense`, `classifier`) or an
//! XLM-RoBERTa one (bge-reranker: `roberta.*`, `classifier.dense`,
//! `classifier.out_proj`). Real rerankers arrive by `tresor models pull`.
//! Owns scoring only; never retrieves or reorders results.

use std::path::Path;

use candle_core::Device;
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use candle_transformers::models::xlm_roberta::{Config as XlmConfig, XLMRobertaForSequenceClassification};
use tokenizers::Tokenizer;

use crate::embed::{batch_tensors, ModelFiles};
use crate::error::{LlmError, Result};

const BATCH: usize = 16;

enum Head {
    Bert { model: BertModel, pooler: Linear, classifier: Linear },
    XlmRoberta(XLMRobertaForSequenceClassification),
}

pub struct Reranker {
    head: Head,
    tokenizer: Tokenizer,
    device: Device,
    num_labels: usize,
}

impl Reranker {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let files = ModelFiles::open(dir)?;
        let raw: serde_json::Value = files.config()?;
        let archs: Vec<String> = raw
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let num_labels = raw
            .get("id2label")
            .and_then(|m| m.as_object())
            .map(|m| m.len())
            .or_else(|| raw.get("num_labels").and_then(|n| n.as_u64()).map(|n| n as usize))
            .unwrap_or(1)
            .max(1);
        let max_pos = raw.get("max_position_embeddings").and_then(|n| n.as_u64()).unwrap_or(512) as usize;
        let vb: VarBuilder = files.var_builder(device)?;
        let head = if archs.iter().any(|a| a == "XLMRobertaForSequenceClassification") {
            let cfg: XlmConfig = files.config()?;
            Head::XlmRoberta(
                XLMRobertaForSequenceClassification::new(num_labels, &cfg, vb)
                    .map_err(|e| files.err(format!("weights do not match an XLM-RoBERTa classifier: {e}")))?,
            )
        } else if archs.iter().any(|a| a == "BertForSequenceClassification") {
            let cfg: BertConfig = files.config()?;
            let h = cfg.hidden_size;
            let load = || -> candle_core::Result<Head> {
                Ok(Head::Bert {
                    model: BertModel::load(vb.clone(), &cfg)?,
                    pooler: candle_nn::linear(h, h, vb.pp("bert.pooler.dense"))?,
                    classifier: candle_nn::linear(h, num_labels, vb.pp("classifier"))?,
                })
            };
            load().map_err(|e| files.err(format!("weights do not match a BERT classifier: {e}")))?
        } else {
            return Err(files.err(format!(
                "not a cross-encoder (architectures {archs:?}; expected BertForSequenceClassification or XLMRobertaForSequenceClassification)"
            )));
        };
        // XLM-R positions start after the padding index.
        let max_tokens = if matches!(head, Head::XlmRoberta(_)) { max_pos.saturating_sub(2) } else { max_pos };
        let tokenizer = files.tokenizer(max_tokens.min(512))?;
        Ok(Reranker { head, tokenizer, device: device.clone(), num_labels })
    }

    /// Relevance of each passage to `query`; higher is more relevant.
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(passages.len());
        for batch in passages.chunks(BATCH) {
            let pairs: Vec<(String, String)> = batch.iter().map(|p| (query.to_string(), p.to_string())).collect();
            let enc = self
                .tokenizer
                .encode_batch(pairs, true)
                .map_err(|e| LlmError::Inference(format!("reranker tokenization failed: {e}")))?;
            let (ids, types, mask) = batch_tensors(&enc, &self.device)?;
            let logits = match &self.head {
                Head::Bert { model, pooler, classifier } => {
                    let hidden = model.forward(&ids, &types, Some(&mask))?;
                    let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
                    classifier.forward(&pooler.forward(&cls)?.tanh()?)?
                }
                Head::XlmRoberta(m) => m.forward(&ids, &mask, &types)?,
            };
            // One label: its logit. Several: the last (the "relevant" class).
            let col = logits.narrow(1, self.num_labels - 1, 1)?.squeeze(1)?;
            out.extend(col.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::tiny;

    #[test]
    fn tiny_cross_encoder_scores_pairs_independently_of_batching() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write(dir.path(), 7, true);
        let r = Reranker::load(dir.path(), &Device::Cpu).unwrap();
        let passages = ["the cat sits on the mat .", "stock market fell .", "dog runs"];
        let scores = r.score("what is a cat ?", &passages).unwrap();
        assert_eq!(scores.len(), 3);
        assert!(scores.iter().all(|s| s.is_finite()));
        for (p, s) in passages.iter().zip(&scores) {
            let alone = r.score("what is a cat ?", &[p]).unwrap()[0];
            assert!((alone - s).abs() < 1e-5, "batching changed the score of {p:?}: {alone} vs {s}");
        }
        assert!(scores[0] != scores[1] || scores[1] != scores[2]);
        // Deterministic.
        assert_eq!(scores, r.score("what is a cat ?", &passages).unwrap());
    }

    #[test]
    fn an_embedding_model_is_not_a_reranker() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write(dir.path(), 7, false);
        let err = Reranker::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("not a cross-encoder"), "{err}");
    }
}
