//! Real third-party Bitswap providers (Helia, Kubo) started from
//! `tests/peers/` for the tests that need them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub struct Tools {
    pub node: PathBuf,
    pub python: PathBuf,
}

/// Installs the peers once per test process (idempotent and fast when
/// already installed; `tests/run.sh` runs it up front).
pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/install.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "tests/peers/install.sh failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("PEERS_READY"))
            .expect("PEERS_READY line");
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(PathBuf::from)
                .expect(name)
        };
        Tools {
            node: field("node"),
            python: field("python"),
        }
    })
}

/// A running provider process; stopped when dropped.
pub struct Provider {
    pub child: Child,
    pub hint: String,
    pub roots: serde_json::Map<String, serde_json::Value>,
}

impl Provider {
    pub fn start(kind: &str, seed: &str, extra: &[&str], inputs: &[String]) -> Provider {
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
        let mut command = match kind {
            "helia" => {
                let mut c = Command::new(&tools().node);
                c.arg(peers.join("helia-provider.mjs"));
                c
            }
            _ => {
                let mut c = Command::new(&tools().python);
                c.arg(peers.join("kubo_provider.py"));
                c
            }
        };
        let mut child = command
            .args(["--port", "0", "--seed", seed])
            .args(extra)
            .args(inputs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let info: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{kind} said {line:?}: {e}"));
        let hint = info["multiaddrs"][0].as_str().unwrap().to_string();
        let roots = info["roots"].as_object().unwrap().clone();
        Provider { child, hint, roots }
    }

    pub fn root(&self, name: &str) -> String {
        self.roots[name].as_str().unwrap().to_string()
    }

    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.flush();
        }
        self.stop();
    }
}
