#!/usr/bin/env python3
"""The demo on the embedded default (the local cloud driver) on a REAL node, start to finish, then everything
stopped.

1. etcd + kube-apiserver + kube-controller-manager on free loopback ports, the CRDs, and a real node
   (kubelet + kube-scheduler + containerd with the project's reference images: testing/realnode.py);
2. the controller as its own process: `substratus-controller run --cloud local ...`;
3. `kubectl apply -R -f examples/`: the SQuAD Dataset, the facebook/opt-125m base Model, the Model fine-tuned
   on SQuAD, a Server and a Notebook for it, all from the reference images (images/);
4. `kubectl wait --for=condition=Ready` on all of them, then what they produced: the trainer's log, a
   completion served by the Server through `kubectl port-forward`, and the Notebook's Jupyter answering
   behind its token with its URL.

`--hold` keeps everything running until Enter or Ctrl-C (open the notebook URL meanwhile). Needs root (the
node) and what `hack/bootstrap.sh` provisions; a first run builds what is missing, later runs start in
seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from substratus_controller.testing.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
KINDS = "datasets,models,notebooks,servers"
NAME = "facebook-opt-125m-squad"
QUESTIONS = ("Who wrote Hamlet?", "What is the capital of France?")


def say(text: str) -> None:
    print(text, flush=True)


def post(port: int, path: str, body: Any) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def get(port: int, path: str, token: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def enter_or_interrupt() -> None:
    """Until a line on stdin or Ctrl-C (the cleanup after it still runs)."""
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()
    loop.add_reader(sys.stdin, entered.set)
    try:
        await entered.wait()
    except asyncio.CancelledError:
        pass  # Ctrl-C: go on stopping everything
    finally:
        loop.remove_reader(sys.stdin)


async def main(hold: bool) -> int:
    started = time.monotonic()
    say(
        "demo: starting etcd, kube-apiserver, kube-controller-manager, a real node (kubelet, kube-scheduler, "
        "containerd with the reference images) and the controller"
    )
    async with Stack(node="real", log=lambda m: say(f"demo: {m}")) as stack:
        say(f"demo: up in {time.monotonic() - started:.0f}s")

        async def sh(*args: str, check: bool = True) -> str:
            say(f"\n$ kubectl {' '.join(args)}")
            result = await stack.kubectl(*args, check=False)
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            if check and result.returncode != 0:
                raise SystemExit(f"demo: kubectl {' '.join(args)} failed; controller log:\n{stack.tail_log()}")
            return result.stdout

        await sh("apply", "-R", "-f", str(ROOT / "examples"))
        await sh("wait", "--for=condition=Ready", KINDS, "--all", "--timeout=300s")
        await sh("get", "ai")
        await sh("get", "pods", "-o", "wide")
        await sh("logs", f"job/{NAME}-modeller")

        say(f"\ndemo: asking the Server (kubectl port-forward svc/{NAME}-server)")
        with stack.port_forward("default", f"svc/{NAME}-server", 8080) as port:
            for question in QUESTIONS:
                answer = await asyncio.to_thread(post, port, "/v1/completions", {"prompt": question, "max_tokens": 8})
                say(f"  {question!r} -> {answer['choices'][0]['text'].strip()!r}  ({answer['model']})")

        secret = json.loads((await stack.kubectl("get", "secret", f"{NAME}-notebook-token", "-o", "json")).stdout)
        token = base64.b64decode(secret["data"]["token"]).decode()
        say(f"\ndemo: the Notebook (kubectl port-forward pod/{NAME}-notebook)")
        with stack.port_forward("default", f"pod/{NAME}-notebook", 8888) as port:
            status = await asyncio.to_thread(get, port, "/api/status", token)
            files = await asyncio.to_thread(get, port, "/api/contents", token)
            say(
                f"  Jupyter is up since {status['started']}; /content holds "
                f"{', '.join(sorted(f['name'] for f in files['content']))}"
            )
            say(f"  open it: http://localhost:{port}/?token={token}")
            if hold:
                say("\ndemo: holding; press Enter (or Ctrl-C) to stop everything")
                await enter_or_interrupt()
        say("\ndemo: stopping everything it started")
    say(f"demo: done: all five Ready on the real node, stopped everything ({time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", action="store_true", help="keep everything running until Enter or Ctrl-C")
    sys.exit(asyncio.run(main(parser.parse_args().hold)))
