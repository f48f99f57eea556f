//! `tresor policy show | check FILE | explain QUESTION | keygen | sign`:
//! front door to tresor-guard's admin policy. Flags in, one call, text or JSON out.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use tresor_guard::policy::{self, Layer, Policy, PolicyPaths};

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Print the policy in force (and which items an admin locked).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Validate a policy file (syntax, keys, signature); errors name the line and key.
    Check { file: PathBuf },
    /// Show what the policy decides for a question (topic scores, refusal) without answering it.
    Explain {
        question: String,
        #[arg(long)]
        json: bool,
    },
    /// Create an admin signing key pair: PREFIX.key (private, 0600) and PREFIX.pub
    /// (install the .pub in /etc/tresor/admin-keys/ or the TRESOR_ADMIN_KEYS folder).
    Keygen {
        /// Path prefix of the two key files.
        prefix: PathBuf,
    },
    /// Sign a policy file with an admin key: writes FILE.sig next to it.
    Sign {
        /// The private key from `tresor policy keygen`.
        #[arg(long)]
        key: PathBuf,
        file: PathBuf,
    },
}

pub fn run(cmd: PolicyCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        PolicyCmd::Show { json } => show(ctx, json),
        PolicyCmd::Check { file } => check(ctx, &file),
        PolicyCmd::Explain { question, json } => explain(ctx, &question, json),
        PolicyCmd::Keygen { prefix } => {
            let (k, p) = policy::keygen(&prefix)?;
            println!("private key: {} (keep it secret; mode 0600)", k.display());
            println!("public key:  {} (install it in {}/ or the TRESOR_ADMIN_KEYS folder)", p.display(), policy::SYSTEM_ADMIN_KEYS);
            Ok(())
        }
        PolicyCmd::Sign { key, file } => {
            let sig = policy::sign(&file, &key)?;
            println!("signed {} → {}", file.display(), sig.display());
            Ok(())
        }
    }
}

fn load(ctx: &Ctx) -> Result<(PolicyPaths, Policy)> {
    let paths = PolicyPaths::for_data_dir(&ctx.data_dir);
    let p = paths.load().context("loading the policy")?;
    Ok((paths, p))
}

