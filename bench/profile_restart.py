"""Profile the controller's restart over N Ready Models with py-spy (issue 14 §3: what grows with N).

Starts a control plane and a controller, creates N Models (20 in flight), marks every Job Complete and waits
until every Model is Ready (bench/suite.py), stops the controller, then starts a new one under
`py-spy record --format speedscope` for `--seconds`. The speedscope samples are in time order: the longest
stretch in which the event loop never reached its selector (the loop was blocked) is reported with the
frames most common in it, next to the worst lag the restarted controller's own metric saw.

Run: `.venv/bin/python bench/profile_restart.py --n 10000` (needs py-spy: `pip install py-spy`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.suite import burst, complete_jobs, create_models, new_namespace  # noqa: E402
from substratus_controller.runtime.client import Client  # noqa: E402
from substratus_controller.testing.controlplane import ControlPlane, free_port  # noqa: E402
from substratus_controller.testing.stack import ControllerProcess  # noqa: E402

IDLE = "select (selectors.py"  # the innermost frame of an event loop waiting for I/O


async def ready_models(cp: ControlPlane, n: int, args: list[str], workdir: Path) -> str:
    """A namespace with N Ready Models, made by the controller itself (so its restart has nothing to write)."""
    async with await Client.connect(cp.kubeconfig, timeout=60) as client:
        ns = await new_namespace(client, f"prof-{n}")
        proc = ControllerProcess(
            cp.kubeconfig, log=workdir / "populate.log", args=[f"--namespace={ns}", *args], env={"LOG_LEVEL": "warning"}
        )
        await proc.start()
        _, watch = await burst(client, ns, n, lambda: create_models(client, ns, n))
        await complete_jobs(client, ns, n)
        await watch.until(lambda: len(watch.ready) >= n, timeout=3600)
        await watch.stop()
        await proc.stop()
        return ns


def longest_busy_stretch(speedscope: Path) -> dict[str, Any]:
    """The longest run of consecutive samples without the loop's selector on the stack, and its top frames."""
    doc = json.loads(speedscope.read_text())
    frames = [
        f["name"] + " (" + str(f.get("file", "")).rsplit("/", 1)[-1] + f":{f.get('line', '')})"
        for f in doc["shared"]["frames"]
    ]
    best: dict[str, Any] = {"samples": 0}
    for profile in doc["profiles"]:
        samples, weights = profile["samples"], profile.get("weights") or [1] * len(profile["samples"])
        start, length, seconds = 0, 0, 0.0
        for i, (stack, weight) in enumerate(zip(samples, weights, strict=True)):
            busy = not any(IDLE in frames[f] for f in stack) and bool(stack)
            if busy:
                if length == 0:
                    start, seconds = i, 0.0
                length += 1
                seconds += float(weight)
                if length > best["samples"]:
                    best = {"samples": length, "weight": seconds, "start": start, "profile": profile}
            else:
                length = 0
    if not best["samples"]:
        return best
    profile = best.pop("profile")
    stretch = profile["samples"][best["start"] : best["start"] + best["samples"]]
    counts: Counter[str] = Counter()
    for stack in stretch:
        for f in set(stack):
            counts[frames[f]] += 1
    best["unit"] = profile.get("unit")
    best["frames_in_most_samples"] = counts.most_common(40)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="profile-"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="substratus-prof-") as tmp, ControlPlane(workdir=Path(tmp) / "cp") as cp:
        from bench.informer_sync import install_crds

        install_crds(cp)
        common = [f"--artifact-bucket-url=file://{Path(tmp) / 'artifacts'}", "--registry-url=localhost:5000",
                  "--upload-bind-address=0"]  # fmt: skip
        ns = asyncio.run(ready_models(cp, args.n, common, Path(tmp)))
        print(f"{args.n} Ready Models in {ns}", flush=True)
        controller = [sys.executable, "-m", "substratus_controller.cli", "run", "--kubeconfig", str(cp.kubeconfig),
                      "--cloud", "local", f"--namespace={ns}", *common, "--log-level=warning",
                      f"--metrics-bind-address=127.0.0.1:{free_port()}",
                      f"--health-probe-bind-address=127.0.0.1:{free_port()}"]  # fmt: skip
        subprocess.run([str(Path(sys.executable).with_name("py-spy")), "record", "--format", "speedscope",
                        "--rate", "200", "--duration", str(int(args.seconds)),
                        "--output", str(out / "restart.speedscope.json"), "--", *controller],
                       check=False, capture_output=True)  # fmt: skip
    report = longest_busy_stretch(out / "restart.speedscope.json")
    (out / "longest-busy-stretch.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "frames_in_most_samples"}))
    for frame, count in report.get("frames_in_most_samples", [])[:40]:
        print(f"{count:6d}  {frame}")
    print(f"profiles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
