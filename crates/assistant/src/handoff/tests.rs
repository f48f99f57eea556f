//! The handoff flow through the real engine (hash embedder, scripted chat
//! model): a request for a human in `answer`, the offer after two refusals and
//! after a negative rating, tickets in a folder (mode 0600), an .eml parsed by
//! Python's `email`, an HTTP endpoint served by a real Python `http.server`
//! (and one that is down: the ticket waits in the outbox and goes on retry),
//! the end of a conversation with CSAT asked once, and the events.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use tresor_guard::crypto::WorkspaceKey;
use tresor_guard::policy::Policy;
use tresor_kb::HashEmbedder;
use tresor_telemetry::Window;

use crate::store::Feedback;
use crate::testing::ScriptedModels;
use crate::{AskRequest, Assistant, AssistantConfig};

const AUSTRALIA: &str = "What is the capital of Australia?";
const VACATION: &str = "How many vacation days do full-time employees get?";

fn engine(cfg: AssistantConfig) -> (tempfile::TempDir, Assistant) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs: PathBuf = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("vacation.md"), "# Vacation policy\n\n## Vacation days\n\nFull-time employees get 30 working days of paid vacation per calendar year.\n").unwrap();
    let key = WorkspaceKey::from_bytes([9; 32]);
    let emb = HashEmbedder::new(256);
    crate::scratch::ingest_dir(&data, &key, "default", &docs, &emb).unwrap();
    let models = ScriptedModels::replying("Full-time employees get 30 working days of paid vacation per calendar year [1].");
    let a = Assistant::new(cfg, &data, &key, Arc::new(emb), None, Box::new(models)).unwrap();
    (dir, a)
}

fn ask(a: &mut Assistant, t: i64, q: &str) -> crate::Answer {
    a.answer(&AskRequest { question: q.into(), kb: Some("default".into()), thread: Some(t), ..Default::default() }, &mut |_| {}).unwrap()
}

fn folder_cfg(dir: &Path) -> AssistantConfig {
    let mut c = AssistantConfig::default();
    c.handoff.target = "folder".into();
    c.handoff.dir = Some(dir.to_path_buf());
    c
}

#[test]
fn asking_for_a_human_hands_off_with_a_masked_ticket_in_the_folder() {
    let out = tempfile::tempdir().unwrap();
    let (_d, mut a) = engine(folder_cfg(out.path()));
    let t = a.threads().create_thread("vacation", Some("default")).unwrap();
    let first = ask(&mut a, t, VACATION);
    assert!(!first.refused && !first.sources.is_empty(), "{}", first.answer);
    let h = ask(&mut a, t, "Ich möchte mit einem Menschen sprechen, ich bin unter max.mustermann@example.com erreichbar");
    assert_eq!(h.route, "handoff");
    let r = h.handoff.clone().expect("a receipt");
    assert_eq!((r.status.as_str(), r.target.as_str()), ("delivered", "folder"));
    assert!(h.answer.contains(&r.ticket_id) && h.answer.contains("Kollege"), "{}", h.answer);
    let json_path = out.path().join(format!("{}.json", r.ticket_id));
    let md_path = out.path().join(format!("{}.md", r.ticket_id));
    let ticket: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(ticket["conversation_id"], t);
    assert_eq!(ticket["trigger"], "user_request");
    assert_eq!(ticket["pii"], "mask");
    let msgs = ticket["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{ticket:#}");
    assert!(msgs[2]["text"].as_str().unwrap().contains("[EMAIL]"));
    assert!(!std::fs::read_to_string(&json_path).unwrap().contains("mustermann@example.com"));
    assert!(ticket["sources"][0]["source"].as_str().unwrap().ends_with("vacation.md"), "{ticket:#}");
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.contains(&r.ticket_id) && md.contains("## Conversation") && md.contains("vacation.md"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [&json_path, &md_path] {
            assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
    }
    // no temporary file left behind
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 2);
    // the handoff is an event (escalation) and an audit entry
    let k = a.kpis(&Window::default()).unwrap();
    let k = serde_json::to_value(k).unwrap();
    assert_eq!(k["escalated"], 1, "{k:#}");
    let audit = a.audit_log().entries(None).unwrap();
    assert!(audit.iter().any(|e| e["event"] == "handoff" && e["data"]["ticket_id"] == r.ticket_id.as_str()), "{audit:?}");
    assert_eq!(a.handoff_outbox().unwrap()[0].status, "delivered");
}

