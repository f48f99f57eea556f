//! `tresor mcp list|serve`: the Model Context Protocol door.
//!
//! Owns: listing the admin policy's MCP servers with their tools (`NAME.tool`,
//! what the policy says of each) or the error reaching each, and `serve`'s
//! backend, which hands `search_documents` and `ask` to the engine facade.
//! Never: connects to a server the policy does not list, or prints anything
//! but protocol messages to stdout while serving (logs go to stderr).

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use tresor_assistant::{Assistant, AskRequest};
use tresor_guard::policy::{McpServerConfig, McpTransport, Policy, PolicyPaths};
use tresor_mcp::{qualified_name, McpBackend, McpClient};

use crate::assistant_cmd::{build_assistant, pick_kb};
use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum McpCmd {
    /// The MCP servers of the admin policy and their tools (NAME.tool), or why one cannot be reached.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Serve Tresor as an MCP server on stdin/stdout: tools search_documents and ask (read-only).
    Serve,
}

pub fn run(cmd: McpCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        McpCmd::List { json } => list(ctx, json),
        McpCmd::Serve => serve(ctx),
    }
}

fn transport_json(s: &McpServerConfig) -> Value {
    match &s.transport {
        McpTransport::Stdio { command, args, .. } => json!({"transport": "stdio", "command": command, "args": args}),
        McpTransport::Http { url } => json!({"transport": "http", "url": url}),
    }
}

/// One server as `mcp list` reports it (connects, lists, disconnects).
fn server_report(p: &Policy, name: &str, config: &McpServerConfig) -> Value {
    let mut v = transport_json(config);
    v["name"] = json!(name);
    v["timeout_ms"] = json!(config.timeout().as_millis() as u64);
    match McpClient::connect(name, config, config.timeout()) {
        Ok(client) => {
            v["protocol_version"] = json!(client.protocol_version());
            v["server"] = json!(client.server_info());
            v["tools"] = client
                .tools()
                .iter()
                .map(|t| {
                    let full = qualified_name(name, &t.name);
                    json!({
                        "name": full,
                        "tool": t.name,
                        "description": t.description,
                        "read_only": t.read_only,
                        "allowed": p.tool_allowed(&full),
                        "needs_confirmation": !t.read_only || p.tool_needs_confirmation(&full),
                        "input_schema": t.input_schema,
                    })
                })
                .collect();
            v["error"] = Value::Null;
        }
        Err(e) => {
            v["tools"] = json!([]);
            v["error"] = json!(e.to_string());
        }
    }
    v
}

fn list(ctx: &Ctx, as_json: bool) -> Result<()> {
    let p = PolicyPaths::for_data_dir(&ctx.data_dir).load().context("loading the policy")?;
    let servers: Vec<Value> = p.mcp_servers().iter().map(|(name, config)| server_report(&p, name, config)).collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "servers": servers }))?);
        return Ok(());
    }
    if servers.is_empty() {
        println!("no MCP servers: the admin policy lists none ([mcp.servers.NAME], see docs/policy.md)");
        return Ok(());
    }
    for s in &servers {
        let how = match s["transport"].as_str() {
            Some("stdio") => {
                let args: Vec<&str> = s["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                format!("stdio: {} {}", s["command"].as_str().unwrap_or_default(), args.join(" ")).trim_end().to_string()
            }
            _ => format!("streamable HTTP: {}", s["url"].as_str().unwrap_or_default()),
        };
        println!("{} ({how})", s["name"].as_str().unwrap_or_default());
        if let Some(e) = s["error"].as_str() {
            println!("  error: {e}");
            continue;
        }
        println!("  {} · protocol {}", s["server"].as_str().unwrap_or_default(), s["protocol_version"].as_str().unwrap_or_default());
        for t in s["tools"].as_array().into_iter().flatten() {
            let mut marks = vec![if t["read_only"] == true { "read-only" } else { "side effect" }];
            if t["allowed"] == false {
                marks.push("denied by policy");
            } else if t["needs_confirmation"] == true {
                marks.push("needs confirmation");
            }
            println!("  {} [{}] — {}", t["name"].as_str().unwrap_or_default(), marks.join(", "), t["description"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}

/// The engine facade as an MCP backend: each tool call is one engine call.
struct EngineBackend<'a> {
    ctx: &'a Ctx,
    assistant: Assistant,
}

/// At most this many characters of a passage go into a search result.
const EXCERPT_CHARS: usize = 600;

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() <= EXCERPT_CHARS {
        return t.to_string();
    }
    let cut: String = t.chars().take(EXCERPT_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a).to_string();
    format!("{cut} …")
}

impl McpBackend for EngineBackend<'_> {
    fn search_documents(&mut self, query: &str, kb: Option<&str>, k: usize) -> Result<Value, String> {
        let kb = pick_kb(self.ctx, kb)
            .map_err(|e| format!("{e:#}"))?
            .ok_or_else(|| "no knowledge base to search: ingest documents with `tresor ingest PATH` first".to_string())?;
        let found = self.assistant.search(&kb, query, k).map_err(|e| e.to_string())?;
        let results: Vec<Value> = found
            .hits
            .iter()
            .map(|h| json!({"source": h.source, "title": h.title, "heading": h.heading, "page": h.page, "excerpt": excerpt(&h.text), "score": h.score}))
            .collect();
        Ok(json!({"kb": kb, "results": results}))
    }

    fn ask(&mut self, question: &str, kb: Option<&str>) -> Result<Value, String> {
        let kb = pick_kb(self.ctx, kb).map_err(|e| format!("{e:#}"))?;
        let req = AskRequest { question: question.to_string(), kb: kb.clone(), ..Default::default() };
        let a = self.assistant.answer(&req, &mut |_| {}).map_err(|e| e.to_string())?;
        let sources: Vec<Value> = a
            .sources
            .iter()
            .map(|s| json!({"n": s.n, "source": s.source, "title": s.title, "heading": s.heading, "page": s.page, "excerpt": s.snippet}))
            .collect();
        Ok(json!({"answer": a.answer, "sources": sources, "refused": a.refused, "grounded": a.grounded, "kb": kb}))
    }
}

fn serve(ctx: &Ctx) -> Result<()> {
    let key = crate::key_cmd::workspace_key(ctx)?;
    let assistant = build_assistant(ctx, &ctx.data_dir, &key)?;
    tracing::info!(data_dir = %ctx.data_dir.display(), "serving MCP on stdio");
    tresor_mcp::serve_stdio(EngineBackend { ctx, assistant })?;
    Ok(())
}
