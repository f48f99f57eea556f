//! `tresor-desktop`: the desktop app's entry point. Flags: `--data-dir`,
//! `--models-dir` (else `TRESOR_HOME` / `TRESOR_MODELS`, else the platform
//! defaults), `--version`, and `--self-check` (prints what the installed app
//! would run with — bundled UI, data dir, models — as JSON, without a window;
//! exit status 1 when the UI is missing). Holds no logic of its own.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

// no console window on Windows release builds
#[cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]
fn main() -> ExitCode {
    if let Some(msg) = tresor_llm::device::cpu_mismatch_message() {
        eprintln!("error: {msg}");
        return ExitCode::FAILURE;
    }
    tresor_desktop::mark_start();
    // WebKitGTK's web process without GPU compositing: the UI is text and
    // forms, and compositing costs the web process ~85 MB (PSS under Xvfb,
    // scripts/bench-desktop). Set before any thread starts (the web process
    // inherits it); WEBKIT_DISABLE_COMPOSITING_MODE=0 keeps WebKit's default.
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tresor-desktop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut data_dir = None;
    let mut models_dir = None;
    let mut self_check = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--version" | "-V") => {
                println!("tresor-desktop {}", env!("CARGO_PKG_VERSION"));
                return Ok(ExitCode::SUCCESS);
            }
            Some("--help" | "-h") => {
                println!("usage: tresor-desktop [--data-dir DIR] [--models-dir DIR] [--self-check] [--version]");
                return Ok(ExitCode::SUCCESS);
            }
            Some("--self-check") => self_check = true,
            Some("--data-dir") => data_dir = Some(PathBuf::from(args.next().context("--data-dir needs a folder")?)),
            Some("--models-dir") => models_dir = Some(PathBuf::from(args.next().context("--models-dir needs a folder")?)),
            _ => bail!("unknown argument {:?} (see --help)", a),
        }
    }
    let paths = tresor_desktop::Paths::resolve(data_dir, models_dir);
    let ctx = tresor_desktop::context();
    if self_check {
        let ui = tresor_desktop::has_bundled_ui(&ctx);
        let models = tresor_models::verify_with(&paths.models_dir, tresor_models::Check::Cached, false)
            .map(|v| v.iter().filter(|m| m.status.is_usable()).map(|m| m.id.clone()).collect::<Vec<_>>())
            .unwrap_or_default();
        let report = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ui_bundled": ui,
            "data_dir": paths.data_dir,
            "models_dir": paths.models_dir,
            "models_usable": models,
        });
        println!("{report}");
        return Ok(if ui { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    tresor_desktop::run(paths, ctx)?;
    Ok(ExitCode::SUCCESS)
}
