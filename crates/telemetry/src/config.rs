//! The `[telemetry]` section of `assistant.toml` (the engine's settings file;
//! the admin policy has no telemetry section yet): retention, the opt-in for
//! question text, the variant label and the cost table.
//!
//! Owns: these settings and their defaults. Never: reads a file itself (the
//! engine's config loader does).

use serde::{Deserialize, Serialize};

use crate::cost::CostTable;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Off: the engine records no events (KPIs then cover nothing new).
    pub enabled: bool,
    /// Events older than this many days are deleted when the engine opens and by `tresor events purge`.
    pub retention_days: u32,
    /// Keep each question's PII-masked text in its message event (content gaps then show examples).
    /// Off by default: questions are kept only as keyed ids and topic clusters.
    pub store_question_text: bool,
    /// A label for the engine's current settings (A/B comparison with `tresor kpi --by variant`).
    pub variant: String,
    /// Prices for the cost KPIs and the simulator.
    pub cost: CostTable,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { enabled: true, retention_days: 90, store_question_text: false, variant: "default".into(), cost: CostTable::default() }
    }
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.retention_days == 0 {
            return Err("telemetry.retention_days must be at least 1".into());
        }
        self.cost.validate()
    }
}
