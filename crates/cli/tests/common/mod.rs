//! Shared by the end-to-end tests of the `tresor` binary: where the shipped
//! models are, a `tresor` command with a clean, deterministic environment
//! (its own data dir, a passphrase, nothing inherited from whoever runs the
//! tests), and the usual "run it and it must succeed / fail" helpers.
//! Each test file includes it with `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// The models directory: `$TRESOR_MODELS` or the checkout's `models/`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("TRESOR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// The models directory, failing the test with the fix when the shipped
/// embedder is not installed (every knowledge-base command needs it).
pub fn models_dir_with_embedder() -> PathBuf {
    let d = models_dir();
    assert!(
        d.join("all-minilm-l6-v2/model.safetensors").exists(),
        "{} has no all-minilm-l6-v2: run `tresor models setup` first",
        d.display()
    );
    d
}

/// True when the shipped embedder is installed; otherwise prints why the
/// calling test is skipped.
pub fn have_models() -> bool {
    let ok = models_dir().join("all-minilm-l6-v2").join("config.json").is_file();
    if !ok {
        eprintln!("note: skipped, the embedding model is not installed in {} (run `tresor models setup`)", models_dir().display());
    }
    ok
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tresor --models-dir MODELS --data-dir HOME` with `passphrase` unlocking
/// the (encrypted) data dir, or no passphrase at all with `None`. Variables
/// that would point it elsewhere (another data dir, workspace, passphrase
/// file, API token, device, the desktop keyring) are removed.
pub fn tresor_with(home: &Path, passphrase: Option<&str>) -> Command {
    tresor_in(home, passphrase, &models_dir())
}

/// [`tresor_with`] on a models directory of the test's own.
pub fn tresor_in(home: &Path, passphrase: Option<&str>, models: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
    c.arg("--models-dir")
        .arg(models)
        .arg("--data-dir")
        .arg(home)
        .env("TRESOR_MODELS", models)
        .env_remove("TRESOR_HOME")
        .env_remove("TRESOR_WORKSPACE")
        .env_remove("TRESOR_PASSPHRASE_FILE")
        .env_remove("TRESOR_NEW_PASSPHRASE")
        .env_remove("TRESOR_API_TOKEN")
        .env_remove("TRESOR_DEVICE")
        // deterministic: never the desktop keyring of whoever runs the tests
        .env("TRESOR_NO_KEYRING", "1");
    match passphrase {
        Some(p) => c.env("TRESOR_PASSPHRASE", p),
        None => c.env_remove("TRESOR_PASSPHRASE"),
    };
    c
}

/// The `tresor` binary bound to one data dir and passphrase: `cmd` builds
/// the command, `run` runs it, `ok`/`json`/`fails` also check the outcome.
pub struct Cli {
    pub home: PathBuf,
    pub passphrase: Option<String>,
    pub models: PathBuf,
}

impl Cli {
    pub fn new(home: &Path, passphrase: Option<&str>) -> Cli {
        Cli::with_models(home, passphrase, &models_dir())
    }

    /// On a models directory of the test's own.
    pub fn with_models(home: &Path, passphrase: Option<&str>, models: &Path) -> Cli {
        Cli { home: home.to_path_buf(), passphrase: passphrase.map(str::to_string), models: models.to_path_buf() }
    }

    pub fn cmd(&self) -> Command {
        tresor_in(&self.home, self.passphrase.as_deref(), &self.models)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run tresor")
    }

    /// Stdout of a run that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        ok_output(&self.run(args), &format!("tresor {args:?}"))
    }

    /// Stdout of a run that must succeed, parsed as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        json_output(&self.run(args), &format!("tresor {args:?}"))
    }

    /// Stderr of a run that must fail.
    pub fn fails(&self, args: &[&str]) -> String {
        failed_output(&self.run(args), &format!("tresor {args:?}"))
    }
}

/// Stdout of a run that must have succeeded; the failure message shows
/// `what`, stderr and stdout.
pub fn ok_output(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a run that must have failed.
pub fn failed_output(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout of a successful run, parsed as JSON.
pub fn json_output(out: &Output, what: &str) -> serde_json::Value {
    let s = ok_output(out, what);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{what}: {e}\n{s}"))
}

/// Spawns `cmd` — a `tresor … serve --addr 127.0.0.1:0 …` command — and
/// returns the child with the address from its first stdout line
/// (`listening on http://ADDR`).
pub fn spawn_server(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start tresor serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected: {line}")).to_string();
    (child, addr)
}
