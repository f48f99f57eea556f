//! The policy's `[tools]` and `[mcp]` sections: which tools the assistant may
//! call, which of them need the user's confirmation, and which MCP servers it
//! may connect to.
//!
//! Owns: the three-state `[tools] allowed` (absent: every built-in tool; `[]`:
//! none; a list: those), `[tools] denied` (built-in names and `SERVER.tool`,
//! `SERVER.*` for a whole server), `[tools] confirm` (extra tools that need
//! confirmation; side effects always do, the engine decides that part), the
//! `[mcp.servers.NAME]` entries ([`McpServerConfig`]) and their validation
//! (a name of `[a-z0-9_-]`, exactly one of `command` / `url`, loopback URLs
//! only: Tresor never talks to the network).
//! Never: starts a server, connects to one or knows which built-in tools exist
//! (the tools crate does; a name here is only checked for its shape).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::Policy;

/// How long an MCP request may take when the server's entry sets no `timeout_ms`.
pub const DEFAULT_MCP_TIMEOUT_MS: u64 = 30_000;
/// The longest `timeout_ms` an entry may set (10 minutes).
pub const MAX_MCP_TIMEOUT_MS: u64 = 600_000;

/// One `[mcp.servers.NAME]` entry of the admin policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpServerConfig {
    #[serde(flatten)]
    pub transport: McpTransport,
    /// Per-request timeout (connect, list, call); [`DEFAULT_MCP_TIMEOUT_MS`] when absent.
    pub timeout_ms: Option<u64>,
}

/// How Tresor reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum McpTransport {
    /// A child process speaking MCP over its stdin and stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Extra environment variables (values are never shown: `policy show` prints the names).
        #[serde(serialize_with = "env_names")]
        env: BTreeMap<String, String>,
    },
    /// A streamable-HTTP server on this machine (loopback only).
    Http { url: String },
}

fn env_names<S: Serializer>(env: &BTreeMap<String, String>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(env.keys().map(|k| (k, "***")))
}

impl McpServerConfig {
    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_MCP_TIMEOUT_MS))
    }
}

impl Policy {
    /// Whether the policy lets the assistant call `name`: a built-in tool
    /// (`price_lookup`) or an MCP tool (`SERVER.tool`). A denied name never;
    /// an MCP tool while its server is listed in `[mcp.servers]`; a built-in
    /// tool when `[tools] allowed` is absent or lists it.
    pub fn tool_allowed(&self, name: &str) -> bool {
        if self.tool_denied(name) {
            return false;
        }
        match name.split_once('.') {
            Some((server, tool)) => !tool.is_empty() && self.mcp_servers.contains_key(server),
            None => self.allowed_tools.as_ref().is_none_or(|list| list.iter().any(|t| t == name)),
        }
    }

    /// `[tools] allowed`: `None` when absent (every built-in tool), else the list (maybe empty).
    pub fn tools_allowed_list(&self) -> Option<&[String]> {
        self.allowed_tools.as_deref()
    }

    /// Whether `[tools] denied` names `name` (or its server as `SERVER.*`).
    pub fn tool_denied(&self, name: &str) -> bool {
        matches_any(&self.denied_tools, name)
    }

    /// Whether `[tools] confirm` asks for the user's confirmation before `name`
    /// runs. The engine adds every tool with a side effect (and every MCP tool
    /// its server does not mark read-only) on top of these.
    pub fn tool_needs_confirmation(&self, name: &str) -> bool {
        matches_any(&self.confirm_tools, name)
    }

    /// The MCP servers of the admin policy, by name.
    pub fn mcp_servers(&self) -> &BTreeMap<String, McpServerConfig> {
        &self.mcp_servers
    }
}

/// `name` is in `list`, exactly or through a `SERVER.*` entry.
fn matches_any(list: &[String], name: &str) -> bool {
    list.iter().any(|entry| match entry.strip_suffix(".*") {
        Some(server) => name.split_once('.').is_some_and(|(s, _)| s == server),
        None => entry == name,
    })
}

/// An MCP server's name: `[a-z0-9_-]+`.
pub fn valid_server_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A tool name as the policy may write it: a built-in name (`[A-Za-z0-9_-]+`),
/// `SERVER.tool` (the tool part as MCP allows: letters, digits, `_ - . /`), or
/// `SERVER.*` when `wildcard`.
pub(crate) fn check_tool_name(s: &str, wildcard: bool) -> Result<(), String> {
    let builtin = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match s.split_once('.') {
        None if builtin(s) => Ok(()),
        None => Err(format!("`{s}` is not a tool name (letters, digits, `_`, `-`)")),
        Some((server, tool)) => {
            if !valid_server_name(server) {
                return Err(format!("`{s}`: `{server}` is not an MCP server name ([a-z0-9_-])"));
            }
            if tool == "*" {
                return if wildcard { Ok(()) } else { Err(format!("`{s}`: `SERVER.*` is allowed in `denied` and `confirm` only")) };
            }
            let ok = !tool.is_empty() && tool.len() <= 128 && tool.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
            if ok {
                Ok(())
            } else {
                Err(format!("`{s}`: `{tool}` is not an MCP tool name"))
            }
        }
    }
}

/// Checks a streamable-HTTP URL: `http://` or `https://` to this machine
/// (`localhost`, `127.0.0.0/8`, `[::1]`).
pub(crate) fn check_loopback_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else {
        host_port.split(':').next().unwrap_or_default().to_ascii_lowercase()
    };
    let loopback = host == "localhost"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    if host.is_empty() {
        Err(format!("`{url}` names no host"))
    } else if !loopback {
        Err(format!("`{host}` is not this machine: Tresor never talks to the network, an MCP server must listen on localhost, 127.0.0.1 or [::1]"))
    } else {
        Ok(())
    }
}
