//! A stdio MCP server as a child process: started with the policy's command,
//! arguments and environment, its stdout watched for output that is not
//! JSON-RPC, the tail of its stderr kept for error messages.
//!
//! Owns: spawning (Tresor's own `TRESOR_*` variables are not passed on, so a
//! server never sees a passphrase), killing on drop, and the diagnosis of a
//! server that went wrong ([`Diag`]: its exit status, the last lines of its
//! stderr, the first junk line on its stdout).
//! Never: speaks MCP itself (rmcp does, over the pipes this hands out).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How much of the server's stderr is kept (the end of it).
const STDERR_TAIL: usize = 1500;
/// How much of a junk line is quoted.
const JUNK_QUOTE: usize = 120;

/// What went wrong on the server's side, for error messages.
#[derive(Debug, Default)]
pub(crate) struct Diag {
    stderr: String,
    /// The server's stderr reached its end (it exited or closed it): after an
    /// exit, error messages wait for this so they quote all of it.
    stderr_closed: bool,
    junk: Option<String>,
}

impl Diag {
    /// The first stdout line that was not JSON, quoted.
    pub(crate) fn junk(&self) -> Option<String> {
        self.junk.clone()
    }

    /// Whether the reader has seen the end of the server's stderr.
    pub(crate) fn stderr_closed(&self) -> bool {
        self.stderr_closed
    }

    /// The end of the server's stderr, trimmed ("" when it wrote none).
    pub(crate) fn stderr_tail(&self) -> String {
        let t = self.stderr.trim();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }
}

pub(crate) type SharedDiag = Arc<Mutex<Diag>>;

/// Starts `command` with `args` and `env` (over this process's environment
/// without `TRESOR_*`); stdin and stdout piped for MCP, stderr collected.
pub(crate) fn spawn(command: &str, args: &[String], env: &BTreeMap<String, String>, diag: &SharedDiag) -> std::io::Result<(Child, WatchedStdout, ChildStdin)> {
    let mut cmd = Command::new(command);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.env_clear().envs(child_env(std::env::vars_os(), env));
    #[cfg(unix)]
    cmd.process_group(0); // a Ctrl-C at the terminal reaches Tresor, which then ends the server
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    if let Some(mut stderr) = child.stderr.take() {
        let diag = diag.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut d = diag.lock().unwrap_or_else(|e| e.into_inner());
                d.stderr.push_str(&String::from_utf8_lossy(&buf[..n]));
                if d.stderr.len() > 2 * STDERR_TAIL {
                    let mut cut = d.stderr.len() - STDERR_TAIL;
                    while !d.stderr.is_char_boundary(cut) {
                        cut += 1;
                    }
                    d.stderr.drain(..cut);
                }
            }
            diag.lock().unwrap_or_else(|e| e.into_inner()).stderr_closed = true;
        });
    }
    Ok((child, WatchedStdout { inner: stdout, line: Vec::new(), diag: diag.clone() }, stdin))
}

/// A server's environment: `parent`'s without Tresor's own `TRESOR_*`
/// variables (a passphrase never reaches a server), then the policy's `env`.
fn child_env(parent: impl Iterator<Item = (OsString, OsString)>, env: &BTreeMap<String, String>) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = parent.filter(|(k, _)| !k.to_str().is_some_and(|k| k.starts_with("TRESOR_"))).collect();
    out.retain(|(k, _)| !k.to_str().is_some_and(|k| env.contains_key(k)));
    out.extend(env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
    out
}

/// The server's stdout as rmcp reads it. A line that is not JSON (MCP's stdio
/// transport allows nothing else there) ends the stream with an error, so a
/// server that writes junk fails at once instead of at the timeout.
pub(crate) struct WatchedStdout {
    inner: ChildStdout,
    /// The start of the current line (enough to judge it).
    line: Vec<u8>,
    diag: SharedDiag,
}

impl WatchedStdout {
    /// Looks at the bytes just read; the junk line when one ended here.
    fn inspect(&mut self, bytes: &[u8]) -> Option<String> {
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.line).trim().to_string();
                self.line.clear();
                if !line.is_empty() && !line.starts_with('{') && !line.starts_with('[') {
                    return Some(line.chars().take(JUNK_QUOTE).collect());
                }
            } else if self.line.len() < 256 {
                self.line.push(b);
            }
        }
        None
    }
}

impl AsyncRead for WatchedStdout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let fresh = buf.filled()[before..].to_vec();
            if let Some(junk) = self.inspect(&fresh) {
                self.diag.lock().unwrap_or_else(|e| e.into_inner()).junk.get_or_insert(junk.clone());
                buf.set_filled(before); // an error returns no bytes
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not JSON-RPC on stdout: {junk:?}"))));
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_lines_are_recognised_json_lines_pass() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let diag = SharedDiag::default();
            let (_child, mut out, _) = spawn("sh", &["-c".into(), "printf '{\"a\":1}\\n\\n[1]\\nhello world\\n'".into()], &BTreeMap::new(), &diag).unwrap();
            let mut s = String::new();
            let e = out.read_to_string(&mut s).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("hello world"), "{e}");
            assert_eq!(diag.lock().unwrap().junk().as_deref(), Some("hello world"));
        });
    }

    #[test]
    fn tresor_variables_stay_home_the_policy_env_is_passed() {
        let parent = [("PATH", "/bin"), ("TRESOR_PASSPHRASE", "secret"), ("TRESOR_HOME", "/data"), ("LANG", "C"), ("TZ", "UTC")]
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = BTreeMap::from([("TZ".to_string(), "Europe/Berlin".to_string()), ("API_KEY".to_string(), "k".to_string())]);
        let mut got: Vec<(String, String)> = child_env(parent, &env).into_iter().map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap())).collect();
        got.sort();
        let want = [("API_KEY", "k"), ("LANG", "C"), ("PATH", "/bin"), ("TZ", "Europe/Berlin")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn the_policy_env_reaches_the_server_and_its_stderr_is_kept() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let diag = SharedDiag::default();
            let env = BTreeMap::from([("MCP_TEST_VAR".to_string(), "given".to_string())]);
            let script = "echo \"{\\\"v\\\":\\\"$MCP_TEST_VAR\\\"}\"; echo oops >&2";
            let (mut child, mut out, _) = spawn("sh", &["-c".into(), script.into()], &env, &diag).unwrap();
            let mut s = String::new();
            out.read_to_string(&mut s).await.unwrap();
            child.wait().await.unwrap();
            assert_eq!(s.trim(), "{\"v\":\"given\"}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert_eq!(diag.lock().unwrap().stderr_tail(), "oops");
        });
    }
}