#[test]
fn two_refusals_offer_a_human_and_a_negative_rating_too() {
    let out = tempfile::tempdir().unwrap();
    let (_d, mut a) = engine(folder_cfg(out.path()));
    let t = a.threads().create_thread("t", Some("default")).unwrap();
    let r1 = ask(&mut a, t, AUSTRALIA);
    assert!(r1.refused && !r1.offer_handoff);
    let r2 = ask(&mut a, t, "What is the capital of Canada?");
    assert!(r2.refused && r2.offer_handoff, "{}", r2.answer);
    let v = serde_json::to_value(&r2).unwrap();
    assert_eq!(v["offer_handoff"], true);
    assert_eq!(v["ask_csat"], false);
    // a negative rating offers it as well; a positive one does not
    let t2 = a.threads().create_thread("t2", Some("default")).unwrap();
    let ok = ask(&mut a, t2, VACATION);
    let up = a.feedback(&Feedback { message_id: ok.message_id, thumbs: Some(1), ..Default::default() }).unwrap();
    assert!(!up.offer_handoff);
    let down = a.feedback(&Feedback { message_id: ok.message_id, thumbs: Some(-1), comment: Some("wrong".into()), ..Default::default() }).unwrap();
    assert!(down.offer_handoff && down.offer.as_deref().unwrap().contains("colleague"));
    // once handed off, no more offers
    a.handoff(t, Some("two refusals")).unwrap();
    assert!(!ask(&mut a, t, "What is the capital of Peru?").offer_handoff);
}

