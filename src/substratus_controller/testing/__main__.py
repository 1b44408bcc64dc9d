"""`python -m substratus_controller.testing up|down|images|node`: the test platform for humans and scripts.

`up` starts etcd, kube-apiserver and kube-controller-manager detached, records their pids and command
lines in `<state-dir>/state.json`, and prints `export KUBECONFIG=...`. `down` stops exactly those
processes (a pid whose command line no longer matches is left alone) and removes the state directory.
As root, `up` also gives the API server the flags a real node needs, so `node up` can join one.

`images` builds (or finds cached) the real node's images and prints the archive to import.
`node up --kubeconfig K` starts the real node (testing/realnode.py) with those images and returns once it
is Ready; `node down` stops it (from any process: pid files); `node status` prints the daemons' pids.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from . import images
from .controlplane import Assets, ControlPlane, ControlPlaneError
from .dockerfile import DockerfileError
from .realnode import RealNode, RealNodeError, apiserver_flags


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def up(assets: str | None, state_dir: Path, controller_manager: bool) -> int:
    state_file = state_dir / "state.json"
    if state_file.exists():
        print(f"already up ({state_file}); run `hack/testenv.sh down` first", file=sys.stderr)
        return 1
    flags = apiserver_flags() if os.geteuid() == 0 else []
    cp = ControlPlane(
        assets=Assets.locate(assets),
        workdir=state_dir,
        controller_manager=controller_manager,
        detach=True,
        apiserver_flags=flags,
    )
    cp.start()
    procs = {name: {"pid": pid, "argv0": _cmdline(pid)[:1]} for name, pid in cp.pids.items()}
    state_file.write_text(json.dumps({"kubeconfig": str(cp.kubeconfig), "processes": procs}, indent=2))
    print(f"export KUBECONFIG={cp.kubeconfig}")
    return 0


def down(state_dir: Path) -> int:
    state_file = state_dir / "state.json"
    if not state_file.exists():
        print("nothing to stop", file=sys.stderr)
        return 0
    state = json.loads(state_file.read_text())
    for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
        proc = state["processes"].get(name)
        if not proc or _cmdline(proc["pid"])[:1] != proc["argv0"]:
            continue
        os.kill(proc["pid"], signal.SIGTERM)
        for _ in range(100):
            if _cmdline(proc["pid"])[:1] != proc["argv0"]:
                break
            time.sleep(0.1)
        else:
            os.kill(proc["pid"], signal.SIGKILL)
    shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_images() -> Path:
    return images.archive(images.ensure_images(log=_log))


def node(command: str, kubeconfig: Path | None, with_images: bool) -> int:
    n = RealNode(kubeconfig, log=_log)
    if command == "up":
        if not with_images:
            n.up()
            return 0
        archive, bases = images.node_archives(log=_log)
        n.up(images=[archive])
        for ref in n.push_bases(bases, images.BASES).values():
            _log(f"base image in the node's registry: {ref}")
        settings = " ".join(f"{k}={v}" for k, v in images.NODE_BUILDER.items())
        _log(
            f"registry {n.s.registry} (published as kube-public/local-registry-hosting); git server "
            f"{n.s.git_url}/<a directory under {n.git_root}>; build with the controller settings {settings}"
        )
    elif command == "down":
        n.down()
        _log("real node down")
    else:
        for daemon in RealNode.DAEMONS:
            pid = n.pid(daemon)
            print(f"{daemon}: {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m substratus_controller.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start a control plane in the background")
    p_up.add_argument("--assets", help="folder with etcd, kube-apiserver, kube-controller-manager")
    p_up.add_argument("--state-dir", type=Path, required=True)
    p_up.add_argument("--no-controller-manager", action="store_true")
    p_down = sub.add_parser("down", help="stop the control plane that `up` started")
    p_down.add_argument("--state-dir", type=Path, required=True)
    sub.add_parser("images", help="build or find the real node's images; print the archive")
    p_node = sub.add_parser("node", help="the real node: up|down|status")
    p_node.add_argument("action", choices=["up", "down", "status"])
    p_node.add_argument("--kubeconfig", type=Path, help="the control plane's admin kubeconfig (for up)")
    p_node.add_argument("--no-images", action="store_true", help="do not import the images (for up)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.assets, args.state_dir, not args.no_controller_manager)
        if args.command == "images":
            print(build_images())
            return 0
        if args.command == "node":
            return node(args.action, args.kubeconfig, not args.no_images)
        return down(args.state_dir)
    except (ControlPlaneError, RealNodeError, images.ImageError, DockerfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
