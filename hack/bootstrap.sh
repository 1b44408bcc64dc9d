#!/usr/bin/env bash
# Prepare a fresh Debian 12/13 machine (or refresh a prepared one) for development, tests and the demo:
#   1. system packages: python3 (>= 3.11) with venv, openssl, git, make, kubectl, and for the real node
#      containerd, runc, the CNI plugins, iproute2, iptables, debootstrap and gcc (its images), and for real
#      image builds Debian's docker-registry (the CNCF distribution registry) and skopeo;
#   2. a virtualenv in .venv with the package and its dev dependencies (redone when pyproject.toml changes);
#   3. the test platform's binaries (hack/testenv.sh provision: etcd, kube-apiserver, kube-controller-manager,
#      kubelet, kube-scheduler and kubectl v1.20 built once, a current kubectl; all cached);
#   4. as root: the real node's images (pause, the python base, the reference images of images/; cached).
# Idempotent and quick when nothing is missing. Installing packages needs root or sudo; the real node and its
# images need root itself.
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
# the real node (testing/realnode.py) and its images (testing/images.py)
for tool in containerd runc ctr ip iptables unshare debootstrap gcc sysctl; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] || { missing+=(
    containerd runc containernetworking-plugins iproute2 iptables util-linux debootstrap gcc libc6-dev procps); break; }
done
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
# the real node's registry (testing/realnode.py starts it on the bridge address, by pid) and its pusher
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
need_registry=0
command -v docker-registry >/dev/null 2>&1 || need_registry=1
need_kubectl=0
command -v kubectl >/dev/null 2>&1 || need_kubectl=1
if [ ${#missing[@]} -gt 0 ] || [ "$need_kubectl" = 1 ] || [ "$need_registry" = 1 ]; then
  as_root apt-get update -qq
  # Debian 13 packages kubectl itself; Debian 12 only kubernetes-client (v1.20). Asked after the update.
  if [ "$need_kubectl" = 1 ]; then
    if apt-cache show kubectl >/dev/null 2>&1; then missing+=(kubectl); else missing+=(kubernetes-client); fi
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ "$need_registry" = 1 ]; then
    # docker-registry's package would start its own service (all addresses, port 5000) on machines with an
    # init system; the real node runs its own registry on the bridge address instead, so no service starts
    # during this one install (policy-rc.d, Debian's mechanism; only one we created is removed afterwards).
    log "installing docker-registry (its service not started)"
    policy=/usr/sbin/policy-rc.d
    ours=0
    if [ ! -e "$policy" ]; then
      as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
      ours=1
      trap 'as_root rm -f '"$policy" EXIT
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    if [ "$ours" = 1 ]; then as_root rm -f "$policy"; trap - EXIT; fi
  fi
fi

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { log "python >= 3.11 required, $PY is $("$PY" -V 2>&1)"; exit 1; }

stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "creating .venv and installing the package with its dev and benchmark dependencies"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,bench]'
  touch "$stamp"
fi

hack/testenv.sh provision >/dev/null

if [ "$(id -u)" -eq 0 ]; then
  PYTHONPATH=src .venv/bin/python -m substratus_controller.testing images >/dev/null
else
  log "not root: the real node's images are not built (the real-node tier and \`make demo\` need root)"
fi
