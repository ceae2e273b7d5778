//! Configuration: embedded defaults, then a TOML file, then `SLUICE_*`
//! environment variables, then command-line flags (applied by the binary),
//! each overriding the one before.
//!
//! Every key and its default is documented in `config/sluice.toml`.
//!
//! One rule for where a section lives: each `[section]` struct is defined in
//! the module that owns it (`[server]` in `server`, `[store]` in `blocks`,
//! `[gateway]` in `gateway`, `[hints]` in `routing`, `[dns]` in `names::dnslink`, `[sessions]` in `session`, `[log]` in `log`, and so
//! on); this module only assembles them into [`Config`] and loads it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blocks::StoreConfig;
use crate::control::MetricsConfig;
use crate::fetch::bitswap::BitswapConfig;
use crate::fetch::RetrievalConfig;
use crate::gateway::limits::LimitsConfig;
use crate::gateway::GatewayConfig;
use crate::log::LogConfig;
use crate::names::{DnsConfig, NamesConfig};
use crate::p2p::{DhtConfig, P2pConfig};
use crate::routing::{HintsConfig, RoutingConfig};
use crate::server::ServerConfig;
use crate::session::SessionsConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub gateway: GatewayConfig,
    pub hints: HintsConfig,
    pub p2p: P2pConfig,
    pub dht: DhtConfig,
    pub retrieval: RetrievalConfig,
    pub sessions: SessionsConfig,
    pub bitswap: BitswapConfig,
    pub routing: RoutingConfig,
    pub names: NamesConfig,
    pub dns: DnsConfig,
    pub limits: LimitsConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid value in environment variable {var}: {reason}")]
    Env { var: String, reason: String },
}

impl Config {
    /// Defaults, overridden by `file` (if given), then by the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut value = toml::Value::try_from(Config::default()).expect("defaults serialize");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            // Parse into the typed form first so unknown keys and bad types
            // are reported against the file.
            let parsed: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
            value = toml::Value::try_from(parsed).expect("config serializes");
        }
        apply_env(&mut value, env)?;
        value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Env {
                var: "SLUICE_*".into(),
                reason: e.to_string(),
            })
    }

    /// The data directory with a leading `~` expanded.
    pub fn data_dir(&self) -> PathBuf {
        expand_home(&self.store.data_dir)
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// `SLUICE_<SECTION>_<KEY>` overrides `[section] key`; the value is read as
/// a TOML value (so numbers, booleans and arrays work) or else as a string.
fn apply_env(
    value: &mut toml::Value,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let env: Vec<(String, String)> = env.filter(|(k, _)| k.starts_with("SLUICE_")).collect();
    let Some(sections) = value.as_table_mut() else {
        return Ok(());
    };
    for (section_name, section) in sections.iter_mut() {
        let Some(section) = section.as_table_mut() else {
            continue;
        };
        for (key, slot) in section.iter_mut() {
            let var = format!("SLUICE_{}_{}", section_name, key).to_uppercase();
            let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) else {
                continue;
            };
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| v.same_type(slot))
                .unwrap_or_else(|| toml::Value::String(raw.clone()));
            if !parsed.same_type(slot) {
                return Err(ConfigError::Env {
                    var,
                    reason: format!("expected a {}, got {raw:?}", slot.type_str()),
                });
            }
            *slot = parsed;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[store]\ncache_bytes = 5\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), env(&[("SLUICE_STORE_CACHE_BYTES", "7")])).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.store.cache_bytes, 7);
    }

    #[test]
    fn bad_env_value_is_named() {
        let err = Config::load(None, env(&[("SLUICE_STORE_CACHE_BYTES", "lots")])).unwrap_err();
        assert!(
            err.to_string().contains("SLUICE_STORE_CACHE_BYTES"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nlisen = \"x\"\n").unwrap();
        assert!(matches!(
            Config::load(Some(&path), env(&[])),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn documented_config_matches_defaults() {
        let text = include_str!("../config/sluice.toml");
        let documented: Config = toml::from_str(text).unwrap();
        assert_eq!(documented, Config::default());
    }

    fn default_sections() -> toml::Table {
        match toml::Value::try_from(Config::default()).unwrap() {
            toml::Value::Table(t) => t,
            other => panic!("defaults are not a table: {other}"),
        }
    }

    /// Every key has its line in `config/sluice.toml` (where it is
    /// documented), not just a default in the code.
    #[test]
    fn every_key_is_in_the_documented_file() {
        let file: toml::Table = toml::from_str(include_str!("../config/sluice.toml")).unwrap();
        for (section, keys) in default_sections() {
            let toml::Value::Table(keys) = keys else {
                continue;
            };
            for key in keys.keys() {
                assert!(
                    file.get(&section)
                        .and_then(|s| s.as_table())
                        .is_some_and(|s| s.contains_key(key)),
                    "[{section}] {key} is not in config/sluice.toml"
                );
            }
        }
    }

    /// Every `[section] key` the README names exists.
    #[test]
    fn every_key_the_readme_names_exists() {
        let sections = default_sections();
        let readme = include_str!("../README.md");
        let mut named = 0;
        for (at, _) in readme.match_indices('[') {
            let rest = &readme[at + 1..];
            let Some(end) = rest.find(']') else { continue };
            let section = &rest[..end];
            if section.is_empty()
                || !section
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
            {
                continue;
            }
            // A config reference is followed by a key or a closing
            // backtick; a Markdown link by `(`.
            if !rest[end + 1..].starts_with([' ', '`']) {
                continue;
            }
            let after = rest[end + 1..].trim_start_matches(['`', ' ']);
            let key: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let Some(toml::Value::Table(keys)) = sections.get(section) else {
                panic!("README names a section [{section}] that does not exist");
            };
            if !key.is_empty() && !rest[end + 1..].starts_with("` ") {
                assert!(
                    keys.contains_key(&key),
                    "README names [{section}] {key}, which does not exist"
                );
                named += 1;
            }
        }
        assert!(named >= 10, "the README names config keys: found {named}");
    }
}
