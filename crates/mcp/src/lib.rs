//! Tresor and the Model Context Protocol, on the official Rust SDK (`rmcp`).
//!
//! - [`McpClient`]: a blocking client for one MCP server of the admin policy
//!   (`[mcp.servers.NAME]`, [`tresor_guard::policy::McpServerConfig`]): a stdio
//!   child process or a streamable-HTTP URL on this machine. Its tools reach
//!   the engine as `NAME.tool` ([`qualified_name`]).
//! - [`serve_stdio`]: Tresor as an MCP server on stdin/stdout, with the tools
//!   `search_documents` and `ask` over an [`McpBackend`] (the engine facade).
//!
//! Owns: the protocol, its transports, timeouts, and errors that name the
//! server ([`McpError`]). Never: decides whether a tool may run or needs
//! confirmation (the policy and the engine do), discovers servers, or writes
//! anything but protocol messages to stdout.
#![forbid(unsafe_code)]

mod child;
mod client;
mod server;

pub use client::{McpClient, McpTool, PROTOCOL_VERSION};
pub use server::{serve_stdio, McpBackend, ASK_TOOL, SEARCH_TOOL};

/// The engine's name for `tool` of server `server`: `SERVER.tool`.
pub fn qualified_name(server: &str, tool: &str) -> String {
    format!("{server}.{tool}")
}

/// Splits an engine tool name `SERVER.tool` into its server and tool; `None`
/// for a built-in name (no dot).
pub fn split_qualified(name: &str) -> Option<(&str, &str)> {
    name.split_once('.').filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

/// What went wrong with an MCP server; every variant names it.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Its command could not be started or its URL not reached.
    #[error("MCP server `{server}`: {detail}")]
    Start { server: String, detail: String },
    /// It went away: exited, crashed or closed the connection.
    #[error("MCP server `{server}`: {detail}")]
    Closed { server: String, detail: String },
    /// It did not answer in time.
    #[error("MCP server `{server}`: no answer to {what} within {timeout_ms} ms{detail}")]
    Timeout { server: String, what: String, timeout_ms: u64, detail: String },
    /// It does not speak MCP as it should (junk on stdout, a failed handshake, a malformed answer).
    #[error("MCP server `{server}` does not speak MCP: {detail}")]
    Protocol { server: String, detail: String },
    /// It has no tool of that name (as listed at connect).
    #[error("MCP server `{server}` has no tool `{tool}`")]
    UnknownTool { server: String, tool: String },
    /// The tool ran and reported an error, or refused the arguments.
    #[error("MCP server `{server}`: tool `{tool}` failed: {message}")]
    Tool { server: String, tool: String, message: String },
    /// Serving over stdio failed (`tresor mcp serve`).
    #[error("MCP server (tresor): {0}")]
    Serve(String),
}

impl McpError {
    /// The server the error is about ("tresor" for [`McpError::Serve`]).
    pub fn server(&self) -> &str {
        match self {
            McpError::Start { server, .. }
            | McpError::Closed { server, .. }
            | McpError::Timeout { server, .. }
            | McpError::Protocol { server, .. }
            | McpError::UnknownTool { server, .. }
            | McpError::Tool { server, .. } => server,
            McpError::Serve(_) => "tresor",
        }
    }

    /// A timeout (the engine records the action as `timed_out`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, McpError::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_can_live_in_the_engine_on_its_own_thread() {
        fn send<T: Send>() {}
        send::<McpClient>();
        send::<McpError>();
    }

    #[test]
    fn qualified_names_split_at_the_first_dot() {
        assert_eq!(qualified_name("time", "get_current_time"), "time.get_current_time");
        assert_eq!(split_qualified("time.get_current_time"), Some(("time", "get_current_time")));
        assert_eq!(split_qualified("files.read.v2"), Some(("files", "read.v2")));
        assert_eq!(split_qualified("price_lookup"), None);
        assert_eq!(split_qualified(".x"), None);
    }
}