#[test]
fn closing_message_ends_the_conversation_and_csat_is_asked_and_taken_once() {
    let (_d, mut a) = engine(AssistantConfig::default());
    let t = a.threads().create_thread("t", Some("default")).unwrap();
    ask(&mut a, t, VACATION);
    let bye = ask(&mut a, t, "thanks, bye");
    assert_eq!(bye.route, "closing");
    assert!(bye.ask_csat && bye.answer.contains("1 (poor) to 5"), "{}", bye.answer);
    // the door says it closed later: not asked again
    let again = a.end_conversation(t, Some("closed")).unwrap();
    assert!(!again.ended && !again.ask_csat);
    a.feedback(&Feedback { thread_id: Some(t), csat: Some(4), comment: Some("gut".into()), ..Default::default() }).unwrap();
    let e = a.feedback(&Feedback { thread_id: Some(t), csat: Some(5), ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("already been rated"), "{e}");
    // German, ended by the door
    let t2 = a.threads().create_thread("t2", Some("default")).unwrap();
    ask(&mut a, t2, "Wie viele Urlaubstage bekommen Vollzeitbeschäftigte?");
    let end = a.end_conversation(t2, Some("closed")).unwrap();
    assert!(end.ended && end.ask_csat && end.question.unwrap().contains("zufrieden"));
    // a conversation without an answer is not asked; "idle" before the timeout ends nothing
    let t3 = a.threads().create_thread("t3", Some("default")).unwrap();
    ask(&mut a, t3, VACATION);
    let idle = a.end_conversation(t3, Some("idle")).unwrap();
    assert!(!idle.ended && !idle.ask_csat);
    a.config_mut().handoff.idle_timeout_secs = 0;
    assert!(!a.end_conversation(t3, Some("idle")).unwrap().ended, "0 turns the idle rule off");
    let ev = a.events().unwrap().events(&Window::default()).unwrap();
    let ended = ev.iter().filter(|e| e.event.kind.name() == "conversation_ended").count();
    assert_eq!(ended, 2, "one conversation_ended per conversation, the first end counts");
}

#[test]
fn eml_target_is_an_rfc5322_message_python_parses() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = AssistantConfig::default();
    cfg.handoff.target = "eml".into();
    cfg.handoff.dir = Some(out.path().to_path_buf());
    cfg.handoff.mail_to = "helpdesk@example.com".into();
    let (_d, mut a) = engine(cfg);
    let t = a.threads().create_thread("Urlaub und Überstunden", Some("default")).unwrap();
    ask(&mut a, t, VACATION);
    let r = a.handoff(t, Some("Rückfrage zu Überstunden")).unwrap();
    assert_eq!(r.status, "delivered");
    let path = out.path().join(format!("{}.eml", r.ticket_id));
    let script = r#"
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
assert m['To'] == 'helpdesk@example.com', m['To']
assert m['From'] == 'tresor@localhost', m['From']
assert sys.argv[2] in m['Subject'] and 'Überstunden' in m['Subject'], m['Subject']
assert m['Message-ID'].startswith('<' + sys.argv[2]), m['Message-ID']
assert m['Date'] is not None and m.get_content_type() == 'text/plain'
assert m.get_content_charset() == 'utf-8'
body = m.get_content()
assert 'Rückfrage zu Überstunden' in body and 'vacation.md' in body and '**User**' in body, body
print('ok')
"#;
    let o = Command::new("python3").arg("-c").arg(script).arg(&path).arg(&r.ticket_id).output().expect("python3 runs");
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// A real HTTP server (Python's http.server) that stores each POST body in `dir`.
struct PyServer {
    child: Child,
    port: u16,
}

impl PyServer {
    fn start(dir: &Path) -> PyServer {
        let script = r#"
import sys, http.server, os
d = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers['Content-Length'])
        body = self.rfile.read(n)
        assert self.headers['Content-Type'].startswith('application/json')
        open(os.path.join(d, self.headers['X-Tresor-Ticket'] + '.json'), 'wb').write(body)
        self.send_response(201); self.end_headers(); self.wfile.write(b'{}')
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3").arg("-c").arg(script).arg(dir).stdout(Stdio::piped()).spawn().expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        PyServer { port: line.trim().parse().expect("the port"), child }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_policy(url: &str) -> Policy {
    let text = format!("[handoff]\ntarget = \"http\"\nurl = \"{url}\"\nallowed_urls = [\"{url}\"]\ntimeout_ms = 2000\nretries = 1\n");
    Policy::check_text(&text, Path::new("admin.toml"), tresor_guard::policy::Layer::Admin).unwrap()
}

#[test]
fn http_target_posts_to_a_real_server_and_a_down_endpoint_waits_in_the_outbox() {
    let got = tempfile::tempdir().unwrap();
    let server = PyServer::start(got.path());
    // a port nobody listens on: bind, read the port, close
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead_url = format!("http://127.0.0.1:{dead}/tickets");
    let (_d, mut a) = engine(AssistantConfig::default());
    a.set_policy(http_policy(&dead_url));
    let t = a.threads().create_thread("t", Some("default")).unwrap();
    ask(&mut a, t, VACATION);
    let r = a.handoff(t, None).unwrap();
    assert_eq!(r.status, "queued");
    assert!(r.error.as_deref().unwrap().contains(&dead_url) && r.message.contains("could not be delivered"), "{r:?}");
    assert_eq!(a.handoff_outbox().unwrap()[0].status, "pending");
    // the endpoint comes up (the admin points the policy at it): the retry delivers
    let url = format!("http://127.0.0.1:{}/tickets", server.port);
    a.set_policy(http_policy(&url));
    let retried = a.retry_handoffs().unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].status, "delivered", "{:?}", retried[0]);
    let posted: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(got.path().join(format!("{}.json", r.ticket_id))).unwrap()).unwrap();
    assert_eq!(posted["ticket_id"], r.ticket_id.as_str());
    assert_eq!(posted["conversation_id"], t);
    // a new handoff goes straight through
    let r2 = a.handoff(t, Some("again")).unwrap();
    assert_eq!(r2.status, "delivered");
    assert!(got.path().join(format!("{}.json", r2.ticket_id)).exists());
    // a URL that is not on the admin's list is refused before anything is sent
    let mut cfg = a.config().clone();
    cfg.handoff.target = "http".into();
    cfg.handoff.url = Some("http://127.0.0.1:1/elsewhere".into());
    *a.config_mut() = cfg;
    a.set_policy(Policy::builtin());
    let e = a.handoff(t, None).unwrap_err().to_string();
    assert!(e.contains("allowed_urls"), "{e}");
}

#[test]
fn the_user_policy_cannot_set_a_handoff_target() {
    let e = Policy::check_text("[handoff]\ntarget = \"none\"\n", Path::new("user.toml"), tresor_guard::policy::Layer::User).unwrap_err().to_string();
    assert!(e.contains("admin policy"), "{e}");
    let e = Policy::check_text("[handoff]\nurl = \"http://x.example/t\"\n", Path::new("a.toml"), tresor_guard::policy::Layer::Admin).unwrap_err().to_string();
    assert!(e.contains("allowed_urls"), "{e}");
}

#[test]
fn no_target_keeps_the_ticket_and_says_so() {
    let mut cfg = AssistantConfig::default();
    cfg.handoff.target = "none".into();
    let (_d, mut a) = engine(cfg);
    let t = a.threads().create_thread("t", Some("default")).unwrap();
    let h = ask(&mut a, t, "talk to a person");
    let r = h.handoff.unwrap();
    assert_eq!(r.status, "kept");
    assert!(h.answer.contains("No handoff channel") && h.answer.contains(&r.ticket_id), "{}", h.answer);
}
