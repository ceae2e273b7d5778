#!/usr/bin/env bash
# Installs the Debian programs sluice's integration tests run against:
#   - dnsmasq-base (dnsmasq without its system service): the DNS server the
#     DNSLink tests start on loopback (tests/common/dns.rs);
#   - chromium: the headless browser of tests/browser.rs.
# Idempotent and quiet: nothing is done when they are there already;
# `apt-get update` only when an install fails. Needs root (or the programs
# installed beforehand); without them those tests say SKIPPED, and fail
# under CI=true.
set -euo pipefail

log() { echo "[install_debian] $*" >&2; }

need=()
[[ -x /usr/sbin/dnsmasq ]] || need+=(dnsmasq-base)
[[ -x /usr/bin/chromium ]] || need+=(chromium)

if (( ${#need[@]} == 0 )); then
  log "dnsmasq and chromium present"
  exit 0
fi
if ! command -v apt-get >/dev/null || [[ "$(id -u)" != 0 ]]; then
  log "cannot install ${need[*]}: needs apt-get as root (install them by hand)"
  exit 0
fi
log "apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null 2>&1 &&
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
log "installed ${need[*]}"
