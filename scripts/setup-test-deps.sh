#!/usr/bin/env bash
# Installs what the test suite's OAuth2 peers and its metrics check need (idempotent):
#   promtool             Debian's prometheus package, when root (else a notice)
#   nginx                Debian's nginx, the load balancer of the replicas test, when
#                        root (else a notice)
#   tests/peers/oidc     npm ci (oidc-provider, express) from package-lock.json
#   tests/peers/authlib  a virtualenv in .venv with requirements.txt (authlib, flask)
#   chromium             Debian's chromium and chromium-driver for the console's browser
#                        tests (apt-get, when missing and we are root)
# Each step is skipped when what is installed still matches its lock file.
# Env: PYTHON (default python3) to create the virtualenv with.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS="$REPO/tests/peers"
PYTHON=${PYTHON:-python3}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
run_quiet() {  # run a command, show its output only when it fails
  if ! "$@" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "setup-test-deps: failed: $*" >&2
    exit 1
  fi
}

# --- promtool (Debian's prometheus package), which checks the metrics exposition ---
if command -v promtool >/dev/null; then
  echo "promtool: installed"
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "promtool: apt-get install prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends prometheus >"$LOG" 2>&1 \
    || echo "promtool: apt-get install prometheus failed; the metrics test skips its check"
else
  echo "promtool: not installed (apt-get install prometheus); the metrics test skips its check"
fi

# --- nginx, in front of the replicas test's three servers ---
if command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; then
  echo "nginx: installed"
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "nginx: apt-get install nginx"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nginx >"$LOG" 2>&1 \
    || echo "nginx: apt-get install nginx failed; the replicas test skips"
else
  echo "nginx: not installed (apt-get install nginx); the replicas test skips"
fi

# --- oidc-provider peer (node) ---
OIDC="$PEERS/oidc"
command -v node >/dev/null || { echo "setup-test-deps: node is not installed" >&2; exit 1; }
want=$(fingerprint "$OIDC/package.json" "$OIDC/package-lock.json"; node --version)
stamp="$OIDC/node_modules/.junction-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "oidc peer: node_modules up to date"
else
  echo "oidc peer: npm ci"
  (cd "$OIDC" && run_quiet npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

# --- authlib peer (python) ---
AUTHLIB="$PEERS/authlib"
VENV="$AUTHLIB/.venv"
want=$(fingerprint "$AUTHLIB/requirements.txt"; "$PYTHON" -c 'import sys; print(sys.version)')
stamp="$VENV/.junction-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && "$VENV/bin/python" -c 'import authlib, flask' >/dev/null 2>&1; then
  echo "authlib peer: virtualenv up to date"
else
  if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 \
     || [[ "$("$VENV/bin/python" -c 'import sys; print(sys.version)')" != "$("$PYTHON" -c 'import sys; print(sys.version)')" ]]; then
    echo "authlib peer: creating virtualenv"
    rm -rf "$VENV"
    run_quiet "$PYTHON" -m venv "$VENV"
  fi
  echo "authlib peer: pip install -r requirements.txt"
  run_quiet "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$AUTHLIB/requirements.txt"
  echo "$want" > "$stamp"
fi

# --- chromium (the console's browser tests) ---
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium: installed"
elif [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "chromium: apt-get install chromium chromium-driver"
  run_quiet bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver'
else
  echo "chromium: missing; the browser tests skip (install chromium and chromium-driver to run them)"
fi

# --- schemathesis (generated requests against the OpenAPI document) ---
ST="$REPO/tests/schemathesis"
VENV="$ST/.venv"
want=$(fingerprint "$ST/requirements.txt"; "$PYTHON" -c 'import sys; print(sys.version)')
stamp="$VENV/.junction-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && [[ -x "$VENV/bin/schemathesis" ]]; then
  echo "schemathesis: virtualenv up to date"
else
  rm -rf "$VENV"
  echo "schemathesis: creating virtualenv and installing"
  run_quiet "$PYTHON" -m venv "$VENV"
  run_quiet "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ST/requirements.txt"
  echo "$want" > "$stamp"
fi
