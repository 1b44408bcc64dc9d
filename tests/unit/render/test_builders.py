"""The pluggable image builder (render/builders.py, render/build.py): what each builder's container is made of
and what the constant buildah script does with it.

- the buildah container: exact security context, env, and a command that never contains a spec value;
- the script itself, run by /bin/sh with fake `buildah` and `tar` on PATH: the commands it runs, the one
  line it ends with on each failure, and that quotes and `$(...)` in a git path stay literal;
- git.path validation (absolute, `..`) for both builders; FallbackToLogsOnError on every container that
  can fail a build; Kaniko's plain-HTTP flags only for an insecure registry;
- upload builds: the tarball read from /upload (hostPath on local, fetched by an init container elsewhere).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from substratus_controller.api.v1 import Model
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import BUILDER_BUILDAH, BUILDER_KANIKO, BUILDERS, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.render import RenderContext, build_job
from substratus_controller.render.builders import BUILDAH_SCRIPT, builder_for, registry_host
from substratus_controller.render.context import DEFAULT_BUILDAH_IMAGE, DEFAULT_KANIKO_IMAGE
from substratus_controller.render.errors import InvalidSpecError
from substratus_controller.render.security import buildah_container_security_context

from .drivers import FakeGKEDriver

TARGET = "localhost:5000/substratus-model-ns-x:latest"
BUILDAH_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID", "SETFCAP"]},
    "seccompProfile": {"type": "Unconfined"},
}
HOSTILE_PATHS = ["$(touch pwned)", "a'b\"c", "sub dir/`touch pwned`", "x;touch pwned", "$HOME/${IFS}x"]


def ctx(builder: str, *, insecure: bool = False, cloud: Any = None) -> RenderContext:
    return RenderContext(
        cloud=cloud or LocalDriver(registry_url="localhost:5000"), builder=builder, insecure_registry=insecure
    )


def model(build: JSON) -> Model:
    return Model.model_validate({"metadata": {"name": "x", "namespace": "ns", "uid": "u"}, "spec": {"build": build}})


def pod(builder: str, build: JSON, **kw: Any) -> JSON:
    job = build_job(model(build), Kind.MODEL, ctx(builder, **kw), target=TARGET, build_id="b")
    spec: JSON = job["spec"]["template"]["spec"]
    return spec


def env(container: JSON) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


UPLOAD = {"upload": {"md5Checksum": "0" * 32, "requestID": "r"}}


# ---------------------------------------------------------------------------------------------- buildah
def test_buildah_security_context_is_exact() -> None:
    builder = pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r"}})["containers"][0]
    assert builder["securityContext"] == BUILDAH_SECURITY_CONTEXT
    assert buildah_container_security_context() == BUILDAH_SECURITY_CONTEXT
    assert buildah_container_security_context() is not buildah_container_security_context()


def test_buildah_container() -> None:
    spec = pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r", "path": "images/base/"}}, insecure=True)
    builder = spec["containers"][0]
    assert builder["name"] == "builder"
    assert builder["image"] == DEFAULT_BUILDAH_IMAGE
    assert builder["command"] == ["/bin/sh", "-c", BUILDAH_SCRIPT]
    assert "args" not in builder
    assert env(builder) == {
        "BUILDAH_ISOLATION": "chroot",
        "BUILD_CONTEXT": "/workspace/images/base",
        "BUILD_DOCKERFILE": "/workspace/images/base/Dockerfile",
        "BUILD_REGISTRY": "localhost:5000",
        "BUILD_TARGET": TARGET,
        "BUILD_TLS_VERIFY": "false",
        "STORAGE_DRIVER": "vfs",
    }
    assert spec["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "fsGroup": 3003}
    tls = env(pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r"}})["containers"][0])
    assert (tls["BUILD_CONTEXT"], tls["BUILD_TLS_VERIFY"]) == ("/workspace", "true")


def test_buildah_script_has_the_documented_steps() -> None:
    assert BUILDAH_SCRIPT.startswith("set -eu\n")
    assert 'tar -xzf "$BUILD_TARBALL" --no-same-owner -C /workspace' in BUILDAH_SCRIPT
    bud = (
        'buildah bud --isolation chroot --storage-driver vfs --tls-verify="$BUILD_TLS_VERIFY" \\\n'
        '    -f "$BUILD_DOCKERFILE" -t "$BUILD_TARGET" "$BUILD_CONTEXT"'
    )
    assert bud in BUILDAH_SCRIPT
    assert 'buildah push --storage-driver vfs --tls-verify="$BUILD_TLS_VERIFY" "$BUILD_TARGET"' in BUILDAH_SCRIPT


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_no_spec_value_reaches_the_command(path: str) -> None:
    url = "https://example.com/$(touch pwned)'\"/repo"
    spec = pod(BUILDER_BUILDAH, {"git": {"url": url, "path": path, "branch": "b$(id)"}})
    command = spec["containers"][0]["command"]
    assert command == ["/bin/sh", "-c", BUILDAH_SCRIPT]
    for value in (path, url, "b$(id)", "pwned"):
        assert all(value not in part for part in command), value
    # the path reaches the script as data only, with `$` doubled so the kubelet does not expand $(VAR)
    assert env(spec["containers"][0])["BUILD_CONTEXT"] == f"/workspace/{path}".replace("$", "$$")
    (clone,) = spec["initContainers"]
    assert "command" not in clone  # git's own entrypoint; the URL is one argument, no shell
    assert clone["args"] == ["clone", url, "--branch", "b$(id)", "/workspace"]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("path", ["/etc", "/", "..", "../x", "a/../../b", "a/..", "./../x"])
def test_git_path_must_stay_inside_the_clone(builder: str, path: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        pod(builder, {"git": {"url": "https://example.com/r", "path": path}})
    assert err.value.field == "spec.build.git.path"
    assert str(err.value).startswith("spec.build.git.path: ")


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("path", ["a", "a/b/", "./a", "a..b/c", "..a"])
def test_relative_git_paths_are_accepted(builder: str, path: str) -> None:
    pod(builder, {"git": {"url": "https://example.com/r", "path": path}})


def test_buildah_upload_build_on_local_reads_the_hostpath_tarball() -> None:
    spec = pod(BUILDER_BUILDAH, UPLOAD)
    assert "initContainers" not in spec
    builder = spec["containers"][0]
    assert env(builder)["BUILD_TARBALL"] == "/upload/00000000000000000000000000000000.tar.gz"
    assert env(builder)["BUILD_CONTEXT"] == "/workspace"
    assert {"name": "upload", "mountPath": "/upload", "readOnly": True} in builder["volumeMounts"]
    (upload,) = [v for v in spec["volumes"] if v["name"] == "upload"]
    assert upload["hostPath"]["type"] == "Directory"


def test_buildah_upload_build_elsewhere_fetches_the_tarball_after_the_cloud_init_containers() -> None:
    spec = pod(BUILDER_BUILDAH, UPLOAD, cloud=FakeGKEDriver())
    assert [c["name"] for c in spec["initContainers"]] == ["workload-identity-check", "fetch-context"]
    fetch = spec["initContainers"][1]
    upload_url = FakeGKEDriver().upload_url(Kind.MODEL, "ns", "x", "00000000000000000000000000000000")
    assert fetch["command"] == [
        "gcloud",
        "storage",
        "cp",
        str(upload_url),
        "/upload/00000000000000000000000000000000.tar.gz",
    ]
    assert fetch["volumeMounts"] == [{"name": "upload", "mountPath": "/upload"}]
    assert {"name": "upload", "emptyDir": {}} in spec["volumes"]
    builder = spec["containers"][0]
    assert env(builder)["BUILD_TARBALL"] == "/upload/00000000000000000000000000000000.tar.gz"
    assert {"name": "upload", "mountPath": "/upload", "readOnly": True} in builder["volumeMounts"]
    # the tarball is outside the build context, so `COPY . .` cannot copy it into the image
    assert not env(builder)["BUILD_TARBALL"].startswith(env(builder)["BUILD_CONTEXT"] + "/")


# ---------------------------------------------------------------------------------------------- kaniko
@pytest.mark.parametrize("insecure", [False, True])
def test_kaniko_plain_http_flags_only_for_an_insecure_registry(insecure: bool) -> None:
    spec = pod(BUILDER_KANIKO, {"git": {"url": "https://example.com/r", "path": "sub"}}, insecure=insecure)
    builder = spec["containers"][0]
    expected = [
        "--context=dir:///workspace",
        f"--destination={TARGET}",
        "--cache=true",
        "--compressed-caching=false",
        "--log-format=color",
        "--log-timestamp=false",
        "--context-sub-path=sub",
        *(["--insecure", "--insecure-pull"] if insecure else []),
    ]
    assert builder["args"] == expected
    assert builder["image"] == DEFAULT_KANIKO_IMAGE
    assert "securityContext" not in builder
    assert "command" not in builder


def test_kaniko_is_what_a_bare_render_context_means() -> None:
    bare = RenderContext(cloud=LocalDriver(registry_url="localhost:5000"))
    assert (bare.builder, bare.builder_image, bare.insecure_registry) == (BUILDER_KANIKO, DEFAULT_KANIKO_IMAGE, False)
    assert RenderContext(cloud=bare.cloud, builder=BUILDER_BUILDAH).builder_image == DEFAULT_BUILDAH_IMAGE
    with pytest.raises(ValueError, match="unknown builder 'docker'"):
        RenderContext(cloud=bare.cloud, builder="docker")
    with pytest.raises(ValueError, match="unknown builder"):
        builder_for("docker")


# ---------------------------------------------------------------------------------------------- both
@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("build", [{"git": {"url": "https://example.com/r"}}, UPLOAD])
def test_every_build_container_falls_back_to_its_logs(builder: str, build: JSON) -> None:
    for cloud in (LocalDriver(registry_url="localhost:5000"), FakeGKEDriver()):
        spec = pod(builder, build, cloud=cloud)
        own = [c for c in spec.get("initContainers", []) if c["name"] in ("git-clone", "fetch-context")]
        for container in [*own, *spec["containers"]]:
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", (builder, container["name"])


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("localhost:5000/a:1", "localhost:5000"),
        ("localhost/a", "localhost"),
        ("us-docker.pkg.dev/p/r/i:t", "us-docker.pkg.dev"),
        ("123456789012.dkr.ecr.us-west-2.amazonaws.com/substratus/x:1", "123456789012.dkr.ecr.us-west-2.amazonaws.com"),
        ("10.244.0.1:5000/x:1", "10.244.0.1:5000"),
        ("library/python:3.11", "docker.io"),
        ("python:3.11", "docker.io"),
    ],
)
def test_registry_host(image: str, host: str) -> None:
    assert registry_host(image) == host


# ------------------------------------------------------------------------------------ the script, run
FAKE = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_LOG"
for a in "$@"; do printf '[%s]' "$a" >> "$FAKE_LOG"; done
echo >> "$FAKE_LOG"
case "$1" in {fail}) echo "fake $1 failed: STEP 2/3: RUN false" >&2; exit 3;; esac
exit 0
"""


