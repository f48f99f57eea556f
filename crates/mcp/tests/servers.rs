//! The MCP client against real servers: `mcp-server-time` from PyPI, a
//! server written with the `mcp` Python SDK (stdio and streamable HTTP), and
//! servers that crash, hang or write junk. No mocks: every server is a real
//! process speaking (or failing to speak) MCP.
//!
//! The Python packages (`mcp`, `mcp-server-time`) are installed once per run
//! into a venv under CARGO_TARGET_TMPDIR; without pip the tests fail, unless
//! TRESOR_SKIP_PY_CLIENT is set (offline machines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;
use tresor_guard::policy::{McpServerConfig, McpTransport, Policy};
use tresor_mcp::{McpClient, McpError, PROTOCOL_VERSION};

/// The venv's bin folder, with `mcp` and `mcp-server-time`; `None` only when
/// pip failed and TRESOR_SKIP_PY_CLIENT is set.
fn venv_bin() -> Option<&'static Path> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
        let bin = venv.join("bin");
        let ok = || Command::new(bin.join("python")).args(["-c", "import mcp, mcp_server_time"]).status().is_ok_and(|s| s.success());
        if ok() {
            return Ok(bin);
        }
        let st = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().map_err(|e| format!("python3 -m venv: {e}"))?;
        if !st.success() {
            return Err(format!("python3 -m venv {} failed", venv.display()));
        }
        let st = Command::new(bin.join("pip")).args(["install", "-q", "mcp", "mcp-server-time"]).status().map_err(|e| format!("pip: {e}"))?;
        if !st.success() || !ok() {
            return Err("pip install mcp mcp-server-time failed".into());
        }
        Ok(bin)
    });
    match made {
        Ok(bin) => Some(bin.as_path()),
        Err(e) if std::env::var_os("TRESOR_SKIP_PY_CLIENT").is_some() => {
            eprintln!("skipped: {e} and TRESOR_SKIP_PY_CLIENT is set");
            None
        }
        Err(e) => panic!("{e}: the MCP tests need the mcp and mcp-server-time packages from PyPI; set TRESOR_SKIP_PY_CLIENT=1 offline"),
    }
}

/// A server entry as the admin policy would give it (parsed from TOML, so the
/// tests go through the same door as `tresor mcp list`).
fn from_policy(toml: &str, name: &str) -> McpServerConfig {
    let p = Policy::check_text(toml, Path::new("admin.toml"), tresor_guard::policy::Layer::Admin).unwrap();
    p.mcp_servers()[name].clone()
}

fn stdio(command: &str, args: &[&str]) -> McpServerConfig {
    McpServerConfig { transport: McpTransport::Stdio { command: command.into(), args: args.iter().map(|s| s.to_string()).collect(), env: BTreeMap::new() }, timeout_ms: None }
}

/// Python import on a busy machine: generous for a start, the fault tests use short ones.
const START: Duration = Duration::from_secs(60);

#[test]
fn mcp_server_time_from_pypi_lists_its_tools_and_answers() {
    let Some(bin) = venv_bin() else { return };
    let toml = format!(
        "[mcp.servers.time]\ncommand = {:?}\nargs = [\"--local-timezone\", \"Europe/Berlin\"]\ntimeout_ms = 60000\n",
        bin.join("mcp-server-time").display().to_string()
    );
    let config = from_policy(&toml, "time");
    let mut c = McpClient::connect("time", &config, config.timeout()).unwrap();
    assert_eq!(c.protocol_version(), PROTOCOL_VERSION);
    assert!(c.server_info().starts_with("mcp-time"), "{}", c.server_info());
    let names: Vec<&str> = c.tools().iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"get_current_time") && names.contains(&"convert_time"), "{names:?}");
    let now = c.tools().iter().find(|t| t.name == "get_current_time").unwrap().clone();
    assert!(!now.description.is_empty());
    assert_eq!(now.input_schema["type"], "object");
    assert!(now.input_schema["properties"]["timezone"].is_object(), "{}", now.input_schema);
    assert!(now.read_only, "mcp-server-time marks its tools read-only");

    let v = c.call("get_current_time", json!({"timezone": "Asia/Tokyo"}), START).unwrap();
    assert_eq!(v["timezone"], "Asia/Tokyo", "{v}");
    assert!(v["datetime"].as_str().is_some_and(|d| d.contains("+09:00")), "{v}");
    let v = c.call("convert_time", json!({"source_timezone": "Europe/Berlin", "time": "12:00", "target_timezone": "UTC"}), START).unwrap();
    assert!(v["target"]["datetime"].as_str().is_some_and(|d| d.contains("T1")), "{v}");

    // a bad argument is the tool's error, named; an unknown tool is refused before anything is sent
    let e = c.call("get_current_time", json!({"timezone": "Mars/Olympus"}), START).unwrap_err();
    assert!(matches!(&e, McpError::Tool { server, tool, .. } if server == "time" && tool == "get_current_time"), "{e}");
    let e = c.call("set_time", json!({}), START).unwrap_err();
    assert_eq!(e.to_string(), "MCP server `time` has no tool `set_time`");
    let e = c.call("get_current_time", json!("Europe/Berlin"), START).unwrap_err();
    assert!(e.to_string().contains("must be a JSON object"), "{e}");
}

