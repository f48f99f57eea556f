//! Peak resident memory of one model, phase by phase: the GGUF header and
//! tokenizer alone, then the weights, then a prefill of N tokens and 16
//! decode steps (what `tresor bench llm` runs, without the timing). Memory,
//! not speed: safe to run on a loaded machine.
//!
//!     cargo run -p tresor-llm --example load_rss -- MODEL.gguf [N]
//!
//! `TRESOR_KV=f32` / `TRESOR_MMAP=0` give the old KV cache / copied weights
//! for a before/after. Prints `VmHWM` (peak) and `VmRSS` after each phase,
//! and how much of `VmRSS` is anonymous (heap, KV cache, activations) and
//! file-backed (the binary, libraries and the mapped weights).

use std::path::PathBuf;

use tresor_llm::gguf::GgufFile;
use tresor_llm::{Device, GgufTokenizer, LlmModel, LoadOptions};

fn mem(what: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or("?".to_string(), |v| format!("{:.1} MB", v / 1024.0))
    };
    println!(
        "{what:<34} peak {:>10}   now {:>10}  (anonymous {:>10}, file-backed {:>10})",
        kb("VmHWM:"),
        kb("VmRSS:"),
        kb("RssAnon:"),
        kb("RssFile:")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: load_rss MODEL.gguf [N]")?);
    let n: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(512);
    mem("start");
    {
        let gguf = GgufFile::open(&path)?;
        mem("header + metadata");
        let tok = GgufTokenizer::from_gguf(&gguf)?;
        mem("+ tokenizer");
        drop((tok, gguf));
    }
    let opts = LoadOptions { context_length: Some(n + 32), ..Default::default() };
    let mut model = LlmModel::load(&path, &Device::Cpu, &opts)?;
    mem("model loaded");
    let vocab = model.tokenizer().vocab_size().max(2) as u64;
    let tokens: Vec<u32> = (0..n as u64).map(|i| (i * 2_654_435_761 % vocab) as u32).collect();
    model.forward(&tokens, 0)?;
    mem(&format!("+ prefill of {n}"));
    for i in 0..16 {
        model.forward(&tokens[i..i + 1], n + i)?;
    }
    mem("+ 16 decode steps");
    Ok(())
}
