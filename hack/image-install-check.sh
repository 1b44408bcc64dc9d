#!/usr/bin/env bash
# Run the Dockerfile's install step outside Docker (CI has no Docker engine): a fresh venv with only the
# runtime dependencies, from a copy of exactly what .dockerignore lets into the build context, then the
# image's entrypoint smoke-tested (`--help`, `crds`). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cp pyproject.toml README.md "$work/src/"
cp -r src "$work/src/src"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check --no-compile "$work/src"
"$work/venv/bin/substratus-controller" run --help > /dev/null
"$work/venv/bin/substratus-controller" crds | grep -q "kind: CustomResourceDefinition"
if "$work/venv/bin/python" -c "import pytest" 2>/dev/null; then
  echo "image-install-check: dev dependencies leaked into the runtime install" >&2; exit 1
fi
echo "image-install-check: ok"
