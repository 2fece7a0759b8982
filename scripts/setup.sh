#!/usr/bin/env bash
# Sets up everything kiungo needs on a fresh machine: Debian packages, the Python
# virtualenv, and the peer connectors the test suite talks to. Idempotent: each step
# is skipped when what it makes is already there and up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv
  nodejs npm                                  # the JavaScript peer connector
  openjdk-17-jdk-headless                     # the Java verifier (conformance tests)
  libjackson2-databind-java libjackson2-dataformat-xml-java libwoodstox-java
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian (nodesource, nvm): a working binary is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" 2>/dev/null -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$c; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11+ not found" >&2; exit 1; }

mkdir -p .stamps
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f .stamps/venv ] || [ pyproject.toml -nt .stamps/venv ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch .stamps/venv
fi

if [ ! -d peers/node_modules ] || [ peers/package-lock.json -nt .stamps/peers ]; then
  (cd peers && npm ci --silent --no-audit --no-fund)
  touch .stamps/peers
fi
