#!/usr/bin/env bash
# Installs what the exchange benchmark needs beyond `make setup`: wrk (the load generator),
# nginx (the baseline proxy) and py-spy (the profiler). Idempotent; the test suite needs
# none of these, so `make setup` does not install them.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if apt-cache show nginx-light >/dev/null 2>&1; then missing+=(nginx-light); else missing+=(nginx); fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/exchange: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # Debian starts nginx on port 80 after installing it; a policy-rc.d already in place
  # (containers) prevents that, and the benchmark runs its own nginx in any case.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ! -x .venv/bin/py-spy ]; then
  echo "bench/exchange: installing py-spy into the virtualenv"
  .venv/bin/python -m pip install -q "py-spy>=0.3.14"
fi
