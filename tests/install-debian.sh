#!/usr/bin/env bash
# Debian programs the tests drive as real components: Chromium (the
# browser test). Installed only when missing; `apt-get update` only when
# an install fails (a fresh machine's package lists may be stale).
set -euo pipefail

packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
if [[ ${#packages[@]} -eq 0 ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
  echo "tests/install-debian.sh: need ${packages[*]} (apt-get as root is not available)" >&2
  exit 1
fi
echo "tests/install-debian.sh: installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; }
