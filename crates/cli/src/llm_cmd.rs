//! `tresor generate | tokenize | embed`: thin front doors to tresor-llm.
//! Resolve the model through the catalogue, call the runtime, print.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::{Context, Result};
use clap::Args;
use tresor_llm::{ChatMessage, GenerateParams, LlmModel, LoadOptions, SamplingParams};
use tresor_models::{Catalog, Role};

use crate::ctx::Ctx;

#[derive(Args)]
pub struct GenerateArgs {
    /// The user's message (or, with --raw, the whole prompt).
    #[arg(long)]
    prompt: String,
    /// A system prompt (ignored with --raw). Default: Tresor's own short
    /// instruction; `--system ""` leaves the model's built-in default.
    #[arg(long)]
    system: Option<String>,
    /// Model id from the manifest, or a path to a GGUF file (default: the chat-small model).
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 is greedy decoding.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop before this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Send the prompt to the model as is (special tokens recognised), without the chat template.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object (text, tokens, timings) instead of streaming.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct TokenizeArgs {
    /// Model id or GGUF path (default: the chat-small model).
    #[arg(long)]
    model: Option<String>,
    /// Add BOS at the start.
    #[arg(long)]
    bos: bool,
    /// Print a JSON array of ids (the default output is also JSON).
    #[arg(long)]
    json: bool,
    text: String,
}

#[derive(Args)]
pub struct EmbedArgs {
    /// Embedding model id or folder (default: the embed model).
    #[arg(long)]
    model: Option<String>,
    /// Print a JSON array of vectors (the default output is also JSON).
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    texts: Vec<String>,
}

/// Loads the chat model `spec` (id or path), default role chat-small.
pub fn load_chat_model(ctx: &Ctx, spec: Option<&str>, role: Role) -> Result<(String, LlmModel)> {
    let catalog = Catalog::load(&ctx.models_dir).context("reading the model catalogue")?;
    let resolved = catalog.resolve(spec, role)?;
    let device = crate::ctx::device(ctx)?;
    let opts = LoadOptions { chat_template: resolved.chat_template.clone(), context_length: resolved.context_length };
    let model = LlmModel::load(&resolved.path, &device, &opts)
        .with_context(|| format!("loading model `{}`", resolved.id))?;
    Ok((resolved.id, model))
}

pub fn run_generate(args: GenerateArgs, ctx: &Ctx) -> Result<()> {
    let (id, mut model) = load_chat_model(ctx, args.model.as_deref(), Role::ChatSmall)?;
    let prompt = if args.raw {
        model.raw_prompt(&args.prompt)?
    } else {
        let mut messages = Vec::new();
        match args.system.as_deref() {
            None => messages.push(ChatMessage::system(tresor_llm::template::DEFAULT_SYSTEM_PROMPT)),
            Some("") => {}
            Some(s) => messages.push(ChatMessage::system(s)),
        }
        messages.push(ChatMessage::user(args.prompt.clone()));
        model.chat_prompt(&messages)?
    };
    let params = GenerateParams {
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            min_p: args.min_p,
            repeat_penalty: if args.temperature == 0.0 { 1.0 } else { args.repeat_penalty },
            repeat_last_n: 64,
            seed: args.seed,
        },
        stop: args.stop.clone(),
        cancel: None,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut on_text = |piece: &str| {
        if args.json {
            return ControlFlow::Continue(());
        }
        // A closed pipe (`| head`) ends generation instead of failing it.
        if out.write_all(piece.as_bytes()).and_then(|_| out.flush()).is_err() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    let generation = model.generate(&prompt, &params, &mut on_text).with_context(|| format!("generating with `{id}`"))?;
    if args.json {
        let mut v = serde_json::to_value(&generation)?;
        v["model"] = serde_json::Value::String(id);
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else {
        let _ = writeln!(out);
        tracing::info!(
            model = %id,
            prompt_tokens = generation.prompt_tokens,
            completion_tokens = generation.tokens.len(),
            ttft_ms = generation.ttft_ms,
            decode_tps = generation.decode_tps,
            finish = ?generation.finish,
            "generation done"
        );
    }
    Ok(())
}

pub fn run_tokenize(args: TokenizeArgs, ctx: &Ctx) -> Result<()> {
    let catalog = Catalog::load(&ctx.models_dir).context("reading the model catalogue")?;
    let resolved = catalog.resolve(args.model.as_deref(), Role::ChatSmall)?;
    let gguf = tresor_llm::gguf::GgufFile::open(&resolved.path)?;
    let tok = tresor_llm::GgufTokenizer::from_gguf(&gguf)?;
    let mut ids = tok.encode(&args.text, false)?;
    if args.bos {
        let bos = tok.bos_id().with_context(|| format!("model `{}` has no BOS token", resolved.id))?;
        ids.insert(0, bos);
    }
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

pub fn run_embed(args: EmbedArgs, ctx: &Ctx) -> Result<()> {
    let device = crate::ctx::device(ctx)?;
    // the engine's rule for which embedder serves (the same one ingest and ask use)
    let embedder = tresor_assistant::open::load_embedder(&ctx.models_dir, args.model.as_deref(), &device)?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&texts)?;
    println!("{}", serde_json::to_string(&vectors)?);
    Ok(())
}
