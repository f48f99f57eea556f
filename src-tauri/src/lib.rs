//! Tresor's desktop app: a Tauri 2 shell around the engine. The web UI
//! (`ui/`, bundled into the binary, strict CSP) calls the commands in
//! [`commands`]; answers stream back as `tresor://token` events, ingest and
//! model-pull progress as `tresor://ingest` and `tresor://pull` events.
//!
//! Owns: window and plugin set-up, the engine's lifetime ([`host`]), the
//! app's own settings file ([`settings`]). Hand-offs are the engine's
//! (`tresor_assistant::handoff`, docs/handoff.md). Never: answer logic, retrieval, model code or HTTP — every
//! question goes to `tresor_assistant::Assistant` in-process.
#![forbid(unsafe_code)]

pub mod commands;
pub mod host;
pub mod policy;
pub mod settings;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Result;

/// Where the app keeps its data and finds its models (command-line flags,
/// else `TRESOR_HOME` / `TRESOR_MODELS`, else the platform defaults the CLI uses).
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
}

impl Paths {
    pub fn resolve(data_dir: Option<PathBuf>, models_dir: Option<PathBuf>) -> Paths {
        let data_dir = data_dir
            .or_else(|| std::env::var_os("TRESOR_HOME").map(PathBuf::from))
            .unwrap_or_else(tresor_models::platform_data_dir);
        let models_dir = models_dir
            .or_else(|| std::env::var_os("TRESOR_MODELS").filter(|v| !v.is_empty()).map(PathBuf::from))
            .or_else(|| std::env::current_exe().ok().and_then(|exe| installed_models_dir(&exe)));
        Paths { data_dir, models_dir: tresor_models::resolve_models_dir(models_dir.as_deref()) }
    }
}

/// Models an admin shipped with the installer: `PREFIX/share/tresor/models`
/// next to `PREFIX/bin/tresor-desktop` (see docs/admin.md).
pub fn installed_models_dir(exe: &std::path::Path) -> Option<PathBuf> {
    let dir = exe.parent()?.parent()?.join("share/tresor/models");
    dir.join("manifest.toml").is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn installer_models_next_to_the_binary() {
        let root = tempfile::tempdir().unwrap();
        let exe = root.path().join("usr/bin/tresor-desktop");
        assert_eq!(super::installed_models_dir(&exe), None);
        let models = root.path().join("usr/share/tresor/models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(models.join("manifest.toml"), "").unwrap();
        assert_eq!(super::installed_models_dir(&exe), Some(models));
    }
}

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Marks the process start (first thing in `main`): start-up times are measured from here.
pub fn mark_start() {
    STARTED.get_or_init(Instant::now);
}

/// Milliseconds since [`mark_start`].
pub fn since_start_ms() -> f64 {
    STARTED.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// The app's config, icons and bundled UI, compiled in.
pub fn context() -> tauri::Context<tauri::Wry> {
    tauri::generate_context!()
}

/// Opens the main window and runs until it is closed.
pub fn run(paths: Paths, ctx: tauri::Context<tauri::Wry>) -> Result<()> {
    // nothing readable by other local users (issue #19 §4): files 0600 and folders 0700 from creation
    tresor_guard::private::restrict_umask();
    tresor_guard::private::secure_root(&paths.data_dir)?;
    // the workspace is in use while the app runs: `tresor key rotate` refuses meanwhile
    let _in_use = tresor_guard::crypto::hold_in_use(&paths.data_dir)?;
    let host = host::Host::new(paths);
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .manage(host)
        .setup(|app| {
            use tauri::Manager;
            tracing::info!("window set up {:.0} ms after start", since_start_ms());
            // Unlock the data key (Argon2id) while WebKit starts; no model is
            // loaded here (the engine loads when the user starts typing).
            let handle = app.handle().clone();
            std::thread::spawn(move || {
                if let Err(e) = handle.state::<host::Host>().key() {
                    tracing::warn!("{e:#}");
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::ui_ready,
            commands::unlock,
            commands::warm_up,
            commands::ask,
            commands::stop_answer,
            commands::threads_list,
            commands::thread_messages,
            commands::thread_create,
            commands::thread_rename,
            commands::thread_delete,
            commands::feedback,
            commands::handoff,
            commands::conversation_end,
            commands::idle_timeout,
            commands::kb_list,
            commands::kb_add,
            commands::kb_remove,
            commands::kb_reindex,
            commands::kb_source,
            commands::open_source,
            commands::models_list,
            commands::model_pull,
            commands::settings_get,
            commands::settings_set,
            commands::policy_view,
            commands::confirm_action,
            commands::decline_action,
            commands::get_action,
            commands::list_tools,
            commands::import_tool_data,
            commands::tool_records,
            commands::dashboard,
            commands::simulate,
        ])
        .run(ctx)?;
    Ok(())
}

/// The bundled UI is in the binary (what `--self-check` looks at).
pub fn has_bundled_ui(ctx: &tauri::Context<tauri::Wry>) -> bool {
    ctx.assets().get(&"/index.html".into()).is_some() || ctx.assets().get(&"index.html".into()).is_some()
}
