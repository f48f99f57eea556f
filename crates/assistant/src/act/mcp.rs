//! The admin's MCP servers as tools of the engine: each server listed in the
//! policy (`[mcp.servers.NAME]`) is connected once per engine, on first use,
//! and its tools join the built-ins as `NAME.tool` with the server's own
//! JSON Schemas, under the same router, grammar, confirmation and audit.
//! A tool the server marks read-only runs at once; every other one waits
//! for the user's yes.
//!
//! Owns: the connections, the specs made from the servers' tool lists, the
//! call with its timeout, and the mapping of MCP errors to tool errors
//! (a server that could not be reached: transient, retried; a timeout:
//! `timed_out`; junk or a tool error: failed). Never: connects to a server
//! the policy does not list, or keeps a server's failure from the other
//! tools (an unreachable server is reported in `tresor mcp list` and its
//! tools are simply absent).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tresor_guard::policy::Policy;
use tresor_mcp::{qualified_name, split_qualified, McpClient, McpError};
use tresor_tools::error::ToolError;
use tresor_tools::spec::{SideEffect, ToolSource, ToolSpec};

#[derive(Default)]
pub(crate) struct McpTools {
    /// Per server: the connection, or why it failed (not retried within this engine's life).
    servers: BTreeMap<String, std::result::Result<Mutex<McpClient>, String>>,
}

impl McpTools {
    /// Connects the policy's servers not tried yet.
    pub fn ensure(&mut self, policy: &Policy) {
        for (name, cfg) in policy.mcp_servers() {
            if self.servers.contains_key(name) {
                continue;
            }
            let conn = McpClient::connect(name, cfg, cfg.timeout()).map(Mutex::new).map_err(|e| e.to_string());
            if let Err(e) = &conn {
                tracing::warn!("{e}");
            }
            self.servers.insert(name.clone(), conn);
        }
    }

    /// The tools of the connected servers that the policy does not deny.
    pub fn specs(&self, policy: &Policy) -> Vec<ToolSpec> {
        let mut out = Vec::new();
        for (server, conn) in &self.servers {
            let Ok(client) = conn else { continue };
            let client = client.lock().expect("mcp client lock");
            let timeout_ms = policy.mcp_servers().get(server).map(|c| c.timeout().as_millis() as u64).unwrap_or(10_000);
            for t in client.tools() {
                let name = qualified_name(server, &t.name);
                if !policy.tool_allowed(&name) {
                    continue;
                }
                out.push(ToolSpec {
                    name,
                    description_en: t.description.clone(),
                    description_de: t.description.clone(),
                    schema: t.input_schema.clone(),
                    side_effect: if t.read_only { SideEffect::ReadOnly } else { SideEffect::SideEffect },
                    timeout_ms,
                    retries: 2,
                    source: ToolSource::Mcp(server.clone()),
                });
            }
        }
        out
    }

    /// Servers that could not be reached, with the reason.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.servers.iter().filter_map(|(s, c)| c.as_ref().err().map(|e| (s.clone(), e.clone()))).collect()
    }

    /// Calls `NAME.tool` with `args`.
    pub fn call(&self, spec: &ToolSpec, args: &Value, timeout: Duration) -> Result<Value, ToolError> {
        let (server, tool) = split_qualified(&spec.name).ok_or_else(|| ToolError::UnknownTool(spec.name.clone()))?;
        let Some(Ok(client)) = self.servers.get(server) else {
            return Err(ToolError::Transient(format!("MCP server `{server}` is not connected")));
        };
        let mut client = client.lock().expect("mcp client lock");
        client.call(tool, args.clone(), timeout).map_err(|e| match e {
            McpError::Timeout { timeout_ms, .. } => ToolError::Timeout { tool: spec.name.clone(), ms: timeout_ms },
            McpError::Start { .. } => ToolError::Transient(e.to_string()),
            other => ToolError::External { tool: spec.name.clone(), message: other.to_string() },
        })
    }
}
