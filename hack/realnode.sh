#!/usr/bin/env bash
# The real node of the test platform (kubelet + kube-scheduler v1.20.2, containerd + runc, a CNI bridge and
# the project's locally built images; see src/substratus_controller/testing/realnode.py). Needs root.
#
#   hack/realnode.sh images             build (or find cached) the node's images; print the archive
#   hack/realnode.sh up [KUBECONFIG]    join a node to a control plane (default: the one `hack/testenv.sh up`
#                                       started) and wait until it is Ready
#   hack/realnode.sh down               stop it (by pid) and remove everything it created
#   hack/realnode.sh status             the daemons' pids
#
# The tests and `make demo` start and stop their own node; this is for poking around by hand:
#   eval "$(hack/testenv.sh up)" && hack/realnode.sh up && kubectl get nodes
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${SUBSTRATUS_TESTENV_STATE:-${XDG_RUNTIME_DIR:-/tmp}/substratus-testenv-$(id -u)}"
PY="${PYTHON:-$HERE/../.venv/bin/python}"
[ -x "$PY" ] || PY=python3
pyrun() { PYTHONPATH="$HERE/../src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m substratus_controller.testing "$@"; }

case "${1:-}" in
  images) pyrun images ;;
  up) kc="${2:-${KUBECONFIG:-$STATE_DIR/kubeconfig}}"
      [ -f "$kc" ] || { echo "realnode: no kubeconfig at $kc; start a control plane: hack/testenv.sh up" >&2; exit 1; }
      pyrun node up --kubeconfig "$kc" ;;
  down) pyrun node down ;;
  status) pyrun node status ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
