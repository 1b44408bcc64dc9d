#!/usr/bin/env bash
# Prepare a fresh Debian 12/13 machine (or refresh a prepared one) for development, tests and the demo:
#   1. system packages: python3 (>= 3.11) with venv, openssl, git, make, kubectl;
#   2. a virtualenv in .venv with the package and its dev dependencies (redone when pyproject.toml changes);
#   3. the test control plane binaries (hack/testenv.sh provision; built once, then cached).
# Idempotent and quick when nothing is missing. Installing packages needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bootstrap: %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root or sudo for: $*"; exit 1
  fi
}

missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v curl >/dev/null 2>&1 || missing+=(curl)
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then missing+=(python3 python3-venv python3-pip)
elif ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=(python3-venv)
fi
if ! command -v kubectl >/dev/null 2>&1; then
  # Debian 13 packages kubectl itself; Debian 12 only kubernetes-client (v1.20).
  if apt-cache show kubectl >/dev/null 2>&1; then missing+=(kubectl); else missing+=(kubernetes-client); fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if ! command -v kubectl >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
  fi
fi

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { log "python >= 3.11 required, $PY is $("$PY" -V 2>&1)"; exit 1; }

stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "creating .venv and installing the package with its dev dependencies"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

hack/testenv.sh provision >/dev/null
