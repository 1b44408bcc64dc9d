#!/usr/bin/env bash
# Test control plane for substratus-controller: a real etcd + kube-apiserver + kube-controller-manager.
#
#   hack/testenv.sh provision   make sure etcd, kube-apiserver and kube-controller-manager exist; print their folder
#   hack/testenv.sh assets      print the folder holding the binaries (fails when not provisioned)
#   hack/testenv.sh up          start a control plane for humans; prints `export KUBECONFIG=...`
#   hack/testenv.sh down        stop the control plane that `up` started
#
# Binaries: $KUBEBUILDER_ASSETS when set (the envtest convention). Otherwise kube-apiserver and
# kube-controller-manager v1.20.2 are built from Debian bookworm's `kubernetes` source package (it carries
# its vendor tree) and cached in ${XDG_CACHE_HOME:-$HOME/.cache}/substratus/testenv/v1.20.2/bin/, next to a
# link to Debian's etcd. The build takes ~6 minutes and ~1.4 GB of memory on 2 cores; later runs reuse it.
# Installing packages needs root (or sudo). Works on Debian 12 and 13 (13 still builds bookworm's source:
# trixie's repacked kubernetes source has no vendor tree).
set -euo pipefail

VERSION=1.20.2
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/substratus/testenv/v${VERSION}"
BIN_DIR="$CACHE_DIR/bin"
STATE_DIR="${SUBSTRATUS_TESTENV_STATE:-${XDG_RUNTIME_DIR:-/tmp}/substratus-testenv-$(id -u)}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

assets_dir() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    printf '%s\n' "$KUBEBUILDER_ASSETS"
  else
    printf '%s\n' "$BIN_DIR"
  fi
}

have_assets() {
  local d; d="$(assets_dir)"
  [ -x "$d/etcd" ] && [ -x "$d/kube-apiserver" ] && [ -x "$d/kube-controller-manager" ]
}

ensure_etcd() {
  if ! command -v etcd >/dev/null 2>&1; then
    log "installing etcd-server from Debian"
    as_root apt-get update -qq
    as_root apt-get install -y -qq etcd-server >/dev/null
  fi
  mkdir -p "$BIN_DIR"
  ln -sf "$(command -v etcd)" "$BIN_DIR/etcd"
}

build_kubernetes() {
  log "building kube-apiserver and kube-controller-manager v${VERSION} from Debian's source (about 6 minutes)"
  as_root apt-get update -qq
  as_root apt-get install -y -qq golang-go rsync golang-github-modern-go-reflect2-dev make gcc \
    debian-archive-keyring ca-certificates >/dev/null
  # deb-src is not configured by default; the bookworm source is needed on Debian 13 as well.
  local src=/etc/apt/sources.list.d/substratus-bookworm-src.sources
  if ! apt-get indextargets --format '$(CREATED_BY)$(SUITE)' 2>/dev/null | grep -q '^Sourcesbookworm$'; then
    as_root tee "$src" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    as_root apt-get update -qq
  fi
  local work="$CACHE_DIR/build"
  rm -rf "$work"; mkdir -p "$work"
  (
    cd "$work"
    apt-get source --download-only -qq kubernetes/bookworm
    tar xzf kubernetes_*.orig.tar.gz
    cd "kubernetes-${VERSION}"
    # Go >= 1.18 crashes the vendored reflect2 1.0.1 (nil map iteration panic in the apiserver on the first
    # custom-resource watch). Debian ships reflect2 >= 1.0.2, which fixes it.
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
    rm -f vendor/github.com/modern-go/reflect2/go.mod
    HOME="$PWD/.home" CGO_ENABLED=0 GOFLAGS=-mod=vendor GO111MODULE=on \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 \
      || { tail -n 40 "$work/build.log" >&2; exit 1; }
    install -m 0755 _output/bin/kube-apiserver _output/bin/kube-controller-manager "$BIN_DIR/"
  )
  rm -rf "$work"
  log "built into $BIN_DIR"
}

provision() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    have_assets || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks etcd, kube-apiserver or kube-controller-manager"
  else
    mkdir -p "$BIN_DIR"
    ensure_etcd
    if [ ! -x "$BIN_DIR/kube-apiserver" ] || [ ! -x "$BIN_DIR/kube-controller-manager" ]; then
      build_kubernetes
    else
      log "cached in $BIN_DIR"
    fi
  fi
  assets_dir
}

pyrun() {
  local py="${PYTHON:-python3}"
  PYTHONPATH="$HERE/../src${PYTHONPATH:+:$PYTHONPATH}" "$py" -m substratus_controller.testing "$@"
}

case "${1:-}" in
  provision) provision ;;
  assets) have_assets || die "not provisioned; run: hack/testenv.sh provision"; assets_dir ;;
  up) have_assets || provision >/dev/null
      pyrun up --assets "$(assets_dir)" --state-dir "$STATE_DIR" ;;
  down) pyrun down --state-dir "$STATE_DIR" ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