def run_script(
    tmp: Path, container: JSON, *, fail: str = "none", dockerfile: bool = True, workspace: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the container's command as the kubelet would: env with `$$` -> `$`, fake buildah/tar on PATH.
    The workspace is redirected into `tmp` (the script's context paths come from env)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("buildah", "tar"):
        fake = bin_dir / name
        fake.write_text(FAKE.replace("{fail}", fail))
        fake.chmod(0o755)
    variables = {k: v.replace("$$", "$") for k, v in env(container).items()}
    work = workspace or tmp / "workspace"
    for key in ("BUILD_CONTEXT", "BUILD_DOCKERFILE"):
        variables[key] = str(work) + variables[key].removeprefix("/workspace")
    if dockerfile:
        Path(variables["BUILD_DOCKERFILE"]).parent.mkdir(parents=True, exist_ok=True)
        Path(variables["BUILD_DOCKERFILE"]).write_text("FROM scratch\n")
    log = tmp / "calls.log"
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), **variables}
    proc = subprocess.run(
        container["command"], env=full_env, cwd=tmp, capture_output=True, text=True, check=False, timeout=30
    )
    calls = log.read_text().splitlines()[1::2] if log.exists() else []
    return proc, calls


def test_script_builds_then_pushes(tmp_path: Path) -> None:
    builder = pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r", "path": "sub"}})["containers"][0]
    proc, calls = run_script(tmp_path, builder)
    assert proc.returncode == 0, proc.stderr
    context = f"{tmp_path}/workspace/sub"
    assert calls == [
        "[bud][--isolation][chroot][--storage-driver][vfs][--tls-verify=true]"
        f"[-f][{context}/Dockerfile][-t][{TARGET}][{context}]",
        f"[push][--storage-driver][vfs][--tls-verify=true][{TARGET}]",
    ]


