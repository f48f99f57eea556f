//! The desktop app's own preferences (`desktop.json` in the data dir):
//! language and theme. The UI language defaults to German on a German OS
//! locale, English otherwise. Owns nothing of the engine's configuration
//! (that is `assistant.toml`, read by tresor-assistant).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const FILE: &str = "desktop.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Settings {
    /// "de" or "en".
    #[ts(type = "'de' | 'en'")]
    pub lang: String,
    /// "light", "dark" or "system".
    #[ts(type = "'light' | 'dark' | 'system'")]
    pub theme: String,
}

/// "de" when the OS locale (LC_ALL, LC_MESSAGES, LANG, in POSIX order) is German, else "en".
pub fn locale_lang(env: &dyn Fn(&str) -> Option<String>) -> &'static str {
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"].iter().filter_map(|k| env(k)).find(|v| !v.is_empty()).unwrap_or_default();
    if locale.to_ascii_lowercase().starts_with("de") {
        "de"
    } else {
        "en"
    }
}

impl Settings {
    pub fn defaults(env: &dyn Fn(&str) -> Option<String>) -> Settings {
        Settings { lang: locale_lang(env).to_string(), theme: "system".to_string() }
    }

    /// The saved settings, or the defaults for this locale when none were saved.
    /// A damaged file is an error (it is not silently replaced).
    pub fn load(data_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
        let path = data_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let v: Settings = serde_json::from_str(&s).with_context(|| format!("reading {}", path.display()))?;
                v.validate()?;
                Ok(v)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::defaults(env)),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.lang.as_str(), "de" | "en") {
            bail!("language must be \"de\" or \"en\", not {:?}", self.lang);
        }
        if !matches!(self.theme.as_str(), "light" | "dark" | "system") {
            bail!("theme must be \"light\", \"dark\" or \"system\", not {:?}", self.theme);
        }
        Ok(())
    }

    /// Validates, then writes atomically (temp file + rename).
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        self.validate()?;
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE);
        let tmp = data_dir.join(format!(".{FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn german_locale_defaults_to_german() {
        assert_eq!(locale_lang(&env(&[("LANG", "de_DE.UTF-8")])), "de");
        assert_eq!(locale_lang(&env(&[("LANG", "de_AT.UTF-8"), ("LC_ALL", "en_US.UTF-8")])), "en");
        assert_eq!(locale_lang(&env(&[("LC_MESSAGES", "de_CH.UTF-8"), ("LANG", "C")])), "de");
        assert_eq!(locale_lang(&env(&[])), "en");
    }

    #[test]
    fn saved_settings_round_trip_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(&[("LANG", "de_DE.UTF-8")]);
        assert_eq!(Settings::load(dir.path(), &e).unwrap(), Settings { lang: "de".into(), theme: "system".into() });
        let s = Settings { lang: "en".into(), theme: "dark".into() };
        s.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path(), &e).unwrap(), s);
        assert!(Settings { lang: "fr".into(), theme: "dark".into() }.save(dir.path()).is_err());
        assert_eq!(Settings::load(dir.path(), &e).unwrap(), s, "a refused save keeps the old file");
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(Settings::load(dir.path(), &e).is_err());
    }
}
