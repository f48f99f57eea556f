//! Tresor as an MCP server over stdio (`tresor mcp serve`): the tools
//! `search_documents` and `ask`, both read-only, answered by an [`McpBackend`].
//!
//! Owns: the two tools' names, descriptions, input schemas and annotations,
//! argument checks (a bad argument is a tool error the client's model can
//! correct, not a protocol error), and running the backend on the calling
//! thread while the protocol runs on its own (the backend, the engine, need
//! not be `Send`; one request at a time reaches it).
//! Never: writes to stdout outside the protocol, or reaches the engine other
//! than through the backend.

use std::sync::{mpsc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::McpError;

/// The tool that searches the knowledge base.
pub const SEARCH_TOOL: &str = "search_documents";
/// The tool that answers a question with citations.
pub const ASK_TOOL: &str = "ask";

const DEFAULT_K: usize = 5;
const MAX_K: usize = 50;

/// What `tresor mcp serve` asks of the engine. Each method returns the tool's
/// result (a JSON object) or a message for the client.
pub trait McpBackend {
    /// `{"results": [{"source", "heading", "excerpt", "score"}]}`, best first.
    fn search_documents(&mut self, query: &str, kb: Option<&str>, k: usize) -> Result<Value, String>;
    /// `{"answer", "sources": [...], "refused"}`.
    fn ask(&mut self, question: &str, kb: Option<&str>) -> Result<Value, String>;
}

/// A tool call for the backend's thread.
enum Job {
    Search { query: String, kb: Option<String>, k: usize },
    Ask { question: String, kb: Option<String> },
}

type Reply = oneshot::Sender<Result<Value, String>>;

/// Serves MCP on this process's stdin and stdout until the client closes
/// stdin. Blocks; `backend` runs on the calling thread.
pub fn serve_stdio<B: McpBackend>(mut backend: B) -> Result<(), McpError> {
    let (tx, rx) = mpsc::channel::<(Job, Reply)>();
    let protocol = std::thread::Builder::new()
        .name("mcp-serve".into())
        .spawn(move || -> Result<(), McpError> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| McpError::Serve(format!("no async runtime: {e}")))?;
            rt.block_on(async move {
                let handler = TresorTools { jobs: Mutex::new(tx) };
                let running = handler.serve((tokio::io::stdin(), tokio::io::stdout())).await.map_err(|e| McpError::Serve(format!("the handshake failed: {e}")))?;
                let reason = running.waiting().await.map_err(|e| McpError::Serve(e.to_string()))?;
                tracing::info!(?reason, "MCP client went away");
                Ok(())
            })
        })
        .map_err(|e| McpError::Serve(format!("cannot start the protocol thread: {e}")))?;
    // the backend's loop: ends when the protocol thread drops its sender
    for (job, reply) in rx {
        let out = match job {
            Job::Search { query, kb, k } => backend.search_documents(&query, kb.as_deref(), k),
            Job::Ask { question, kb } => backend.ask(&question, kb.as_deref()),
        };
        let _ = reply.send(out);
    }
    protocol.join().map_err(|_| McpError::Serve("the protocol thread panicked".into()))?
}

struct TresorTools {
    jobs: Mutex<mpsc::Sender<(Job, Reply)>>,
}

/// The two tools as clients list them.
fn tools() -> Vec<Tool> {
    let read_only = json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false});
    let specs = [
        json!({
            "name": SEARCH_TOOL,
            "title": "Search documents",
            "description": "Search the user's Tresor knowledge base (hybrid keyword and vector search, reranked). Returns {\"results\": [{\"source\", \"heading\", \"excerpt\", \"score\"}]}, best first.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "description": "What to search for (German or English)."},
                    "kb": {"type": "string", "description": "Knowledge base name; default: the `default` knowledge base."},
                    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": DEFAULT_K, "description": "How many results."}
                },
                "required": ["query"],
                "additionalProperties": false
            },
            "annotations": read_only,
        }),
        json!({
            "name": ASK_TOOL,
            "title": "Ask",
            "description": "Answer a question from the user's Tresor knowledge base with a local model, every sentence cited. Returns {\"answer\", \"sources\": [{\"n\", \"source\", \"heading\", \"excerpt\", \"score\"}], \"refused\"}; refused is true when the documents do not hold the answer or the policy refuses the question.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "question": {"type": "string", "minLength": 1, "description": "The question (German or English)."},
                    "kb": {"type": "string", "description": "Knowledge base name; default: the `default` knowledge base."}
                },
                "required": ["question"],
                "additionalProperties": false
            },
            "annotations": read_only,
        }),
    ];
    specs.into_iter().map(|v| serde_json::from_value(v).expect("the tool specs are valid MCP tools")).collect()
}

