#!/usr/bin/env bash
# Installs what the tests and the quickstart need on Debian/Ubuntu, where it is missing:
# redis-server, redis-cli (redis-tools), redis-sentinel and wrk. Safe to run again.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v wrk >/dev/null 2>&1 || missing+=(wrk) # servers_api/load.sh

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust first (rustup, or apt-get install cargo)" >&2
  exit 1
fi
echo "setup: $(redis-server --version | cut -d' ' -f1-3), $(cargo --version)"
