//! The `sluice` command: `serve` runs the gateway, `import` adds CAR files
//! to the on-disk store.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::config::Config;

#[derive(Parser)]
#[command(name = "sluice", version, about = "An IPFS HTTP gateway")]
struct Cli {
    /// TOML configuration file (every key is optional; see config/sluice.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory of the on-disk block store (overrides store.data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP gateway.
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// CAR file to serve in place; repeatable.
        #[arg(long = "car")]
        cars: Vec<PathBuf>,
    },
    /// Verify CAR files and add their blocks to the on-disk store.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = cli.data_dir {
        config.store.data_dir = dir;
    }
    sluice::log::init(&config.log);
    let result = match cli.command {
        Command::Serve { listen, cars } => {
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            config.store.car_files.extend(cars);
            serve(config)
        }
        Command::Import { files } => import(&config, &files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sluice: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the open-file soft limit to the hard limit: every client
/// connection, block file and peer needs a descriptor, and the usual soft
/// limit (1024) is far below `[server] max_connections`.
fn raise_open_file_limit(config: &Config) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "open-file limit in force");
            let wanted = config.server.max_connections as u64;
            if limit < wanted.saturating_add(64) {
                tracing::warn!(
                    limit,
                    max_connections = wanted,
                    "the open-file limit is below [server] max_connections plus room for the store and peers: past it, accepts fail and back off until connections close"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read or raise the open-file limit"),
    }
}

fn serve(config: Config) -> Result<(), String> {
    raise_open_file_limit(&config);
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async {
        let server = sluice::server::Server::bind(&config).await.map_err(|e| e.to_string())?;
        tracing::info!(addr = %server.local_addr(), data_dir = %config.data_dir().display(), "gateway listening");
        server.run(shutdown_signal()).await.map_err(|e| e.to_string())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight responses");
}

fn import(config: &Config, files: &[PathBuf]) -> Result<(), String> {
    let data_dir = config.data_dir();
    let store = sluice::blocks::FlatFsStore::open(&data_dir)
        .map_err(|e| format!("cannot open data directory {}: {e}", data_dir.display()))?;
    for file in files {
        let summary = sluice::blocks::import_car(file, &store)
            .map_err(|e| format!("{}: {e} (nothing imported from it)", file.display()))?;
        let roots: Vec<String> = summary.roots.iter().map(ToString::to_string).collect();
        println!(
            "imported {} blocks from {} (roots: {})",
            summary.blocks,
            file.display(),
            roots.join(", ")
        );
    }
    Ok(())
}
