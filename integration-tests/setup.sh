#!/usr/bin/env bash
# Installs what the tests and the quickstart need on Debian/Ubuntu, where it is missing:
# redis-server, redis-cli (redis-tools), redis-sentinel and wrk; with `--book`, also what the
# book (docs/) needs: python3 and mdbook (built from crates.io into ~/.cargo/bin, a few minutes
# once; the quickstart does not wait for it). Safe to run again.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v wrk >/dev/null 2>&1 || missing+=(wrk) # servers_api/load.sh
book=false
[ "${1:-}" = "--book" ] && book=true
if $book; then
  command -v python3 >/dev/null 2>&1 || missing+=(python3) # docs/book.toml's preprocessor for `mdbook test`
fi

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

# `mdbook build docs` and `mdbook test docs` (.ci/run). Pinned; a one-off build of about 3 minutes
# on 2 cores, skipped once this version is on the PATH.
mdbook_version=0.4.52
if $book && [ "$(mdbook --version 2>/dev/null)" != "mdbook v$mdbook_version" ]; then
  echo "setup: installing mdbook $mdbook_version from crates.io (a few minutes, once)"
  cargo install --quiet --locked mdbook --version "$mdbook_version" --no-default-features --features search
  if [ "$(mdbook --version 2>/dev/null)" != "mdbook v$mdbook_version" ]; then
    echo "setup: mdbook $mdbook_version was installed into ${CARGO_HOME:-$HOME/.cargo}/bin, which is not first on the PATH" >&2
    exit 1
  fi
fi
echo "setup: $(redis-server --version | cut -d' ' -f1-3), $(cargo --version)$($book && echo ", $(mdbook --version)")"
