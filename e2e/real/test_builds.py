"""Real tier: image builds for real. The controller renders buildah builder Jobs (`--builder buildah`, the
node's own builder and git images), which clone from the node's git server or unpack an upload, build
FROM a base in the node's registry, push there; the workload pods pull the result and run code that exists
only in the build context (evidence: their output, and files the Dockerfile's RUN step made).

- git: a tag, a branch and a `path`, each a Dataset whose loader prints what its context holds;
- upload: `kubectl applybuild` (through kubectl, as users run it) -> a Dataset; a broken Dockerfile fails
  with the failing step in `Built`'s message, the fixed one builds and runs; the same content under a new
  requestID needs neither upload nor build;
- `kubectl notebook -d DIR` builds a Notebook image from DIR; the code is exec'd in the running pod;
- failures name what could not be reached: a git server that is not there, a registry that is not there.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.conftest import condition, get, manifest, wait_condition
from e2e.real.conftest import kubectl_binaries, namespace_for
from e2e.real.pluginproc import Plugin, kubectl_on_path
from substratus_controller.constants import Kind
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.testing import images
from substratus_controller.testing.controlplane import free_port
from substratus_controller.testing.stack import Stack

APP = """\
import os, pathlib
secret = {secret!r}
built = pathlib.Path("/content/built.txt").read_text().strip()
print(f"app says {{secret}}; built.txt says {{built}}", flush=True)
out = pathlib.Path("/content/artifacts")
if out.is_dir():
    (out / "answer.txt").write_text(secret)
"""
DOCKERFILE = """\
FROM {base}
COPY app.py /content/app.py
RUN python3 -c "print('made-by-RUN')" > /content/built.txt
CMD ["python3", "/content/app.py"]
"""
BROKEN = """\
FROM {base}
COPY app.py /content/app.py
RUN python3 -c "raise SystemExit('no-such-step-' + 'succeeds')"
CMD ["python3", "/content/app.py"]
"""
JOB_RESOURCES = {"cpu": 0, "memory": 1}


def context_dir(path: Path, secret: str, *, base: str, dockerfile: str = DOCKERFILE) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile.format(base=base))
    (path / "app.py").write_text(APP.format(secret=secret))
    return path


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


async def loader_output(stack: Stack, ns: str, name: str) -> str:
    """The logs of the Dataset's loader pod."""
    out = await stack.kubectl("logs", "-n", ns, "-l", f"substratus.ai/dataset={name},role=run", "--tail=20")
    return out.stdout


def registry_tags(stack: Stack, image: str) -> list[str]:
    """The tags the node's registry holds for the repository of `image` (a direct request on the bridge)."""
    registry, _, rest = image.partition("/")
    repo = rest.rsplit(":", 1)[0]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{registry}/v2/{repo}/tags/list", timeout=5) as resp:
        return list(json.loads(resp.read()).get("tags") or [])


async def builder_pods(client: Client, ns: str, kind: Kind, name: str) -> list[dict[str, Any]]:
    pods = await client.list(k8s.PODS, ns, label_selector=f"substratus.ai/{kind.singular}={name},role=build")
    return list(pods.get("items") or [])


@pytest.fixture(scope="module")
async def ns(real_client: Client) -> AsyncIterator[str]:
    async with namespace_for(real_client, "builds") as name:
        yield name


def registry_of(stack: Stack) -> str:
    assert stack.node is not None
    return stack.node.s.registry


