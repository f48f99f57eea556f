//! The MCP client: one connection to one server of the admin policy, behind a
//! blocking API over a private tokio runtime (the engine is synchronous).
//!
//! Owns: connecting (a stdio child process or a streamable-HTTP URL on this
//! machine), the handshake (protocol version [`PROTOCOL_VERSION`], which the
//! current `mcp` Python SDK accepts), listing the tools once at connect,
//! calling a tool, a timeout on every request, and turning what went wrong
//! into an [`McpError`] that names the server. A child process is killed when
//! the client is dropped.
//! Never: finds servers on its own (the caller passes the policy's entry), asks
//! whether a tool is allowed or needs confirmation (the engine does, with the
//! policy), follows HTTP redirects or uses a proxy.
//!
//! Not to be called from inside an async runtime (it blocks); a door that has
//! one uses `spawn_blocking` or a thread.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde::Serialize;
use serde_json::Value;
use tresor_guard::policy::{McpServerConfig, McpTransport};

use crate::child::{self, Diag, SharedDiag};
use crate::McpError;

/// The protocol version Tresor offers in the `initialize` handshake: the
/// newest one reached through a handshake, spoken by the `mcp` Python SDK 2.x
/// (and answered by 1.x servers with their own, which rmcp accepts).
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpTool {
    /// The server's own name for it (the engine calls it `SERVER.name`).
    pub name: String,
    pub description: String,
    /// The JSON Schema of its arguments, as the server gave it.
    pub input_schema: Value,
    /// The server marks it read-only (`annotations.readOnlyHint`; absent: false).
    /// A hint from the server: the policy decides what needs confirmation.
    pub read_only: bool,
}

/// A connection to one MCP server.
pub struct McpClient {
    name: String,
    timeout: Duration,
    tools: Vec<McpTool>,
    protocol_version: String,
    server_info: String,
    diag: SharedDiag,
    service: Option<RunningService<RoleClient, ClientConfig>>,
    child: Option<tokio::process::Child>,
    // last: dropped after the service and the child it drives
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient").field("name", &self.name).field("protocol_version", &self.protocol_version).field("tools", &self.tools.len()).finish()
    }
}

