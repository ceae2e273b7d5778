//! Logging: the `[log]` section and setting up the `tracing` subscriber
//! the binary logs through.

use serde::{Deserialize, Serialize};

/// `[log]`: how and what the process logs (to stderr).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `sluice=debug,info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

/// Installs the process-wide subscriber: `RUST_LOG` if set, else
/// `[log] filter`; JSON lines if `[log] format = "json"`.
pub fn init(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs written to files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if config.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
