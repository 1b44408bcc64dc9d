#!/usr/bin/env python3
"""The demo on the embedded default (the local cloud driver), start to finish, then everything stopped.

1. etcd + kube-apiserver + kube-controller-manager on free loopback ports, the CRDs, and a simulated kubelet
   (there is no container runtime here: it binds pods to a fake node and reports them Running/Ready or
   Succeeded, so Jobs complete and Deployments become ready);
2. the controller as its own process: `substratus-controller run --cloud local ...`;
3. `kubectl apply -R -f examples/`: the SQuAD Dataset, the facebook/opt-125m base Model, the Model fine-tuned
   on SQuAD, a Server and a Notebook for it;
4. `kubectl wait --for=condition=Ready` on all of them, then `kubectl get ai`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from substratus_controller.testing.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
KINDS = "datasets,models,notebooks,servers"


async def main() -> int:
    started = time.monotonic()
    print("demo: starting etcd, kube-apiserver, kube-controller-manager, a simulated kubelet, the controller")
    async with Stack() as stack:

        async def sh(*args: str, check: bool = True) -> int:
            print(f"\n$ kubectl {' '.join(args)}", flush=True)
            result = await stack.kubectl(*args, check=False)
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            if check and result.returncode != 0:
                raise SystemExit(f"demo: kubectl {' '.join(args)} failed; controller log:\n{stack.tail_log()}")
            return result.returncode

        await sh("apply", "-R", "-f", str(ROOT / "examples"))
        await asyncio.sleep(1)
        await sh("get", "ai")
        await sh("wait", "--for=condition=Ready", KINDS, "--all", "--timeout=180s")
        await sh("get", "ai")
        await sh("get", "jobs,pods,deployments,services")
    print(f"\ndemo: all Ready; stopped everything it started ({time.monotonic() - started:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