fn show(ctx: &Ctx, json: bool) -> Result<()> {
    let (paths, p) = load(ctx)?;
    if json {
        let mut v = serde_json::to_value(&p)?;
        v["admin_keys"] = serde_json::json!(paths.admin_keys);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let lock = |item: &str| if p.is_locked(item) { " [locked]" } else { "" };
    let from = |item: &str| p.origin.get(item).map(|o| format!(" (from {o})")).unwrap_or_default();
    println!("files:");
    if p.files.is_empty() {
        println!("  none: the built-in defaults");
    }
    for f in &p.files {
        let signed = f.signed_by.as_deref().map(|k| format!(", signed by {k}")).unwrap_or_else(|| ", unsigned".into());
        println!("  {} ({}{signed})", f.path.display(), f.role);
    }
    println!("topics{}:", lock("topics"));
    for t in &p.topics {
        let item = format!("topics.{}", t.name);
        let state = if !t.enabled {
            "disabled".to_string()
        } else if p.lifted(&t.unless_tool) {
            format!("lifted: tool `{}` is allowed", t.unless_tool.as_deref().unwrap_or_default())
        } else {
            t.action.to_string()
        };
        println!("  {} — {}{}{}", t.name, state, lock(&item), from(&item));
        println!("      why (en): {}", t.reason.en);
        println!("      why (de): {}", t.reason.de);
        println!(
            "      {} example prompts (de {}, en {}), {} keywords, threshold {:.2}{}",
            t.examples_de.len() + t.examples_en.len(),
            t.examples_de.len(),
            t.examples_en.len(),
            t.keywords.len(),
            t.threshold.unwrap_or(p.detection_threshold),
            t.unless_tool.as_deref().map(|x| format!(", not while tool `{x}` is allowed")).unwrap_or_default()
        );
    }
    println!("detection threshold: {:.2}{}{}", p.detection_threshold, lock("detection"), from("detection"));
    let disc = if p.disclaimer.is_empty() { "none".to_string() } else { format!("en: {:?}, de: {:?}", p.disclaimer.en, p.disclaimer.de) };
    println!("disclaimer: {disc}{}{}", lock("disclaimer"), from("disclaimer"));
    println!("blocked terms: {} ({:?} in answers){}{}", p.blocked_terms.len(), p.blocked_action, lock("blocked_terms"), from("blocked_terms"));
    println!(
        "price promises: {}{}{}",
        if p.price_promises { format!("removed from answers ({} promise words)", p.price_words.len()) } else { "not checked".into() },
        lock("price_promises"),
        from("price_promises")
    );
    println!("allowed tools: {}{}{}", tools_summary(&p), lock("tools"), from("tools"));
    for (name, server) in p.mcp_servers() {
        let how = match &server.transport {
            policy::McpTransport::Stdio { command, args, .. } => format!("stdio: {command} {}", args.join(" ")),
            policy::McpTransport::Http { url } => format!("streamable HTTP: {url}"),
        };
        println!("mcp server {name}: {} (timeout {} ms){}", how.trim_end(), server.timeout().as_millis(), from(&format!("mcp.servers.{name}")));
    }
    println!("max answer length: {} characters{}{}", p.max_answer_chars, lock("answer"), from("answer"));
    println!("languages: {}{}{}", p.allowed_languages.join(", "), lock("languages"), from("languages"));
    println!("injection action: {:?}{}{}", p.injection_action, lock("injection"), from("injection"));
    Ok(())
}

fn check(ctx: &Ctx, file: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // validated as an admin file (locks allowed) over the defaults
    let p = Policy::check_text(&text, file, Layer::Admin)?;
    let keys = PolicyPaths::for_data_dir(&ctx.data_dir).trusted_keys()?;
    let signed = policy::verify_signature(file, text.as_bytes(), &keys)?;
    let locked: Vec<&str> = p.locked.iter().map(String::as_str).collect();
    println!(
        "{}: OK ({} topics, {} enforced; locked: {}; {})",
        file.display(),
        p.topics.len(),
        p.active_topics().count(),
        if locked.is_empty() { "nothing".to_string() } else { locked.join(", ") },
        match signed {
            Some(k) => format!("signature verified with {k}"),
            None => "unsigned".to_string(),
        }
    );
    Ok(())
}

fn explain(ctx: &Ctx, question: &str, json: bool) -> Result<()> {
    if question.trim().is_empty() {
        bail!("the question is empty");
    }
    let mut a = crate::assistant_cmd::build_assistant(ctx, &ctx.data_dir, &crate::key_cmd::workspace_key(ctx)?)?;
    let (pre, lang) = a.explain_policy(question);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "lang": lang.as_str(), "refused": pre.refusal.is_some(), "refusal": pre.refusal,
                "decision": pre.decision, "disclaimers": pre.disclaimers,
            }))?
        );
        return Ok(());
    }
    match &pre.refusal {
        Some(r) => println!("refused: {r}"),
        None => println!("allowed"),
    }
    let d = &pre.decision;
    if let (Some(t), Some(via)) = (&d.topic, &d.via) {
        println!("topic: {t} (via {via}, score {:.3})", d.score.unwrap_or_default());
    }
    if let Some((t, s)) = &d.nearest {
        println!("nearest topic by similarity: {t} ({s:.3}; threshold {:.2})", a.policy().topic(t).and_then(|x| x.threshold).unwrap_or(a.policy().detection_threshold));
    }
    if !pre.disclaimers.is_empty() {
        println!("disclaimers: {}", pre.disclaimers.join(", "));
    }
    Ok(())
}

/// `[tools]` in words: the built-in tools allowed, then denials and confirmations.
fn tools_summary(p: &Policy) -> String {
    let mut out = match p.tools_allowed_list() {
        None => "all built-in tools".to_string(),
        Some([]) => "no built-in tools".to_string(),
        Some(list) => list.join(", "),
    };
    if !p.denied_tools.is_empty() {
        out.push_str(&format!("; denied: {}", p.denied_tools.join(", ")));
    }
    if !p.confirm_tools.is_empty() {
        out.push_str(&format!("; confirm: {}", p.confirm_tools.join(", ")));
    }
    out
}