# ----------------------------------------------------------------------------------------------------- git
async def test_git_builds_from_a_tag_a_branch_and_a_path(
    real_stack: Stack, real_client: Client, ns: str, tmp_path: Path
) -> None:
    node = real_stack.node
    assert node is not None
    base = real_stack.bases[images.PYTHON_REF]
    assert base.startswith(f"{node.s.registry}/")
    name = f"apps-{uuid.uuid4().hex[:6]}"
    repo = context_dir(node.git_root / name, "from-tag-v1", base=base)
    context_dir(repo / "sub", "from-path-sub", base=base)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "-b", "dev")
    context_dir(repo, "from-branch-dev", base=base)
    git(repo, "commit", "-q", "-am", "dev")
    git(repo, "checkout", "-q", "main")
    url = f"{node.s.git_url}/{name}"
    cases = {
        "tag": ({"url": url, "tag": "v1"}, "from-tag-v1", "v1"),
        "branch": ({"url": url, "branch": "dev"}, "from-branch-dev", "dev"),
        "path": ({"url": url, "path": "sub"}, "from-path-sub", "latest"),
    }
    for case, (source, _, _) in cases.items():
        body = manifest("Dataset", f"git-{case}", {"build": {"git": source}, "resources": JOB_RESOURCES})
        await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    for case, (_, secret, tag) in cases.items():
        dataset = f"git-{case}"
        try:
            await wait_condition(real_client, Kind.DATASET, ns, dataset, "Ready", "True", timeout=240)
        except AssertionError:
            obj = await get(real_client, Kind.DATASET, ns, dataset)
            pods = (await real_stack.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False)).stdout
            raise AssertionError(f"{dataset}: {obj.get('status')}\n{pods}\n{real_stack.tail_log()}") from None
        obj = await get(real_client, Kind.DATASET, ns, dataset)
        image = obj["spec"]["image"]
        assert image.startswith(f"{node.s.registry}/"), image
        assert image.endswith(f":{tag}"), image
        assert condition(obj, "Built")["reason"] == "JobComplete"
        assert tag in registry_tags(real_stack, image)
        logs = await loader_output(real_stack, ns, dataset)
        assert f"app says {secret}; built.txt says made-by-RUN" in logs, logs
        answer = Path(obj["status"]["artifacts"]["url"].removeprefix("file://")) / "artifacts" / "answer.txt"
        assert answer.read_text() == secret
    # the workload pods really pulled the built images from the registry (not an imported copy)
    events = (await real_stack.kubectl("get", "events", "-n", ns, "-o", "json")).stdout
    pulled = [e["message"] for e in json.loads(events)["items"] if e.get("reason") == "Pulled"]
    assert any(node.s.registry in m and ":v1" in m for m in pulled), pulled


# -------------------------------------------------------------------------------------------------- upload
async def applybuild(stack: Stack, tmp: Path, ns: str, manifest_path: Path, context: Path) -> tuple[int, str]:
    """`kubectl applybuild -f MANIFEST DIR` through the current kubectl; (exit code, output)."""
    bindir = tmp / f"path-{uuid.uuid4().hex[:6]}"
    bindir.mkdir()
    with kubectl_on_path(kubectl_binaries()["current"], bindir) as env:
        env["KUBECONFIG"] = str(stack.kubeconfig)
        plugin = Plugin(
            ["kubectl", "applybuild", "-n", ns, "-f", str(manifest_path), str(context), "--timeout", "5m"], env
        )
        code = await asyncio.to_thread(plugin.proc.wait, 330)
        await asyncio.sleep(0.2)  # the pump thread reads the last lines
        return code, plugin.drain()


async def test_upload_builds_through_applybuild_fail_then_succeed_then_skip(
    real_stack: Stack, real_client: Client, ns: str, tmp_path: Path
) -> None:
    base = real_stack.bases[images.PYTHON_REF]
    name = "uploaded"
    spec_path = tmp_path / "dataset.yaml"
    spec_path.write_text(yaml.safe_dump(manifest("Dataset", name, {"resources": JOB_RESOURCES})))
    context = context_dir(tmp_path / "ctx", "from-the-upload", base=base, dockerfile=BROKEN)

    # a broken Dockerfile: BuildFailed, with the failing step and its output in the message
    code, out = await applybuild(real_stack, tmp_path, ns, spec_path, context)
    assert code == 1, out
    failed = condition(await get(real_client, Kind.DATASET, ns, name), "Built")
    assert failed["reason"] == "BuildFailed", failed
    assert "no-such-step-succeeds" in failed["message"], failed
    assert "container builder failed with exit code 1" in failed["message"], failed
    assert "BuildFailed" in out or "failed" in out, out
    assert not (
        await real_stack.kubectl("get", "jobs", "-n", ns, "-l", f"substratus.ai/dataset={name},role=run", "-o", "name")
    ).stdout.strip()  # nothing ran

    # fixed: a new upload (new md5, new requestID) builds, pushes, and the loader runs the uploaded code
    context_dir(context, "from-the-upload", base=base)
    code, out = await applybuild(real_stack, tmp_path, ns, spec_path, context)
    assert code == 0, out
    assert "build context uploaded" in out, out
    await wait_condition(real_client, Kind.DATASET, ns, name, "Ready", "True", timeout=120)
    obj = await get(real_client, Kind.DATASET, ns, name)
    md5 = obj["spec"]["build"]["upload"]["md5Checksum"]
    assert obj["spec"]["image"].endswith(f":{md5.lower()}")
    logs = await loader_output(real_stack, ns, name)
    assert "app says from-the-upload; built.txt says made-by-RUN" in logs, logs
    builds = {p["metadata"]["uid"] for p in await builder_pods(real_client, ns, Kind.DATASET, name)}

    # the same content again (a new requestID): no upload, no new build, the image is reused
    code, out = await applybuild(real_stack, tmp_path, ns, spec_path, context)
    assert code == 0, out
    assert "already uploaded" in out, out
    assert "build context uploaded" not in out, out
    again = await get(real_client, Kind.DATASET, ns, name)
    assert again["spec"]["build"]["upload"]["requestID"] != obj["spec"]["build"]["upload"]["requestID"]
    assert again["spec"]["image"] == obj["spec"]["image"]
    await asyncio.sleep(2)  # a build the controller wrongly started would have a pod by now
    assert {p["metadata"]["uid"] for p in await builder_pods(real_client, ns, Kind.DATASET, name)} <= builds
    assert condition(again, "Built")["status"] == "True"