def test_script_unpacks_an_upload_first(tmp_path: Path) -> None:
    builder = pod(BUILDER_BUILDAH, UPLOAD, insecure=True)["containers"][0]
    proc, calls = run_script(tmp_path, builder)
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == "[-xzf][/upload/00000000000000000000000000000000.tar.gz][--no-same-owner][-C][/workspace]"
    assert calls[1].startswith("[bud][--isolation][chroot][--storage-driver][vfs][--tls-verify=false]")


@pytest.mark.parametrize(
    ("fail", "last_line", "calls"),
    [
        ("bud", "substratus: build failed", 1),
        ("push", f"substratus: cannot push {TARGET} to registry localhost:5000", 2),
    ],
)
def test_script_failures_end_with_one_clear_line(tmp_path: Path, fail: str, last_line: str, calls: int) -> None:
    builder = pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r"}})["containers"][0]
    proc, made = run_script(tmp_path, builder, fail=fail)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == last_line
    assert lines[-2].startswith(f"fake {fail} failed")  # buildah's own output comes first
    assert len(made) == calls


def test_script_names_a_missing_dockerfile(tmp_path: Path) -> None:
    builder = pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r", "path": "nope"}})["containers"][0]
    proc, made = run_script(tmp_path, builder, dockerfile=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"substratus: build failed: no Dockerfile at {tmp_path}/workspace/nope/Dockerfile"
    )
    assert made == []


def test_script_failing_to_unpack_says_so(tmp_path: Path) -> None:
    builder = pod(BUILDER_BUILDAH, UPLOAD)["containers"][0]
    proc, made = run_script(tmp_path, builder, fail="-xzf")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "substratus: cannot unpack the uploaded build context /upload/00000000000000000000000000000000.tar.gz"
    )
    assert len(made) == 1


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_script_keeps_hostile_paths_literal(tmp_path: Path, path: str) -> None:
    builder = pod(BUILDER_BUILDAH, {"git": {"url": "https://example.com/r", "path": path}})["containers"][0]
    proc, calls = run_script(tmp_path, builder)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.rglob("pwned")), "the path was executed"
    assert calls[0].endswith(f"[{tmp_path}/workspace/{path}]")