/// The job a call asks for, or the message for a bad argument.
fn job_for(name: &str, args: &serde_json::Map<String, Value>) -> Result<Job, String> {
    let allowed: &[&str] = match name {
        SEARCH_TOOL => &["query", "kb", "k"],
        ASK_TOOL => &["question", "kb"],
        other => return Err(format!("unknown tool `{other}` (tools: {SEARCH_TOOL}, {ASK_TOOL})")),
    };
    if let Some(extra) = args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown argument `{extra}` (arguments: {})", allowed.join(", ")));
    }
    let text = |key: &str| -> Result<String, String> {
        match args.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(format!("`{key}` must not be empty")),
            Some(_) => Err(format!("`{key}` must be a string")),
            None => Err(format!("`{key}` is required")),
        }
    };
    let kb = match args.get("kb") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err("`kb` must be a string".into()),
    };
    Ok(match name {
        SEARCH_TOOL => {
            let k = match args.get("k") {
                None | Some(Value::Null) => DEFAULT_K,
                Some(v) => match v.as_u64() {
                    Some(k) if (1..=MAX_K as u64).contains(&k) => k as usize,
                    _ => return Err(format!("`k` must be an integer from 1 to {MAX_K}")),
                },
            };
            Job::Search { query: text("query")?, kb, k }
        }
        _ => Job::Ask { question: text("question")?, kb },
    })
}

fn tool_error(message: String) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

impl ServerHandler for TresorTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tresor", env!("CARGO_PKG_VERSION")).with_title("Tresor"))
            .with_instructions("Tresor answers from the user's own documents, offline. search_documents finds passages; ask answers a question with citations.")
    }

    async fn list_tools(&self, _request: Option<PaginatedRequestParams>, _context: RequestContext<RoleServer>) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(&self, request: CallToolRequestParams, _context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let job = match job_for(&request.name, &args) {
            Ok(job) => job,
            Err(message) => return Ok(tool_error(message)),
        };
        let (reply, answer) = oneshot::channel();
        let sent = self.jobs.lock().map_err(|_| ErrorData::internal_error("the engine is gone", None))?.send((job, reply));
        if sent.is_err() {
            return Err(ErrorData::internal_error("the engine is gone", None));
        }
        match answer.await {
            Ok(Ok(value)) => Ok(CallToolResult::structured(value).into()),
            Ok(Err(message)) => Ok(tool_error(message)),
            Err(_) => Err(ErrorData::internal_error("the engine stopped while answering", None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tools_are_read_only_with_schemas() {
        let t = tools();
        assert_eq!(t.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(), [SEARCH_TOOL, ASK_TOOL]);
        for tool in &t {
            assert_eq!(tool.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
            assert_eq!(tool.input_schema["type"], "object");
        }
        assert_eq!(t[0].input_schema["required"], json!(["query"]));
        assert_eq!(t[1].input_schema["required"], json!(["question"]));
    }

    #[test]
    fn arguments_are_checked_with_messages_a_model_can_act_on() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        match job_for(SEARCH_TOOL, &obj(json!({"query": " Urlaub ", "k": 3, "kb": "hr"}))).unwrap() {
            Job::Search { query, kb, k } => assert_eq!((query.as_str(), kb.as_deref(), k), ("Urlaub", Some("hr"), 3)),
            _ => panic!(),
        }
        match job_for(SEARCH_TOOL, &obj(json!({"query": "x"}))).unwrap() {
            Job::Search { k, kb, .. } => assert_eq!((k, kb), (DEFAULT_K, None)),
            _ => panic!(),
        }
        for (name, args, want) in [
            (SEARCH_TOOL, json!({}), "`query` is required"),
            (SEARCH_TOOL, json!({"query": "  "}), "must not be empty"),
            (SEARCH_TOOL, json!({"query": "x", "k": 0}), "`k` must be an integer"),
            (SEARCH_TOOL, json!({"query": "x", "k": "3"}), "`k` must be an integer"),
            (SEARCH_TOOL, json!({"query": "x", "top": 3}), "unknown argument `top`"),
            (ASK_TOOL, json!({"question": 42}), "`question` must be a string"),
            (ASK_TOOL, json!({"question": "x", "kb": 1}), "`kb` must be a string"),
            ("delete_everything", json!({}), "unknown tool"),
        ] {
            let e = job_for(name, &obj(args)).err().unwrap();
            assert!(e.contains(want), "{e}");
        }
    }
}