async def test_kubectl_notebook_builds_from_a_directory(
    real_stack: Stack, real_client: Client, ns: str, tmp_path: Path
) -> None:
    base = real_stack.bases[images.reference_ref("notebook")]
    work = tmp_path / "nb"
    work.mkdir()
    (work / "Dockerfile").write_text(f"FROM {base}\nCOPY hello.py /content/hello.py\n")
    (work / "hello.py").write_text("print('hello from a directory only the plugin saw')\n")
    nb = manifest("Notebook", "built-lab", {"resources": {"cpu": 0, "memory": 1}})
    (work / "notebook.yaml").write_text(yaml.safe_dump(nb))
    with kubectl_on_path(kubectl_binaries()["current"], tmp_path) as env:
        env["KUBECONFIG"] = str(real_stack.kubeconfig)
        plugin = Plugin(["kubectl", "notebook", "-n", ns, "-d", str(work), "--no-open-browser", "--port",
                         str(free_port()), "--no-sync", "-v"], env)  # fmt: skip
        try:
            await asyncio.to_thread(plugin.wait_for, r"http://localhost:\d+/\?token=", 300)
            obj = await get(real_client, Kind.NOTEBOOK, ns, "built-lab")
            assert obj["spec"]["image"].startswith(f"{registry_of(real_stack)}/")
            ran = await real_stack.kubectl(
                "exec", "-n", ns, "built-lab-notebook", "-c", "notebook", "--", "python3", "/content/hello.py"
            )
            assert ran.stdout.strip() == "hello from a directory only the plugin saw"
        finally:
            plugin.proc.terminate()
            await asyncio.to_thread(plugin.proc.wait, 60)


# ------------------------------------------------------------------------------------------------ failures
async def test_a_git_server_that_is_not_there_is_named(real_stack: Stack, real_client: Client, ns: str) -> None:
    node = real_stack.node
    assert node is not None
    url = f"git://{node.ip}:9/nothing-listens-here"
    body = manifest("Dataset", "no-git", {"build": {"git": {"url": url}}, "resources": JOB_RESOURCES})
    await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    await wait_condition(real_client, Kind.DATASET, ns, "no-git", "Built", "False", reason="BuildFailed", timeout=120)
    built = condition(await get(real_client, Kind.DATASET, ns, "no-git"), "Built")
    assert "init container git-clone failed" in built["message"], built
    assert f"unable to connect to {node.ip}" in built["message"], built


async def test_a_registry_that_is_not_there_is_named(
    real_stack: Stack, real_client: Client, ns: str, tmp_path: Path
) -> None:
    """The controller restarted with REGISTRY_URL pointing where nothing listens (then restored)."""
    node = real_stack.node
    assert node is not None
    nowhere = f"{node.ip}:5999"
    # FROM scratch: nothing to pull, so the push is the first registry request (and the build is quick)
    repo = context_dir(
        node.git_root / "for-nowhere", "never-runs", base="scratch", dockerfile="FROM {base}\nCOPY app.py /app.py\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    await real_stack.stop_controller()
    real_stack.controller_env["REGISTRY_URL"] = nowhere
    try:
        await real_stack.start_controller()
        body = manifest("Dataset", "no-registry", {"build": {"git": {"url": f"{node.s.git_url}/for-nowhere"}},
                                                   "resources": JOB_RESOURCES})  # fmt: skip
        await real_stack.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
        await wait_condition(
            real_client, Kind.DATASET, ns, "no-registry", "Built", "False", reason="BuildFailed", timeout=180
        )
        built = condition(await get(real_client, Kind.DATASET, ns, "no-registry"), "Built")
        assert f"to registry {nowhere}" in built["message"], built
    finally:
        await real_stack.stop_controller()
        real_stack.controller_env.pop("REGISTRY_URL", None)
        await real_stack.start_controller()
