//! The widget tokens a running server knows: tresor-guard's
//! [`WidgetTokenIndex`] over every workspace, re-read when a token file
//! changes (checked at most once a second), so `tresor widget token create`
//! and `revoke` take effect while the server runs. Owns the reload; never
//! holds a plain token (the index keys on hashes).

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use tresor_guard::widget::{WidgetTokenIndex, WidgetTokenMatch};
use tresor_guard::workspace::Workspaces;

pub(crate) struct WidgetTokens {
    workspaces: Workspaces,
    index: RwLock<WidgetTokenIndex>,
    checked: Mutex<Instant>,
}

impl WidgetTokens {
    /// The index now; a malformed token file is logged and retried on the
    /// next check (`tresor serve` reads the files once before it starts, so
    /// it refuses to start over one).
    pub fn load(workspaces: Workspaces) -> Self {
        let index = WidgetTokenIndex::load(&workspaces).unwrap_or_else(|e| {
            tracing::warn!("widget tokens: {e}");
            WidgetTokenIndex::default()
        });
        WidgetTokens { workspaces, index: RwLock::new(index), checked: Mutex::new(Instant::now()) }
    }

    fn refresh(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        *checked = Instant::now();
        if self.index.read().unwrap_or_else(|p| p.into_inner()).is_stale(&self.workspaces) {
            match WidgetTokenIndex::load(&self.workspaces) {
                Ok(i) => *self.index.write().unwrap_or_else(|p| p.into_inner()) = i,
                Err(e) => tracing::warn!("keeping the previous widget tokens: {e}"),
            }
        }
    }

    /// The workspace and record of a presented widget token; only while its workspace exists.
    pub fn lookup(&self, token: &str) -> Option<(WidgetTokenMatch, std::path::PathBuf)> {
        self.refresh();
        let m = self.index.read().unwrap_or_else(|p| p.into_inner()).lookup(token).cloned()?;
        let dir = self.workspaces.open(&m.workspace).ok()?;
        Some((m, dir))
    }

    /// Whether some widget token allows `origin` (a preflight carries no token).
    pub fn origin_known(&self, origin: &str) -> bool {
        self.refresh();
        self.index.read().unwrap_or_else(|p| p.into_inner()).origin_known(origin)
    }
}
