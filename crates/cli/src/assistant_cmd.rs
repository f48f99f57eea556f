//! `tresor ask | chat | eval answers`: thin front doors to tresor-assistant.
//! Flags in, one call into the engine, text or `--json` out.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_assistant::library::kb_names;
use tresor_assistant::store::Feedback;
use tresor_assistant::{scratch, ActionStatus, Answer, AskRequest, Assistant, AssistantConfig, EnginePaths};
use tresor_bench::answer_eval as eval;

use crate::ctx::Ctx;

#[derive(Args, Debug)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Knowledge base to answer from (default: `default` when it exists; without one the model answers alone, ungrounded).
    #[arg(long)]
    pub kb: Option<String>,
    /// Print one JSON object (answer, sources, grounded, refused, model, cache_hit, route, timings, tokens, trace).
    #[arg(long)]
    pub json: bool,
    /// A chat model id or GGUF path instead of the routed one.
    #[arg(long)]
    pub model: Option<String>,
    /// Neither read nor write the semantic cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Continue a stored conversation (its `conversation_id`; see `tresor chat`). Without it the question starts a
    /// conversation of its own.
    #[arg(long = "conversation", alias = "thread")]
    pub conversation: Option<i64>,
    /// Print the pipeline trace (passages, evidence, sentence support) to stderr.
    #[arg(long)]
    pub trace: bool,
    /// Run side-effect tools (booking, tickets) without stopping for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// Knowledge base to answer from (default: `default` when it exists).
    #[arg(long)]
    pub kb: Option<String>,
    /// A chat model id or GGUF path instead of the routed one.
    #[arg(long)]
    pub model: Option<String>,
    /// Continue a stored conversation (thread).
    #[arg(long, alias = "conversation")]
    pub thread: Option<i64>,
}

#[derive(Args, Debug)]
pub struct EvalAnswersArgs {
    /// Gold set (JSONL: question, answers, source_file, answerable).
    #[arg(long)]
    pub goldset: PathBuf,
    /// Folder of the gold set's documents (ingested into a temporary knowledge base).
    #[arg(long)]
    pub docs: PathBuf,
    /// Also ask the answerable questions against this unrelated folder (refusal rate on an unrelated knowledge base).
    #[arg(long)]
    pub unrelated_docs: Option<PathBuf>,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// An assistant.toml to answer with instead of the defaults (to compare settings on the same set).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Which half of the gold set, split by document: `fit` (the answer choice's weights were
    /// fitted on it), `held-out` (report these) or `all`.
    #[arg(long, default_value = "all")]
    pub split: eval::Split,
    /// Instead of answering: fit the answer-sentence choice's weights on the fit half and report
    /// them on both halves, per language (no model generates; see `tresor_assistant::choice`).
    #[arg(long)]
    pub fit_choice: bool,
    /// With `--fit-choice`: a second gold set (another language) fitted together with the first,
    /// its documents in `--extra-docs` (e.g. eval/answers_de/goldset.jsonl on assets/sample-kb).
    #[arg(long, requires = "extra_docs")]
    pub extra_goldset: Option<PathBuf>,
    #[arg(long)]
    pub extra_docs: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// `--config FILE`: the engine's settings from that assistant.toml.
fn apply_config(assistant: &mut Assistant, file: Option<&PathBuf>) -> Result<()> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("--config {}", f.display()))?;
        *assistant.config_mut() = AssistantConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("--config {}: {e}", f.display()))?;
    }
    Ok(())
}

fn device(ctx: &Ctx) -> Result<tresor_llm::Device> {
    crate::ctx::device(ctx).with_context(|| format!("device `{}`", ctx.device))
}

/// The engine for this data dir (encrypted with `key`) and models dir.
pub fn build_assistant(ctx: &Ctx, data_dir: &std::path::Path, key: &tresor_guard::crypto::WorkspaceKey) -> Result<Assistant> {
    let paths = EnginePaths::new(data_dir, &ctx.models_dir, &ctx.workspace);
    Ok(Assistant::open(&paths, key, device(ctx)?)?)
}

/// `--kb NAME` must exist; without it, `default` when it exists, else none.
pub fn pick_kb(ctx: &Ctx, kb: Option<&str>) -> Result<Option<String>> {
    Ok(tresor_assistant::library::pick_kb(&ctx.data_dir, kb)?)
}

