//! The cost model (docs/kpi.md#cost): local inference costs energy (the
//! machine's draw in W × busy time × price per kWh) plus hardware amortised
//! over its hours of inference; a cloud price list (per million tokens in
//! and out) prices the same tokens for comparison; a handoff costs what a
//! human contact costs. Every number is an overridable default in
//! `[telemetry.cost]` of assistant.toml.
//!
//! Owns: the table and the per-message arithmetic. Never: measures power.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CostTable {
    /// Currency of the local and handoff prices.
    pub currency: String,
    /// Power the machine draws while answering, W (a desktop CPU under load).
    pub watts: f64,
    /// Electricity price per kWh.
    pub price_per_kwh: f64,
    /// Purchase price of the machine.
    pub hardware_price: f64,
    /// Hours of inference the hardware price is spread over (3 years × 2000 working hours).
    pub amortisation_hours: f64,
    /// What one handoff to a human costs (a contact-centre contact).
    pub handoff_cost: f64,
    /// Cloud models to compare with.
    pub cloud: Vec<CloudPrice>,
}

/// A cloud model's list price per million tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudPrice {
    pub name: String,
    pub currency: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Default for CostTable {
    fn default() -> Self {
        let cloud = |name: &str, i: f64, o: f64| CloudPrice { name: name.into(), currency: "USD".into(), input_per_mtok: i, output_per_mtok: o };
        CostTable {
            currency: "EUR".into(),
            watts: 65.0,
            price_per_kwh: 0.35,
            hardware_price: 1200.0,
            amortisation_hours: 6000.0,
            handoff_cost: 6.0,
            // published list prices (USD per 1M tokens) when this table was written; override them
            cloud: vec![cloud("gpt-4o-mini", 0.15, 0.60), cloud("gpt-4o", 2.50, 10.00), cloud("claude-3-5-haiku", 0.80, 4.00)],
        }
    }
}

impl CostTable {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("watts", self.watts),
            ("price_per_kwh", self.price_per_kwh),
            ("hardware_price", self.hardware_price),
            ("handoff_cost", self.handoff_cost),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("telemetry.cost.{name} must be a number ≥ 0 (got {v})"));
            }
        }
        if !(self.amortisation_hours > 0.0) {
            return Err("telemetry.cost.amortisation_hours must be > 0".into());
        }
        Ok(())
    }

    /// kWh for `busy_ms` of inference.
    pub fn energy_kwh(&self, busy_ms: f64) -> f64 {
        self.watts * (busy_ms / 3.6e6) / 1000.0
    }

    /// Local cost of `busy_ms` of inference: energy + amortisation.
    pub fn local(&self, busy_ms: f64) -> f64 {
        let hours = busy_ms / 3.6e6;
        self.energy_kwh(busy_ms) * self.price_per_kwh + self.hardware_price / self.amortisation_hours * hours
    }

    /// What `tokens_in` / `tokens_out` cost at `p`.
    pub fn cloud(p: &CloudPrice, tokens_in: u64, tokens_out: u64) -> f64 {
        (tokens_in as f64 * p.input_per_mtok + tokens_out as f64 * p.output_per_mtok) / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hour_costs_energy_plus_amortisation() {
        let c = CostTable { watts: 100.0, price_per_kwh: 0.5, hardware_price: 600.0, amortisation_hours: 600.0, ..Default::default() };
        assert!((c.energy_kwh(3.6e6) - 0.1).abs() < 1e-12);
        assert!((c.local(3.6e6) - (0.05 + 1.0)).abs() < 1e-12);
        let p = &c.cloud[0];
        assert!((CostTable::cloud(p, 1_000_000, 0) - p.input_per_mtok).abs() < 1e-12);
        assert!(CostTable { amortisation_hours: 0.0, ..Default::default() }.validate().is_err());
    }
}
