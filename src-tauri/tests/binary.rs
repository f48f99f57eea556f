//! The real `tresor-desktop` binary, without a window: its flags and
//! `--self-check` (what the installed app would run with). Having this
//! integration test also makes `cargo test --workspace --no-run` build the
//! binary that scripts/e2e drives.

use std::process::Command;

fn app() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tresor-desktop"))
}

#[test]
fn version_and_help_exit_without_a_window() {
    let out = app().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("tresor-desktop {}", env!("CARGO_PKG_VERSION")));
    let out = app().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--self-check"));
}

#[test]
fn unknown_flags_and_missing_values_are_clear_errors() {
    let out = app().arg("--frobnicate").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown argument") && err.contains("--frobnicate"), "{err}");
    let out = app().arg("--data-dir").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir needs a folder"));
}

/// `--self-check` reports the folders it was given and which models there
/// are usable (none in an empty models dir), and exits with success exactly
/// when the UI bundle is compiled in.
#[test]
fn self_check_reports_the_given_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (data, models) = (dir.path().join("data"), dir.path().join("models"));
    std::fs::create_dir_all(&models).unwrap();
    let out = app()
        .args(["--self-check", "--data-dir"])
        .arg(&data)
        .arg("--models-dir")
        .arg(&models)
        .env_remove("TRESOR_HOME")
        .env_remove("TRESOR_MODELS")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["data_dir"], serde_json::json!(data));
    assert_eq!(v["models_dir"], serde_json::json!(models));
    assert_eq!(v["models_usable"], serde_json::json!([]));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(out.status.success(), v["ui_bundled"] == true, "exit status must say whether the UI is bundled");
}
