#!/usr/bin/env python3
"""The demo on the embedded default: a real control plane, the CRDs, the examples, `kubectl get ai`.

Starts etcd + kube-apiserver + kube-controller-manager on free loopback ports, installs the CRDs with
`substratus-controller crds | kubectl apply -f -`, applies every manifest under examples/, shows them, and
stops everything it started (also on Ctrl-C or failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from substratus_controller.testing import ControlPlane

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    print("demo: starting etcd, kube-apiserver and kube-controller-manager", flush=True)
    with ControlPlane(controller_manager=True) as cp:
        env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig))
        version = cp.request("/version")
        minor = int(version["minor"].rstrip("+"))

        def sh(cmd: str) -> None:
            print(f"\n$ {cmd}", flush=True)
            subprocess.run(cmd, shell=True, check=True, env=env, cwd=ROOT)

        cel = "" if minor >= 25 else " --no-cel"  # servers before 1.25 do not know CEL rules
        sh(f"{sys.executable} -m substratus_controller.cli crds{cel} | kubectl apply -f -")
        sh("kubectl wait --for=condition=Established crd --all --timeout=60s")
        sh("kubectl apply -R -f examples/")
        sh("kubectl get ai")
    print("\ndemo: stopped everything it started", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
