//! Loader coverage for what we cannot ship: a Llama 3 style model (byte-level
//! BPE with the `llama-bpe` pre-tokenizer, the llama3 chat template, BOS
//! added) in Q8_0 and Q4_K, written by the test itself.

use std::ops::ControlFlow;

use candle_core::quantized::GgmlDType;
use tresor_llm::synthetic::{write_llama_gguf, LlamaShape};
use tresor_llm::{ChatMessage, Device, GenerateParams, LlmModel, LoadOptions, SamplingParams};

fn roundtrip(dtype: GgmlDType) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_llama_gguf(&path, LlamaShape::TINY, dtype, 11).unwrap();
    let mut m = LlmModel::load(&path, &Device::Cpu, &LoadOptions::default()).unwrap();
    assert_eq!(m.template().name(), "llama3");
    assert_eq!(m.context_length(), 256);

    let tok = m.tokenizer();
    let bos = tok.bos_id().unwrap();
    // Merges apply ("Ġthe" is one token), specials in text are single ids, BOS is added.
    let ids = tok.encode("the cat<|eot_id|>", true).unwrap();
    assert_eq!(ids[0], bos);
    assert!(ids.contains(&tok.token_to_id("<|eot_id|>").unwrap()));
    assert_eq!(tok.encode(" the", false).unwrap(), vec![tok.token_to_id("Ġthe").unwrap()]);
    // Llama 3 splits digits in groups of three.
    let digits = tok.encode("1234567", false).unwrap();
    assert_eq!(tok.decode(&digits, false).unwrap(), "1234567");
    assert_eq!(digits.len(), 7, "no merges for digits: one byte token each");
    // Round trip of arbitrary UTF-8 through byte tokens.
    let text = "Grüße 👋 — naïve\n\tcode";
    assert_eq!(tok.decode(&tok.encode(text, false).unwrap(), false).unwrap(), text);

    let prompt = m.chat_prompt(&[ChatMessage::system("S"), ChatMessage::user("Hi")]).unwrap();
    assert_eq!(prompt.iter().filter(|&&t| t == bos).count(), 1, "exactly one BOS");
    let greedy = GenerateParams { max_tokens: 6, sampling: SamplingParams::greedy(), ..Default::default() };
    let a = m.generate(&prompt, &greedy, &mut |_| ControlFlow::Continue(())).unwrap();
    m.reset();
    let b = m.generate(&prompt, &greedy, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert!(!a.tokens.is_empty());
}

#[test]
fn synthetic_llama3_q8_0() {
    roundtrip(GgmlDType::Q8_0);
}

#[test]
fn synthetic_llama3_q4_k() {
    roundtrip(GgmlDType::Q4K);
}

/// An untied output projection (`output.weight`, as Llama-3.1-8B has) is
/// loaded and used: the same weights with and without it give other logits,
/// and the untied model generates.
#[test]
fn synthetic_llama3_untied_output() {
    let dir = tempfile::tempdir().unwrap();
    let logits = |tied: bool| {
        let path = dir.path().join(format!("tiny-{tied}.gguf"));
        write_llama_gguf(&path, LlamaShape { tied, ..LlamaShape::TINY }, GgmlDType::Q8_0, 5).unwrap();
        let mut m = LlmModel::load(&path, &Device::Cpu, &LoadOptions::default()).unwrap();
        let prompt = m.chat_prompt(&[ChatMessage::user("the cat sat")]).unwrap();
        let out = m.forward(&prompt, 0).unwrap();
        m.reset();
        let greedy = GenerateParams { max_tokens: 4, sampling: SamplingParams::greedy(), ..Default::default() };
        assert!(!m.generate(&prompt, &greedy, &mut |_| ControlFlow::Continue(())).unwrap().tokens.is_empty());
        out
    };
    let (tied, untied) = (logits(true), logits(false));
    assert_eq!(tied.len(), untied.len());
    assert!(untied.iter().all(|v| v.is_finite()));
    let diff = tied.iter().zip(&untied).filter(|(a, b)| a != b).count();
    assert!(diff > tied.len() / 2, "output.weight is not used: {diff} of {} logits differ", tied.len());
}