pub fn print_sources(a: &Answer) {
    if a.sources.is_empty() {
        return;
    }
    println!("\nSources:");
    for s in &a.sources {
        let page = s.page.map(|p| format!(", p. {p}")).unwrap_or_default();
        let head = if s.heading.is_empty() { String::new() } else { format!(" › {}", s.heading) };
        println!("[{}] {}{} — {}{}", s.n, s.source, page, s.title, head);
        println!("    {}", s.snippet);
    }
}

fn footer(a: &Answer) -> String {
    let mut s = format!("{} · {} · ttft {:.0} ms · total {:.0} ms", a.route, a.model, a.timings.ttft_ms, a.timings.total_ms);
    // the first visible token and the model's own first token differ when validation dropped text
    if a.timings.model_first_token_ms > 0.0 && (a.timings.model_first_token_ms - a.timings.ttft_ms).abs() >= 1.0 {
        s.push_str(&format!(" · model's first token {:.0} ms", a.timings.model_first_token_ms));
    }
    if a.cache_hit {
        s.push_str(" · cache hit");
    }
    if a.trace.extractive {
        s.push_str(" · extractive");
    }
    s
}

pub fn run_ask(args: AskArgs, ctx: &Ctx) -> Result<()> {
    let kb = pick_kb(ctx, args.kb.as_deref())?;
    if kb.is_none() && !args.json {
        eprintln!("note: no knowledge base (ingest documents with `tresor ingest PATH`); the model answers on its own, without sources");
    }
    let mut assistant = build_assistant(ctx, &ctx.data_dir, &crate::key_cmd::workspace_key(ctx)?)?;
    // a one-off question is a conversation of one message: it gets a thread, so feedback and handoffs can name it
    let thread = match args.conversation {
        Some(t) => {
            assistant.threads().thread(t)?;
            t
        }
        None => assistant.threads().create_thread(args.question.trim(), kb.as_deref())?,
    };
    let req = AskRequest { question: args.question, kb, thread: Some(thread), model: args.model, no_cache: args.no_cache, now: ctx.now, yes: args.yes, ..Default::default() };
    let stdout = std::io::stdout();
    let json = args.json;
    let res = assistant.answer(&req, &mut |piece| {
        if !json {
            let mut out = stdout.lock();
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
    });
    let ans = match res {
        Ok(a) => a,
        Err(e) => {
            if args.conversation.is_none() {
                // the question was never answered: its new conversation goes again
                let _ = assistant.threads().delete_thread(thread);
            }
            return Err(e.into());
        }
    };
    if args.trace {
        eprintln!("{}", serde_json::to_string_pretty(&ans.trace)?);
    }
    if json {
        // `conversation_id` (the thread) and `message_id` are the contract for `tresor feedback` / `tresor handoff`
        let mut v = serde_json::to_value(&ans)?;
        v["conversation_id"] = serde_json::json!(ans.thread_id);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!();
        print_sources(&ans);
        for act in ans.actions.iter().filter(|x| x.status == ActionStatus::NeedsConfirmation) {
            eprintln!("confirm with: tresor actions confirm {}   (or: tresor actions decline {})", act.id, act.id);
        }
        eprintln!("({})", footer(&ans));
    }
    Ok(())
}

const CHAT_HELP: &str = "commands: /sources (sources of the last answer), /new (new conversation), /kb [NAME] (list or switch knowledge bases), \
/model [ID|auto] (show or pick the chat model), /rate up|down|1-5 [comment] (rate the last answer), /human [reason] (hand the conversation to a person), /help, /quit";

pub fn run_chat(args: ChatArgs, ctx: &Ctx) -> Result<()> {
    let mut kb = pick_kb(ctx, args.kb.as_deref())?;
    let mut assistant = build_assistant(ctx, &ctx.data_dir, &crate::key_cmd::workspace_key(ctx)?)?;
    let mut model = args.model;
    let mut thread = args.thread;
    if let Some(t) = thread {
        assistant.threads().thread(t)?;
    }
    let mut last: Option<Answer> = None;
    let tty = std::io::stdin().is_terminal();
    println!(
        "Tresor chat · knowledge base: {} · {}",
        kb.as_deref().unwrap_or("none (ungrounded)"),
        if tty { "/help for commands" } else { "reading stdin" }
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            print!("> ");
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(cmd) = line.strip_prefix('/') {
            let (name, rest) = cmd.split_once(' ').map(|(a, b)| (a, b.trim())).unwrap_or((cmd, ""));
            match name {
                "quit" | "exit" | "q" => break,
                "human" | "handoff" => match thread {
                    Some(t) => match assistant.handoff(t, (!rest.is_empty()).then_some(rest)) {
                        Ok(r) => print_receipt(&r),
                        Err(e) => println!("error: {e:#}"),
                    },
                    None => println!("(no conversation yet)"),
                },
                "help" => println!("{CHAT_HELP}"),
                "sources" => match &last {
                    Some(a) if !a.sources.is_empty() => print_sources(a),
                    Some(_) => println!("(the last answer has no sources)"),
                    None => println!("(no answer yet)"),
                },
                "new" => {
                    thread = None;
                    last = None;
                    println!("(new conversation)");
                }
                "kb" if rest.is_empty() => {
                    let names = kb_names(&ctx.data_dir);
                    println!("knowledge bases: {}", if names.is_empty() { "(none)".to_string() } else { names.join(", ") });
                    println!("current: {}", kb.as_deref().unwrap_or("none"));
                }
                "kb" => match pick_kb(ctx, Some(rest)) {
                    Ok(k) => {
                        kb = k;
                        thread = None;
                        println!("(knowledge base: {rest}; new conversation)");
                    }
                    Err(e) => println!("error: {e:#}"),
                },
                "model" if rest.is_empty() => {
                    println!("current: {}", model.as_deref().unwrap_or("auto (routed)"));
                    for (id, role) in assistant.available_models() {
                        println!("  {id} ({role})");
                    }
                }
                "model" => {
                    model = if rest == "auto" { None } else { Some(rest.to_string()) };
                    println!("(model: {rest})");
                }
                "rate" => match rate(&assistant, &last, rest) {
                    Ok(out) => {
                        println!("(thanks for the feedback)");
                        if let Some(offer) = out.offer {
                            println!("  {offer}   (/human)");
                        }
                    }
                    Err(e) => println!("error: {e:#}"),
                },
                _ => println!("unknown command /{name}; {CHAT_HELP}"),
            }
            continue;
        }
        let t = match thread {
            Some(t) => t,
            None => {
                let t = assistant.threads().create_thread(line, kb.as_deref())?;
                thread = Some(t);
                t
            }
        };
        let req = AskRequest { question: line.to_string(), kb: kb.clone(), thread: Some(t), model: model.clone(), now: ctx.now, ..Default::default() };
        let res = assistant.answer(&req, &mut |piece| {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        });
        match res {
            Ok(a) => {
                println!();
                if !a.sources.is_empty() {
                    let cited: Vec<String> = a.sources.iter().map(|s| format!("[{}] {}", s.n, s.source)).collect();
                    println!("  {}", cited.join("  "));
                }
                eprintln!("  ({})", footer(&a));
                // a proposed side effect runs only on the user's yes
                for act in a.actions.iter().filter(|x| x.status == ActionStatus::NeedsConfirmation) {
                    print!("  run {} with {}? [y/N] ", act.tool, act.arguments);
                    std::io::stdout().flush()?;
                    let answer = lines.next().transpose()?.unwrap_or_default();
                    let yes = matches!(answer.trim().to_lowercase().as_str(), "y" | "yes" | "j" | "ja");
                    let r = if yes { assistant.confirm_action(&act.id, ctx.now, None) } else { assistant.decline_action(&act.id, None) };
                    match r {
                        Ok(r) => println!("{}", r.message),
                        Err(e) => println!("error: {e:#}"),
                    }
                }
                if let Some(r) = &a.handoff {
                    print_receipt(r);
                }
                if a.offer_handoff {
                    println!("  {}", tresor_assistant::handoff::offer_text(&a.lang));
                }
                if a.ask_csat {
                    // "thanks, bye": the answer asked the question; the next line is the rating
                    csat_prompt(&assistant, &mut lines, t, None)?;
                    thread = None;
                }
                last = Some(a);
            }
            Err(e) => println!("error: {e:#}"),
        }
    }
    // Ctrl-D or /quit: the conversation ends here; the engine decides whether to ask for CSAT
    if let Some(t) = thread {
        match assistant.end_conversation(t, Some("closed")) {
            Ok(end) if end.ask_csat => csat_prompt(&assistant, &mut lines, t, end.question.as_deref())?,
            Ok(_) => {}
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    Ok(())
}

/// Where the ticket went and what happens next.
fn print_receipt(r: &tresor_assistant::HandoffReceipt) {
    match (&r.delivered_to, &r.error) {
        (Some(to), _) => println!("  (ticket {} → {to})", r.ticket_id),
        (_, Some(e)) => println!("  (ticket {} not delivered: {e}; it stays in the outbox: tresor handoff --retry)", r.ticket_id),
        _ => println!("  (ticket {} kept in the local outbox)", r.ticket_id),
    }
}

/// Asks for a 1-5 rating (and an optional comment) once; an empty line or the end of input skips it.
fn csat_prompt(assistant: &Assistant, lines: &mut dyn Iterator<Item = std::io::Result<String>>, thread: i64, question: Option<&str>) -> Result<()> {
    if let Some(q) = question {
        println!("{q}");
    }
    print!("  rating 1-5 [comment] (Enter to skip): ");
    std::io::stdout().flush()?;
    let Some(line) = lines.next().transpose()? else {
        println!();
        return Ok(());
    };
    let line = line.trim();
    if line.is_empty() {
        return Ok(());
    }
    let (n, comment) = line.split_once(' ').map(|(a, b)| (a, Some(b.trim().to_string()))).unwrap_or((line, None));
    match n.parse::<u8>() {
        Ok(c) => match assistant.feedback(&Feedback { thread_id: Some(thread), csat: Some(c), comment, ..Default::default() }) {
            Ok(_) => println!("  (thanks for the rating)"),
            Err(e) => println!("error: {e:#}"),
        },
        Err(_) => println!("  (not a rating 1-5; skipped)"),
    }
    Ok(())
}

fn rate(assistant: &Assistant, last: &Option<Answer>, rest: &str) -> Result<tresor_assistant::FeedbackOutcome> {
    let Some(a) = last else { bail!("no answer to rate yet") };
    let (what, comment) = rest.split_once(' ').map(|(a, b)| (a, Some(b.trim().to_string()))).unwrap_or((rest, None));
    let mut f = Feedback { message_id: a.message_id, thread_id: a.thread_id, comment, ..Default::default() };
    match what {
        "up" | "+" | "+1" | "👍" => f.thumbs = Some(1),
        "down" | "-" | "-1" | "👎" => f.thumbs = Some(-1),
        n => f.csat = Some(n.parse().map_err(|_| anyhow::anyhow!("usage: /rate up|down|1-5 [comment]"))?),
    }
    Ok(assistant.feedback(&f)?)
}

pub fn run_eval_answers(args: EvalAnswersArgs, ctx: &Ctx) -> Result<()> {
    let all = tresor_bench::retrieval_eval::load_goldset(&args.goldset)?;
    // the halves are fixed on the whole set (by document), then the limit applies
    let mut gold = if args.fit_choice { all } else { eval::split(&all, args.split) };
    if let Some(n) = args.limit {
        gold.truncate(n);
    }
    if !args.docs.is_dir() {
        bail!("--docs {}: not a folder", args.docs.display());
    }
    if let Some(u) = &args.unrelated_docs {
        if !u.is_dir() {
            bail!("--unrelated-docs {}: not a folder", u.display());
        }
    }
    let (_tmp, data) = scratch::scratch_dir()?;
    // a scratch data dir, removed afterwards: a key that lives only in memory
    let mut assistant = build_assistant(ctx, &data, &tresor_guard::crypto::WorkspaceKey::ephemeral())?;
    apply_config(&mut assistant, args.config.as_ref())?;
    let rep = scratch::ingest_dir(&data, assistant.key(), "gold", &args.docs, assistant.embedder())?;
    for f in &rep.failed {
        eprintln!("failed {}: {}", f.source, f.reason);
    }
    if let Some(u) = &args.unrelated_docs {
        scratch::ingest_dir(&data, assistant.key(), "unrelated", u, assistant.embedder())?;
    }
    let verbose = !args.json;
    if args.fit_choice {
        let mut qs = tresor_bench::answer_choice::collect(&mut assistant, "gold", &gold, &mut |l| {
            if verbose {
                eprintln!("{l}");
            }
        })?;
        if let (Some(g), Some(d)) = (&args.extra_goldset, &args.extra_docs) {
            let extra = tresor_bench::retrieval_eval::load_goldset(g)?;
            if !d.is_dir() {
                bail!("--extra-docs {}: not a folder", d.display());
            }
            scratch::ingest_dir(&data, assistant.key(), "extra", d, assistant.embedder())?;
            qs.extend(tresor_bench::answer_choice::collect(&mut assistant, "extra", &extra, &mut |l| {
                if verbose {
                    eprintln!("{l}");
                }
            })?);
        }
        let r = tresor_bench::answer_choice::fit(&qs, assistant.config().extractive_sentences);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", tresor_bench::answer_choice::table(&r));
        }
        return Ok(());
    }
    let mut report = eval::evaluate(&mut assistant, "gold", &gold, args.unrelated_docs.as_ref().map(|_| "unrelated"), &mut |r| {
        if verbose {
            eprintln!(
                "{:<14} {:<12} f1 {:.2} {} {:>6.0} ms {:<10} {}",
                r.id,
                r.kind,
                r.f1,
                if r.refused { "refused " } else if r.extractive { "extract " } else { "answered" },
                r.total_ms,
                r.miss.map(|m| m.as_str()).unwrap_or("-"),
                r.answer.chars().take(90).collect::<String>().replace('\n', " ")
            );
        }
    })?;
    report.split = args.split.as_str().into();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", eval::table(&report));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchAnswersArgs {
    /// Gold set whose answerable questions are asked (JSONL, e.g. ../shared/eval/rag_goldset_dev/goldset.jsonl).
    #[arg(long)]
    pub goldset: PathBuf,
    /// Folder of the gold set's documents (ingested into a temporary knowledge base).
    #[arg(long)]
    pub docs: PathBuf,
    /// Only the first N answerable questions.
    #[arg(long)]
    pub questions: Option<usize>,
    /// Context budgets (tokens) to measure TTFT at.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,1500")]
    pub budgets: Vec<usize>,
    /// An assistant.toml to answer with instead of the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Don't run llama.cpp's llama-bench for the prefill comparison (default: run it when found).
    #[arg(long)]
    pub no_peer: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run_bench_answers(args: BenchAnswersArgs, ctx: &Ctx) -> Result<()> {
    let gold = tresor_bench::retrieval_eval::load_goldset(&args.goldset)?;
    let mut qs: Vec<String> = gold.into_iter().filter(|g| g.answerable).map(|g| g.question).collect();
    if let Some(n) = args.questions {
        qs.truncate(n);
    }
    if !args.docs.is_dir() {
        bail!("--docs {}: not a folder", args.docs.display());
    }
    let (_tmp, data) = scratch::scratch_dir()?;
    let mut assistant = build_assistant(ctx, &data, &tresor_guard::crypto::WorkspaceKey::ephemeral())?;
    apply_config(&mut assistant, args.config.as_ref())?;
    scratch::ingest_dir(&data, assistant.key(), "bench", &args.docs, assistant.embedder())?;
    let verbose = !args.json;
    // llama.cpp's prefill of each answer's prompt length, on the GGUF the answer came from
    let models_dir = ctx.models_dir.clone();
    let model_path = move |id: &str| -> Option<PathBuf> {
        let catalog = tresor_models::Catalog::load(&models_dir).ok()?;
        let m = catalog
            .resolve(Some(id), tresor_models::Role::ChatSmall)
            .or_else(|_| catalog.resolve(Some(id), tresor_models::Role::ChatPremium))
            .ok()?;
        (m.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) && m.path.is_file()).then_some(m.path)
    };
    let peer = match (args.no_peer, tresor_bench::llm::find_llama_bench()) {
        (false, Some(llama_bench)) => Some(tresor_bench::answers::PeerPrefill {
            llama_bench,
            threads: ctx.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            model_path: &model_path,
        }),
        (false, None) => {
            eprintln!("note: llama-bench not found (scripts/peer/build-llama-cpp.sh or TRESOR_LLAMA_BENCH): TTFT without llama.cpp's prefill next to it");
            None
        }
        (true, _) => None,
    };
    let r = tresor_bench::answers::run(&mut assistant, "bench", &qs, &args.budgets, peer.as_ref(), &mut |l| {
        if verbose {
            eprintln!("{l}");
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", tresor_bench::answers::table(&r));
    }
    Ok(())
}