impl McpClient {
    /// Connects to the server `name` of the admin policy: starts its command
    /// or reaches its URL, shakes hands and lists its tools, each step within
    /// `timeout`.
    pub fn connect(name: &str, config: &McpServerConfig, timeout: Duration) -> Result<McpClient, McpError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("mcp-{name}"))
            .enable_all()
            .build()
            .map_err(|e| McpError::Start { server: name.to_string(), detail: format!("no async runtime: {e}") })?;
        let diag = SharedDiag::default();
        let mut client =
            McpClient { name: name.to_string(), timeout, tools: Vec::new(), protocol_version: String::new(), server_info: String::new(), diag, service: None, child: None, rt };
        let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new("tresor", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::V_2025_11_25);
        let started = match &config.transport {
            McpTransport::Stdio { command, args, env } => {
                let spawned = {
                    let _guard = client.rt.enter();
                    child::spawn(command, args, env, &client.diag)
                };
                let (proc, stdout, stdin) =
                    spawned.map_err(|e| McpError::Start { server: name.to_string(), detail: format!("cannot start `{command}`: {e}") })?;
                client.child = Some(proc);
                client.run("the initialize handshake", info.serve((stdout, stdin))).map(|r| r.map_err(|e| client.init_error(e)))
            }
            McpTransport::Http { url } => {
                let http = {
                    let _guard = client.rt.enter();
                    {
                        // a workspace build may unify reqwest with the desktop updater's
                        // `rustls-no-provider`: then building any client needs a crypto provider
                        // (an http:// loopback URL never uses it); installing one twice is harmless
                        let _ = rustls::crypto::ring::default_provider().install_default();
                    }
                    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()
                };
                let http = http.map_err(|e| McpError::Start { server: name.to_string(), detail: format!("no HTTP client: {e}") })?;
                let transport = {
                    let _guard = client.rt.enter();
                    StreamableHttpClientTransport::with_client(http, StreamableHttpClientTransportConfig::with_uri(url.as_str()))
                };
                client.run("the initialize handshake", info.serve(transport)).map(|r| r.map_err(|e| client.init_error(e)))
            }
        };
        let service = started??;
        if let Some(peer) = service.peer_info() {
            client.protocol_version = peer.protocol_version.to_string();
            client.server_info = peer.server_info.as_ref().map(|i| format!("{} {}", i.name, i.version)).unwrap_or_default();
        }
        client.service = Some(service);
        client.refresh_tools()?;
        Ok(client)
    }

    /// The server's name in the policy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The protocol version the handshake settled on.
    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// The server's own name and version, as it reported them ("" when it did not).
    pub fn server_info(&self) -> &str {
        &self.server_info
    }

    /// The server's tools, as listed at connect (or the last [`Self::refresh_tools`]).
    pub fn tools(&self) -> &[McpTool] {
        &self.tools
    }

    /// Lists the server's tools again.
    pub fn refresh_tools(&mut self) -> Result<&[McpTool], McpError> {
        let service = self.service.as_ref().ok_or_else(|| self.closed("not connected".into()))?;
        let listed = self.run("tools/list", service.list_all_tools())?.map_err(|e| self.service_error(e, None))?;
        self.tools = listed
            .into_iter()
            .map(|t| McpTool {
                name: t.name.to_string(),
                description: t.description.as_deref().unwrap_or_default().trim().to_string(),
                input_schema: Value::Object((*t.input_schema).clone()),
                read_only: t.annotations.as_ref().and_then(|a| a.read_only_hint).unwrap_or(false),
            })
            .collect();
        Ok(&self.tools)
    }

    /// Calls `tool` (the server's name for it) with `arguments` (a JSON
    /// object), waiting at most `timeout`. The result: the tool's structured
    /// content when it gave one, else its text (parsed when it is JSON), else
    /// its content blocks. A tool that reports an error is [`McpError::Tool`].
    pub fn call(&mut self, tool: &str, arguments: Value, timeout: Duration) -> Result<Value, McpError> {
        if !self.tools.iter().any(|t| t.name == tool) {
            return Err(McpError::UnknownTool { server: self.name.clone(), tool: tool.to_string() });
        }
        let Value::Object(args) = arguments else {
            return Err(McpError::Tool { server: self.name.clone(), tool: tool.to_string(), message: "arguments must be a JSON object".into() });
        };
        let service = self.service.as_ref().ok_or_else(|| self.closed("not connected".into()))?;
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let result = self.run_for(&format!("tools/call {tool}"), timeout, service.call_tool(params))?.map_err(|e| self.service_error(e, Some(tool)))?;
        let text: Vec<&str> = result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
        if result.is_error == Some(true) {
            let message = if text.is_empty() { "the tool reported an error".to_string() } else { text.join("\n") };
            return Err(McpError::Tool { server: self.name.clone(), tool: tool.to_string(), message });
        }
        if let Some(v) = result.structured_content {
            return Ok(v);
        }
        if !text.is_empty() && text.len() == result.content.len() {
            let joined = text.join("\n");
            return Ok(serde_json::from_str(&joined).unwrap_or(Value::String(joined)));
        }
        serde_json::to_value(&result.content).map_err(|e| McpError::Protocol { server: self.name.clone(), detail: format!("unreadable tool result: {e}") })
    }

    /// Runs `fut` on the client's runtime within the connection's timeout.
    fn run<F: std::future::Future>(&self, what: &str, fut: F) -> Result<F::Output, McpError> {
        self.run_for(what, self.timeout, fut)
    }

    fn run_for<F: std::future::Future>(&self, what: &str, timeout: Duration, fut: F) -> Result<F::Output, McpError> {
        match self.rt.block_on(async { tokio::time::timeout(timeout, fut).await }) {
            Ok(out) => Ok(out),
            Err(_) => {
                let d = self.diag();
                let detail = if d.is_empty() { String::new() } else { format!("; {d}") };
                Err(McpError::Timeout { server: self.name.clone(), what: what.to_string(), timeout_ms: timeout.as_millis() as u64, detail })
            }
        }
    }

    /// What the server's stdout and stderr tell about a failure ("" when nothing).
    fn diag(&self) -> String {
        let d: std::sync::MutexGuard<'_, Diag> = self.diag.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        if let Some(j) = d.junk() {
            out.push(format!("it wrote non-JSON-RPC output to stdout: {j:?}"));
        }
        let tail = d.stderr_tail();
        if !tail.is_empty() {
            out.push(format!("its stderr: {tail}"));
        }
        out.join("; ")
    }

    fn closed(&self, detail: String) -> McpError {
        McpError::Closed { server: self.name.clone(), detail }
    }

    /// The handshake failed: the child exited, wrote junk, or the server answered with an error.
    fn init_error(&mut self, e: ClientInitializeError) -> McpError {
        let status = self.child_status();
        let d = self.diag();
        let junk = self.diag.lock().unwrap_or_else(|e| e.into_inner()).junk().is_some();
        let server = self.name.clone();
        match e {
            _ if junk => McpError::Protocol { server, detail: d },
            ClientInitializeError::ConnectionClosed(_) | ClientInitializeError::TransportError { .. } if self.child.is_some() => {
                let mut detail = match status {
                    Some(s) => format!("the server exited ({s}) before it answered"),
                    None => format!("the server closed the connection before it answered ({e})"),
                };
                if !d.is_empty() {
                    detail.push_str(&format!("; {d}"));
                }
                McpError::Closed { server, detail }
            }
            ClientInitializeError::TransportError { .. } | ClientInitializeError::ConnectionClosed(_) => {
                McpError::Start { server, detail: format!("cannot reach the server: {}", error_chain(&e)) }
            }
            other => McpError::Protocol { server, detail: format!("the handshake failed: {}", error_chain(&other)) },
        }
    }

    /// A request failed after the handshake.
    fn service_error(&mut self, e: ServiceError, tool: Option<&str>) -> McpError {
        let server = self.name.clone();
        match e {
            ServiceError::McpError(data) => match tool {
                Some(tool) => McpError::Tool { server, tool: tool.to_string(), message: data.message.to_string() },
                None => McpError::Protocol { server, detail: format!("error {}: {}", data.code.0, data.message) },
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                let status = self.child_status();
                let mut detail = match status {
                    Some(s) => format!("the server exited ({s})"),
                    None => format!("the connection is gone ({})", error_chain(&e)),
                };
                let d = self.diag();
                if !d.is_empty() {
                    detail.push_str(&format!("; {d}"));
                }
                McpError::Closed { server, detail }
            }
            ServiceError::UnexpectedResponse => McpError::Protocol { server, detail: "an answer that does not fit the request".into() },
            other => McpError::Protocol { server, detail: error_chain(&other) },
        }
    }

    /// The child's exit status once it has exited (waits a moment for it: a
    /// closed pipe usually comes just before the exit).
    fn child_status(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        let status = self.rt.block_on(async { tokio::time::timeout(Duration::from_millis(500), child.wait()).await });
        match status {
            Ok(Ok(s)) => {
                // The exit can be seen before the stderr reader has drained the
                // pipe; wait a moment for it so the message quotes the cause.
                let until = std::time::Instant::now() + Duration::from_millis(500);
                while !self.diag.lock().unwrap_or_else(|e| e.into_inner()).stderr_closed() && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Some(s.to_string())
            }
            _ => None,
        }
    }
}

/// An error and its sources, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let more = s.to_string();
        if !out.contains(&more) {
            out.push_str(": ");
            out.push_str(&more);
        }
        src = s.source();
    }
    out
}

impl Drop for McpClient {
    fn drop(&mut self) {
        let service = self.service.take();
        let child = self.child.take();
        let inside_runtime = tokio::runtime::Handle::try_current().is_ok();
        let _guard = self.rt.enter();
        drop(service);
        if let Some(mut child) = child {
            let _ = child.start_kill();
            if !inside_runtime {
                let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), child.wait()).await });
            }
        }
    }
}
