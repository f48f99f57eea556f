//! End-to-end: `tresor mcp list` over an admin policy with a real MCP server
//! from PyPI (`mcp-server-time`) and a broken one, and `tresor mcp serve`
//! driven by the real `mcp` Python client SDK (initialize, list_tools,
//! search_documents, ask) over a small ingested knowledge base and the shipped
//! models. The Python packages are installed once per run into a venv under
//! CARGO_TARGET_TMPDIR; without pip the tests fail, unless
//! TRESOR_SKIP_PY_CLIENT is set (offline machines).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

mod common;

use common::repo;

const PASSPHRASE: &str = "mcp-test-passphrase";

/// The venv's bin folder with `mcp` and `mcp-server-time`; `None` only when
/// pip failed and TRESOR_SKIP_PY_CLIENT is set.
fn venv_bin() -> Option<&'static Path> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-cli-venv");
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

/// `tresor` on `home` under the admin policy `policy` (no admin keys).
fn tresor(home: &Path, policy: Option<&Path>) -> Command {
    let mut c = common::tresor_with(home, Some(PASSPHRASE));
    c.env("TRESOR_ADMIN_KEYS", "");
    match policy {
        Some(p) => c.env("TRESOR_POLICY", p),
        None => c.env_remove("TRESOR_POLICY"),
    };
    c
}