/// A server written with the `mcp` Python SDK (MCPServer, formerly FastMCP):
/// a read-only tool, a side-effect tool, a failing, a crashing and a slow one.
const PY_SERVER: &str = r#"
import os, sys, time
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

app = MCPServer("tresor-test-server")
NOTES = []

@app.tool(annotations=ToolAnnotations(readOnlyHint=True))
def lookup_stock(sku: str) -> dict:
    """How many pieces of an article (by SKU) are in stock."""
    return {"sku": sku, "in_stock": 7 if sku == "A-1" else 0}

@app.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
def add_note(text: str) -> str:
    """Store a note (a side effect)."""
    NOTES.append(text)
    return f"stored note {len(NOTES)}: {text}"

@app.tool()
def out_of_paper() -> str:
    """Always fails."""
    raise ToolError("the printer is out of paper")

@app.tool()
def crash() -> str:
    """Ends the server process."""
    os._exit(7)

@app.tool()
def slow(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "done"

if sys.argv[1:2] == ["http"]:
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
else:
    app.run()
"#;

fn py_server_file() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-test-server.py");
    std::fs::write(&path, PY_SERVER).unwrap();
    path
}

/// What both transports must do with the Python SDK's server.
fn exercise_py_server(c: &mut McpClient) {
    assert_eq!(c.protocol_version(), PROTOCOL_VERSION);
    let tool = |name: &str| c.tools().iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no {name}: {:?}", c.tools())).clone();
    let stock = tool("lookup_stock");
    assert!(stock.read_only);
    assert_eq!(stock.description, "How many pieces of an article (by SKU) are in stock.");
    assert_eq!(stock.input_schema["required"], json!(["sku"]), "{}", stock.input_schema);
    assert!(!tool("add_note").read_only, "readOnlyHint false");
    assert!(!tool("slow").read_only, "no annotations: not read-only");

    let v = c.call("lookup_stock", json!({"sku": "A-1"}), START).unwrap();
    assert_eq!(v["in_stock"], 7, "{v}");
    let v = c.call("add_note", json!({"text": "call Anna back"}), START).unwrap();
    assert!(v.to_string().contains("stored note 1: call Anna back"), "{v}");
    let e = c.call("out_of_paper", json!({}), START).unwrap_err();
    assert!(e.to_string().contains("out of paper") && e.to_string().contains("out_of_paper"), "{e}");
    // a missing required argument is refused by the server's own schema check
    let e = c.call("lookup_stock", json!({}), START).unwrap_err();
    assert!(matches!(e, McpError::Tool { .. }), "{e}");
    // a call that hangs: a timeout in bounded time
    let t = Instant::now();
    let e = c.call("slow", json!({"seconds": 30}), Duration::from_millis(1500)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(e.to_string().contains("within 1500 ms"), "{e}");
}

#[test]
fn a_python_sdk_server_over_stdio() {
    let Some(bin) = venv_bin() else { return };
    let script = py_server_file();
    let config = stdio(bin.join("python").to_str().unwrap(), &[script.to_str().unwrap()]);
    let mut c = McpClient::connect("shop", &config, START).unwrap();
    exercise_py_server(&mut c);
    // the server crashes during a call: a clear error naming it and its exit, in bounded time
    let t = Instant::now();
    let e = c.call("crash", json!({}), START).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(matches!(e, McpError::Closed { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("MCP server `shop`") && msg.contains("exit status: 7"), "{msg}");
}

/// A free port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something on `port` answers an HTTP request.
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_python_sdk_server_over_streamable_http() {
    let Some(bin) = venv_bin() else { return };
    let script = py_server_file();
    let port = free_port();
    let _server = KillOnDrop(Command::new(bin.join("python")).arg(&script).args(["http", &port.to_string()]).stderr(std::process::Stdio::null()).spawn().unwrap());
    let t = Instant::now();
    // up when it answers HTTP (a listening socket alone is not enough: uvicorn accepts before its app starts)
    while !answers_http(port) {
        assert!(t.elapsed() < START, "the HTTP server did not come up on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = from_policy(&format!("[mcp.servers.shop]\nurl = \"http://127.0.0.1:{port}/mcp\"\n"), "shop");
    let mut c = McpClient::connect("shop", &config, START).unwrap();
    exercise_py_server(&mut c);
}

#[test]
fn an_http_server_that_is_not_there_is_a_clear_error() {
    let port = free_port();
    let config = from_policy(&format!("[mcp.servers.crm]\nurl = \"http://127.0.0.1:{port}/mcp\"\n"), "crm");
    let t = Instant::now();
    let e = McpClient::connect("crm", &config, Duration::from_secs(20)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(matches!(e, McpError::Start { .. }), "{e}");
    assert!(e.to_string().starts_with("MCP server `crm`: cannot reach the server"), "{e}");
}

// ---------------------------------------------------------------- servers that go wrong

#[test]
fn a_server_that_exits_at_once_names_its_exit_and_stderr() {
    let config = stdio("sh", &["-c", "echo 'fatal: no config file' >&2; exit 3"]);
    let t = Instant::now();
    let e = McpClient::connect("broken", &config, Duration::from_secs(20)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(matches!(e, McpError::Closed { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("MCP server `broken`: the server exited (exit status: 3)"), "{msg}");
    assert!(msg.contains("fatal: no config file"), "{msg}");
}

#[test]
fn a_command_that_does_not_exist_is_a_start_error() {
    let e = McpClient::connect("ghost", &stdio("/nonexistent/mcp-server", &[]), Duration::from_secs(5)).unwrap_err();
    assert!(matches!(e, McpError::Start { .. }), "{e}");
    assert!(e.to_string().contains("cannot start `/nonexistent/mcp-server`"), "{e}");
}

#[test]
fn a_server_that_never_answers_times_out_and_is_killed() {
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    let script = format!("echo $$ > {}; exec sleep 600", pid_file.path().display());
    let config = stdio("sh", &["-c", &script]);
    let t = Instant::now();
    let e = McpClient::connect("mute", &config, Duration::from_secs(2)).unwrap_err();
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(8), "{took:?}");
    assert!(e.is_timeout(), "{e}");
    assert_eq!(e.to_string(), "MCP server `mute`: no answer to the initialize handshake within 2000 ms");
    // the child was killed with the failed client
    let pid = std::fs::read_to_string(pid_file.path()).unwrap().trim().to_string();
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(t.elapsed() < Duration::from_secs(5), "server process {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_server_that_writes_junk_fails_at_once_and_quotes_it() {
    let config = stdio("sh", &["-c", "echo 'Starting server v1.2 ...'; exec sleep 600"]);
    let t = Instant::now();
    let e = McpClient::connect("noisy", &config, Duration::from_secs(20)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(matches!(e, McpError::Protocol { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("MCP server `noisy` does not speak MCP") && msg.contains("Starting server v1.2"), "{msg}");
}

#[test]
fn a_server_that_answers_json_that_is_not_mcp_times_out_in_bounded_time() {
    // valid JSON lines but never a JSON-RPC answer: rmcp skips them, the timeout ends it
    let config = stdio("sh", &["-c", "while true; do echo '{\"hello\": \"world\"}'; sleep 0.2; done"]);
    let t = Instant::now();
    let e = McpClient::connect("odd", &config, Duration::from_secs(2)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(e.is_timeout() || matches!(e, McpError::Protocol { .. }), "{e}");
    assert!(e.to_string().starts_with("MCP server `odd`"), "{e}");
}
