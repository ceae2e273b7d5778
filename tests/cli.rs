//! The `sluice` binary as an operator uses it: `import` into the data
//! directory (all or nothing), `serve` on a config file, environment and
//! flags, and content surviving a restart.

mod common;

use common::binary::{free_port, listening, Running, SLUICE};

use std::path::Path;
use std::process::{Command, Stdio};

use common::sha256_hex;
use sluice::car::CarWriter;
use sluice::unixfs::builder::{build_file, FileLayout};

/// Writes a CAR of a generated file; returns its root CID and the bytes.
fn make_car(path: &Path, size: usize) -> (String, Vec<u8>) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let layout = FileLayout {
        chunk_size: 4096,
        ..FileLayout::MODERN
    };
    let mut blocks = Vec::new();
    let root = build_file(&data[..], layout, &mut |b| blocks.push(b)).unwrap();
    let mut car = CarWriter::new(std::fs::File::create(path).unwrap(), &[root.cid]).unwrap();
    for block in &blocks {
        car.write_block(&block.cid, &block.data).unwrap();
    }
    car.finish().unwrap();
    (root.cid.to_string(), data)
}

/// Runs `sluice import CAR` into `data_dir`.
fn import(car: &Path, data_dir: &Path) -> std::process::Output {
    Command::new(SLUICE)
        .args([
            "import",
            "--data-dir",
            data_dir.to_str().unwrap(),
            car.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

/// Starts `sluice serve` and waits for its "listening" log line.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Running {
    let child = Command::new(SLUICE)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .env("SLUICE_P2P_LISTEN", "[]")
        .env("SLUICE_ROUTING_ENDPOINTS", "[]")
        .env("SLUICE_METRICS_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    listening(child)
}

async fn fetch(port: u16, path: &str) -> reqwest::Response {
    // reqwest is built without a default TLS backend (sluice picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_content_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("file.car");
    let (root, data) = make_car(&car, 100_000);
    let data_dir = dir.path().join("data");

    let import = import(&car, &data_dir);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(String::from_utf8_lossy(&import.stdout).contains(&format!("roots: {root}")));

    for _restart in 0..2 {
        let port = free_port();
        let _server = serve(
            &[
                "serve",
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ],
            &[],
        );
        let response = fetch(port, &format!("/ipfs/{root}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            sha256_hex(&response.bytes().await.unwrap()),
            sha256_hex(&data)
        );
    }
}

#[test]
fn corrupt_car_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("file.car");
    make_car(&car, 50_000);
    let data_dir = dir.path().join("data");

    let mut bytes = std::fs::read(&car).unwrap();
    let tampered = bytes.len() - 10;
    bytes[tampered] ^= 0xff;
    std::fs::write(&car, &bytes).unwrap();
    let output = import(&car, &data_dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not match its CID") && stderr.contains("nothing imported"),
        "{stderr}"
    );
    let stored = walk_files(&data_dir.join("blocks"));
    assert_eq!(stored, 0, "a corrupt CAR must import nothing");

    std::fs::write(&car, &bytes[..bytes.len() / 2]).unwrap();
    let output = import(&car, &data_dir);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ends in the middle of a section"));
    assert_eq!(walk_files(&data_dir.join("blocks")), 0);
}

fn walk_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk_files(&p) } else { 1 })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_env_and_flags_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("file.car");
    let (root, _) = make_car(&car, 10);
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{file_port}\"\n[store]\ndata_dir = \"{}\"\ncar_files = [\"{}\"]\n",
            dir.path().join("data").display(),
            car.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let from_file = serve(&["serve", "--config", config], &[]);
    assert_eq!(
        fetch(file_port, &format!("/ipfs/{root}")).await.status(),
        200
    );
    drop(from_file);

    let env_listen = format!("127.0.0.1:{env_port}");
    let from_env = serve(
        &["serve", "--config", config],
        &[("SLUICE_SERVER_LISTEN", &env_listen)],
    );
    assert_eq!(
        fetch(env_port, &format!("/ipfs/{root}")).await.status(),
        200
    );
    drop(from_env);

    let flag_listen = format!("127.0.0.1:{flag_port}");
    let _from_flag = serve(
        &["serve", "--config", config, "--listen", &flag_listen],
        &[("SLUICE_SERVER_LISTEN", &env_listen)],
    );
    assert_eq!(
        fetch(flag_port, &format!("/ipfs/{root}")).await.status(),
        200
    );
}

#[test]
fn bad_config_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nlisten = 5\n").unwrap();
    let output = Command::new(SLUICE)
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid config file"));
}

/// Every block file under `dir`, recursively.
fn block_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for path in entries.map(|e| e.unwrap().path()) {
        if path.is_dir() {
            files.extend(block_files(&path));
        } else if path.extension().is_some_and(|e| e == "data") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_store_is_repaired_by_reimport_and_interrupted_writes_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("file.car");
    let (root, data) = make_car(&car, 100_000);
    let data_dir = dir.path().join("data");
    assert!(import(&car, &data_dir).status.success());

    // A flipped byte in one stored leaf, and a temporary file left by an
    // import that was killed (its process, pid 4194305, cannot exist).
    let files = block_files(&data_dir.join("blocks"));
    let damaged = files
        .iter()
        .find(|f| std::fs::metadata(f).unwrap().len() == 4096)
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let stale = damaged.parent().unwrap().join(".tmp-4194305-3");
    std::fs::write(&stale, b"half a block").unwrap();

    let serve_args = |port: u16| {
        vec![
            "serve".to_string(),
            "--data-dir".into(),
            data_dir.to_str().unwrap().into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ]
    };
    {
        let port = free_port();
        let args = serve_args(port);
        let _server = serve(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        // The damaged block is refused (the body ends before the whole
        // file), never served.
        let response = fetch(port, &format!("/ipfs/{root}")).await;
        let body = response.bytes().await;
        assert!(
            body.as_ref()
                .map_or(true, |b| sha256_hex(b) != sha256_hex(&data)),
            "a damaged block was served"
        );
        // The sweep runs at start, beside serving.
        for _ in 0..50 {
            if !stale.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            !stale.exists(),
            "the interrupted write's temporary file is still there"
        );
    }

    // Importing the same CAR again replaces the damaged file.
    let reimport = import(&car, &data_dir);
    assert!(reimport.status.success());
    assert_ne!(std::fs::read(&damaged).unwrap(), bytes, "still damaged");
    let port = free_port();
    let args = serve_args(port);
    let _server = serve(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let response = fetch(port, &format!("/ipfs/{root}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        sha256_hex(&data)
    );
}
