//! End-to-end with the real `tresor` binary (issue #20 §2–3): two
//! unanswerable questions in one conversation make the second answer offer a
//! human; "talk to a person" hands the conversation off to the folder target
//! (a ticket file); the .eml target writes a message Python's `email` parses;
//! the HTTP target posts to a real local server (Python's http.server) from
//! the admin policy's list — and when that endpoint is down the command fails
//! clearly and the ticket waits in the outbox until `--retry`; `tresor chat`
//! asks for CSAT at "bye"; `tresor kpi --json` shows the escalation.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

mod common;

use common::{repo, Cli};

struct PyServer {
    child: Child,
    port: u16,
}

impl PyServer {
    /// A real HTTP server that stores each POSTed body as `DIR/<X-Tresor-Ticket>.json`.
    fn start(dir: &Path) -> PyServer {
        let script = r#"
import sys, http.server, os
d = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        open(os.path.join(d, self.headers['X-Tresor-Ticket'] + '.json'), 'wb').write(body)
        self.send_response(201); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3").arg("-c").arg(script).arg(dir).stdout(Stdio::piped()).spawn().expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        PyServer { port: line.trim().parse().expect("port"), child }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_policy(cli: &Cli, policy: &Path, args: &[&str]) -> std::process::Output {
    cli.cmd().env("TRESOR_POLICY", policy).args(args).output().expect("run tresor")
}

#[test]
fn offer_handoff_targets_csat_and_kpi() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let tickets = dir.path().join("tickets");
    let mails = dir.path().join("mails");
    let posted = dir.path().join("posted");
    std::fs::create_dir_all(&posted).unwrap();
    let cli = Cli::with_models(&home, Some("handoff-test-passphrase"), &common::models_dir_with_embedder());
    cli.ok(&["ingest", repo().join("assets/sample-kb").to_str().unwrap()]);
    let policy = dir.path().join("admin-policy.toml");
    std::fs::write(&policy, "").unwrap();
    let toml = |target: &str, d: &Path| format!("[handoff]\ntarget = \"{target}\"\ndir = \"{}\"\nmail_to = \"helpdesk@example.com\"\n", d.display());
    std::fs::write(home.join("assistant.toml"), toml("folder", &tickets)).unwrap();
    let json = |args: &[&str]| common::json_output(&with_policy(&cli, &policy, args), &format!("{args:?}"));

    // two refusals in one conversation: the second offers a human
    let a1 = json(&["ask", "--json", "What is the capital of Australia?"]);
    let c = a1["conversation_id"].as_i64().unwrap();
    assert_eq!((a1["refused"].as_bool(), a1["offer_handoff"].as_bool()), (Some(true), Some(false)), "{a1}");
    let a2 = json(&["ask", "--json", "--conversation", &c.to_string(), "What is the capital of Canada?"]);
    assert_eq!((a2["refused"].as_bool(), a2["offer_handoff"].as_bool()), (Some(true), Some(true)), "{a2}");

    // "talk to a person": the handoff runs in the answer, the ticket lands in the folder
    let h = json(&["ask", "--json", "--conversation", &c.to_string(), "talk to a person"]);
    assert_eq!(h["route"], "handoff", "{h}");
    let id = h["handoff"]["ticket_id"].as_str().unwrap().to_string();
    assert_eq!(h["handoff"]["status"], "delivered");
    assert!(h["answer"].as_str().unwrap().contains(&id));
    let ticket: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tickets.join(format!("{id}.json"))).unwrap()).unwrap();
    assert_eq!(ticket["conversation_id"], c);
    assert_eq!(ticket["messages"].as_array().unwrap().len(), 5, "{ticket:#}");
    assert!(tickets.join(format!("{id}.md")).exists());

    // `tresor handoff` to the .eml target, parsed by Python's email package
    std::fs::write(home.join("assistant.toml"), toml("eml", &mails)).unwrap();
    let out = with_policy(&cli, &policy, &["handoff", &c.to_string(), "--reason", "Bitte Rückruf"]);
    let r = common::json_output(&out, "handoff eml");
    assert!(String::from_utf8_lossy(&out.stderr).contains("delivered to"), "{}", String::from_utf8_lossy(&out.stderr));
    let eml = mails.join(format!("{}.eml", r["ticket_id"].as_str().unwrap()));
    assert_eq!(r["delivered_to"].as_str(), Some(eml.to_str().unwrap()));
    let check = "import sys, email, email.policy\nm = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
assert m['To'] == 'helpdesk@example.com' and m['Message-ID'] and m['Date']\nb = m.get_content()\nassert 'Bitte Rückruf' in b and 'capital of Canada' in b, b\nprint('ok')";
    let py = Command::new("python3").arg("-c").arg(check).arg(&eml).output().unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));

    // HTTP: the endpoint must be on the admin's list; down -> a clear error, the ticket waits; up -> --retry delivers
    let server = PyServer::start(&posted);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = |port: u16| format!("[handoff]\ntarget = \"http\"\nurl = \"http://127.0.0.1:{port}/tickets\"\nallowed_urls = [\"http://127.0.0.1:{port}/tickets\"]\ntimeout_ms = 2000\nretries = 1\n");
    std::fs::write(&policy, admin(dead)).unwrap();
    let down = with_policy(&cli, &policy, &["handoff", &c.to_string()]);
    assert!(!down.status.success());
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("not delivered") && err.contains("outbox") && err.contains(&format!("127.0.0.1:{dead}")), "{err}");
    let queued: serde_json::Value = serde_json::from_slice(&down.stdout).unwrap();
    assert_eq!(queued["status"], "queued");
    std::fs::write(&policy, admin(server.port)).unwrap();
    let retried = common::ok_output(&with_policy(&cli, &policy, &["handoff", "--retry"]), "handoff --retry");
    assert!(retried.contains("\"delivered\""), "{retried}");
    let qid = queued["ticket_id"].as_str().unwrap();
    let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(posted.join(format!("{qid}.json"))).unwrap()).unwrap();
    assert_eq!(got["conversation_id"], c);
    let outbox = json(&["handoff", "--outbox"]);
    assert!(outbox.as_array().unwrap().iter().all(|e| e["status"] == "delivered"), "{outbox}");

    // tresor chat: an answer, then "bye": the CSAT question, the rating is stored once
    let mut chat = cli.cmd().env("TRESOR_POLICY", &policy).arg("chat").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    chat.stdin.take().unwrap().write_all(b"How many vacation days do full-time employees get per year?\nthanks, bye\n4 clear answer\n").unwrap();
    let out = chat.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("1 (poor) to 5") && text.contains("thanks for the rating"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));

    let k = json(&["kpi", "--json"]);
    assert_eq!(k["conversations"], 2, "{k}");
    assert_eq!(k["escalated"], 1, "{k}");
    assert_eq!(k["escalation_rate"], 0.5, "{k}");
    assert_eq!(k["csat"]["count"], 1, "{k}");
    assert_eq!(k["csat"]["mean"], 4.0, "{k}");
}