#[test]
fn mcp_list_shows_the_policy_servers_their_tools_and_what_failed() {
    let Some(bin) = venv_bin() else { return };
    let home = tempfile::tempdir().unwrap();
    let policy = home.path().join("admin-policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[tools]\ndenied = [\"time.convert_time\"]\n\n\
             [mcp.servers.time]\ncommand = {:?}\nargs = [\"--local-timezone\", \"Europe/Berlin\"]\ntimeout_ms = 60000\n\n\
             [mcp.servers.broken]\ncommand = \"sh\"\nargs = [\"-c\", \"echo 'no licence key' >&2; exit 3\"]\ntimeout_ms = 20000\n",
            bin.join("mcp-server-time").display().to_string()
        ),
    )
    .unwrap();
    let out = tresor(home.path(), Some(&policy)).args(["mcp", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.iter().map(|s| s["name"].as_str().unwrap()).collect::<Vec<_>>(), ["broken", "time"]);
    let time = &servers[1];
    assert_eq!(time["error"], Value::Null, "{time}");
    assert_eq!(time["transport"], "stdio");
    assert_eq!(time["protocol_version"], "2025-11-25");
    let tool = |name: &str| time["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no {name}: {time}")).clone();
    let now = tool("time.get_current_time");
    assert_eq!((now["tool"].as_str(), now["read_only"].as_bool(), now["allowed"].as_bool()), (Some("get_current_time"), Some(true), Some(true)));
    assert_eq!(now["needs_confirmation"], false);
    assert!(now["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(now["input_schema"]["type"], "object");
    assert_eq!(tool("time.convert_time")["allowed"], false, "denied by the policy");
    let broken = &servers[0];
    let err = broken["error"].as_str().unwrap();
    assert!(err.starts_with("MCP server `broken`") && err.contains("exit status: 3") && err.contains("no licence key"), "{err}");
    assert_eq!(broken["tools"], serde_json::json!([]));

    // the text form: NAME.tool, marks, and the error
    let out = tresor(home.path(), Some(&policy)).args(["mcp", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("time.get_current_time [read-only]"), "{text}");
    assert!(text.contains("time.convert_time [read-only, denied by policy]"), "{text}");
    assert!(text.contains("error: MCP server `broken`"), "{text}");

    // a user's policy cannot add a server
    std::fs::write(home.path().join("policy.toml"), "[mcp.servers.evil]\ncommand = \"sh\"\n").unwrap();
    let out = tresor(home.path(), None).args(["mcp", "list"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy.toml:1") && err.contains("admin policy"), "{err}");
}

/// Drives `tresor mcp serve` with the `mcp` Python SDK's stdio client.
const PY_CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            init = (await s.initialize()).model_dump(by_alias=True, exclude_none=True)
            tools = [t.model_dump(by_alias=True, exclude_none=True) for t in (await s.list_tools()).tools]
            found = (await s.call_tool("search_documents", {"query": "vacation days full-time employees", "k": 3})).model_dump(by_alias=True, exclude_none=True)
            answer = (await s.call_tool("ask", {"question": "How many vacation days do full-time employees get?"})).model_dump(by_alias=True, exclude_none=True)
            bad = (await s.call_tool("search_documents", {"k": 3})).model_dump(by_alias=True, exclude_none=True)
            nokb = (await s.call_tool("ask", {"question": "x", "kb": "nope"})).model_dump(by_alias=True, exclude_none=True)
    print(json.dumps({"init": init, "tools": tools, "search": found, "ask": answer, "bad": bad, "nokb": nokb}))

asyncio.run(main())
"#;

/// A data dir with the English vacation policy ingested as `default`.
fn ingested_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let docs = home.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(repo().join("assets/sample-kb/handbook/vacation-policy.md"), docs.join("vacation-policy.md")).unwrap();
    let out = tresor(home.path(), None).args(["ingest", docs.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    home
}

#[test]
fn mcp_serve_answers_the_python_sdk_client() {
    common::models_dir_with_embedder();
    let Some(bin) = venv_bin() else { return };
    let home = ingested_home();
    let script = home.path().join("client.py");
    std::fs::write(&script, PY_CLIENT).unwrap();
    // the client starts `tresor ... mcp serve` itself, with this environment (passphrase, models)
    let models = common::models_dir();
    let mut py = Command::new(bin.join("python"));
    py.arg(&script)
        .arg(env!("CARGO_BIN_EXE_tresor"))
        .args(["--data-dir", home.path().to_str().unwrap(), "--models-dir", models.to_str().unwrap(), "mcp", "serve"])
        .env("TRESOR_PASSPHRASE", PASSPHRASE)
        .env("TRESOR_NO_KEYRING", "1")
        .env("TRESOR_ADMIN_KEYS", "")
        .env_remove("TRESOR_POLICY")
        .env_remove("TRESOR_HOME")
        .env_remove("TRESOR_WORKSPACE")
        .env_remove("TRESOR_PASSPHRASE_FILE");
    let out = py.output().unwrap();
    assert!(out.status.success(), "python client failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("negotiated protocol version: {}", v["init"]["protocolVersion"]);
    assert_eq!(v["init"]["protocolVersion"], "2025-11-25", "{}", v["init"]);
    assert_eq!(v["init"]["serverInfo"]["name"], "tresor");

    let tools = v["tools"].as_array().unwrap();
    assert_eq!(tools.iter().map(|t| t["name"].as_str().unwrap()).collect::<Vec<_>>(), ["search_documents", "ask"]);
    for t in tools {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    assert_eq!(tools[0]["inputSchema"]["required"], serde_json::json!(["query"]));
    assert_eq!(tools[1]["inputSchema"]["required"], serde_json::json!(["question"]));

    let search = &v["search"];
    assert_ne!(search["isError"], true, "{search}");
    let results = search["structuredContent"]["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 3, "{search}");
    let first = &results[0];
    assert!(first["source"].as_str().unwrap().ends_with("vacation-policy.md"), "{first}");
    assert!(first["excerpt"].as_str().is_some_and(|e| !e.is_empty()) && first["score"].is_number() && first["heading"].is_string(), "{first}");
    // the same result as text for clients that read content only
    let text: Value = serde_json::from_str(search["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, search["structuredContent"]);

    let ask = &v["ask"];
    assert_ne!(ask["isError"], true, "{ask}");
    let a = &ask["structuredContent"];
    assert_eq!(a["refused"], false, "{a}");
    assert!(a["answer"].as_str().unwrap().contains("30"), "{a}");
    assert!(a["sources"][0]["source"].as_str().unwrap().ends_with("vacation-policy.md"), "{a}");
    assert_eq!(a["sources"][0]["n"], 1);

    // bad arguments and a missing knowledge base are tool errors with a message, not protocol errors
    assert_eq!(v["bad"]["isError"], true, "{}", v["bad"]);
    assert!(v["bad"]["content"][0]["text"].as_str().unwrap().contains("`query` is required"), "{}", v["bad"]);
    assert_eq!(v["nokb"]["isError"], true, "{}", v["nokb"]);
    assert!(v["nokb"]["content"][0]["text"].as_str().unwrap().contains("nope"), "{}", v["nokb"]);
}

#[test]
fn mcp_serve_writes_nothing_but_protocol_messages_to_stdout() {
    common::models_dir_with_embedder();
    let home = ingested_home();
    let mut child = tresor(home.path(), None)
        .args(["-vv", "mcp", "serve"]) // debug logs: they must all go to stderr
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let send = |stdin: &mut std::process::ChildStdin, v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    send(
        &mut stdin,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}),
    );
    let mut lines = stdout.lines();
    let init: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    send(&mut stdin, serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(&mut stdin, serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search_documents", "arguments": {"query": "vacation", "k": 2}}}));
    drop(stdin); // end of input: the server finishes and exits
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!rest.is_empty(), "no answer to the call; stderr: {stderr}");
    for line in &rest {
        let m: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line:?}"));
        assert_eq!(m["jsonrpc"], "2.0", "{line}");
    }
    let call: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(call["id"], 2);
    assert!(call["result"]["structuredContent"]["results"][0]["source"].as_str().unwrap().ends_with("vacation-policy.md"), "{call}");
    assert!(stderr.contains("DEBUG") || stderr.contains("INFO"), "the logs went to stderr: {stderr}");
}
