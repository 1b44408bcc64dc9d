"""Settings: flags over environment over defaults, and one clear error naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from substratus_controller.cli import build_parser
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.settings import (
    ConfigError,
    describe_build,
    make_local_driver,
    render_context,
    resolve,
)

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
BUILDAH_IMAGE = "quay.io/buildah/stable:v1.38.0"
GIT_IMAGE = "alpine/git:2.45.2"
EVERY_BUILDER_FLAG = ["run", "--registry-insecure", "false", "--builder", "kaniko", "--builder-image", "k:1",
                      "--git-image", "g:1"]  # fmt: skip


def test_defaults() -> None:
    s = resolve({}, {})
    assert (s.cloud, s.metrics_bind_address, s.health_probe_bind_address, s.workers) == ("local", ":8080", ":8081", 4)
    assert s.namespaces == []
    assert s.leader_elect is False
    driver = make_local_driver(s)
    assert isinstance(driver, LocalDriver)
    assert str(driver.artifact_bucket) == "file:///var/lib/substratus/artifacts"


def test_flags_win_over_environment() -> None:
    env = {"CLOUD": "local", "CLUSTER_NAME": "from-env", "WORKERS": "2", "WATCH_NAMESPACES": "a,b"}
    s = resolve({"cluster_name": "from-flag", "namespace": ["x"]}, env)
    assert s.cluster_name == "from-flag"
    assert s.workers == 2
    assert s.namespaces == ["x"]
    assert resolve({}, env).namespaces == ["a", "b"]
    assert resolve({}, {"LEADER_ELECT": "true"}).leader_elect is True


@pytest.mark.parametrize(
    ("flags", "env", "needle"),
    [
        ({"cloud": "azure"}, {}, "--cloud/CLOUD"),
        ({}, {"WORKERS": "lots"}, "--workers/WORKERS"),
        ({"metrics_bind_address": "nonsense"}, {}, "--metrics-bind-address"),
        ({"log_format": "xml"}, {}, "--log-format/LOG_FORMAT"),
        ({}, {"ARTIFACT_BUCKET_URL": "ftp://x"}, "--artifact-bucket-url/ARTIFACT_BUCKET_URL"),
        ({}, {"ARTIFACT_BUCKET_URL": "gs://bucket"}, "--artifact-bucket-url/ARTIFACT_BUCKET_URL"),
        ({}, {"LOCAL_GPU_TYPES": "nvidia-k80"}, "--local-gpu-types/LOCAL_GPU_TYPES"),
        ({"upload_public_url": "ftp://x"}, {}, "--upload-public-url/UPLOAD_PUBLIC_URL"),
        ({}, {"UPLOAD_SIGNING_KEY": "short"}, "UPLOAD_SIGNING_KEY"),
        ({"upload_bind_address": "x"}, {}, "--upload-bind-address/UPLOAD_BIND_ADDRESS"),
        ({"builder": "docker"}, {}, "--builder/BUILDER"),
        ({}, {"BUILDER": "img"}, "--builder/BUILDER"),
        ({"registry_insecure": "maybe"}, {}, "--registry-insecure/REGISTRY_INSECURE"),
        ({}, {"REGISTRY_INSECURE": "on"}, "--registry-insecure/REGISTRY_INSECURE"),
        ({}, {"UPLOAD_MAX_BYTES": "0"}, "--upload-max-bytes/UPLOAD_MAX_BYTES"),
        ({"upload_max_concurrent": "many"}, {}, "--upload-max-concurrent/UPLOAD_MAX_CONCURRENT"),
        ({"metrics_cert_dir": "/certs"}, {}, "--metrics-cert-dir/METRICS_CERT_DIR: only used with --metrics-secure"),
        (
            {"notebook_network_policy": "deny-all"},
            {},
            "--notebook-network-policy/NOTEBOOK_NETWORK_POLICY: expected none or deny-ingress, got 'deny-all'",
        ),
        ({}, {"NOTEBOOK_NETWORK_POLICY": "on"}, "--notebook-network-policy/NOTEBOOK_NETWORK_POLICY"),
        ({"sync_period": "5"}, {}, "--sync-period/SYNC_PERIOD: expected an integer from 10 to 604800, got '5'"),
    ],
)
def test_errors_name_the_setting(flags: dict[str, object], env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_local_driver(resolve(flags, env))
    assert needle in str(info.value)


def test_run_exits_2_with_one_line_naming_the_setting() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "substratus_controller.cli", "run", "--workers", "0"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--workers/WORKERS" in lines[0]


def test_run_without_credentials_fails_clearly(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "substratus_controller.cli", "run", "--kubeconfig", "/nonexistent/kubeconfig"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "cannot load Kubernetes credentials" in proc.stderr


# ------------------------------------------------------------------------------------------------ builder
@pytest.mark.parametrize(
    ("cloud", "expected"),
    [
        ("local", ("buildah", BUILDAH_IMAGE, GIT_IMAGE, True)),
        ("gcp", ("kaniko", KANIKO_IMAGE, GIT_IMAGE, False)),
        ("aws", ("kaniko", KANIKO_IMAGE, GIT_IMAGE, False)),
    ],
)
def test_builder_defaults_per_cloud(cloud: str, expected: tuple[str, str, str, bool]) -> None:
    s = resolve({"cloud": cloud}, {})
    assert (s.builder, s.builder_image, s.git_image, s.registry_insecure) == expected


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        # --builder / BUILDER; the image follows the chosen builder unless given
        ({"builder": "kaniko"}, {"BUILDER": "buildah"}, ("kaniko", KANIKO_IMAGE)),
        ({}, {"BUILDER": "Kaniko "}, ("kaniko", KANIKO_IMAGE)),
        ({"cloud": "gcp"}, {"BUILDER": "buildah"}, ("buildah", BUILDAH_IMAGE)),
        ({"cloud": "aws", "builder": "buildah"}, {}, ("buildah", BUILDAH_IMAGE)),
        ({}, {"BUILDER": ""}, ("buildah", BUILDAH_IMAGE)),  # empty = not given
        # --builder-image / BUILDER_IMAGE
        ({"builder_image": "me/buildah:1"}, {"BUILDER_IMAGE": "env/buildah:1"}, ("buildah", "me/buildah:1")),
        ({}, {"BUILDER_IMAGE": "env/buildah:1"}, ("buildah", "env/buildah:1")),
        ({"cloud": "gcp"}, {"BUILDER_IMAGE": "mirror/kaniko:1"}, ("kaniko", "mirror/kaniko:1")),
    ],
)
def test_builder_and_image_flag_beats_env(
    flags: dict[str, object], env: dict[str, str], expected: tuple[str, str]
) -> None:
    s = resolve(flags, env)
    assert (s.builder, s.builder_image) == expected


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({"git_image": "me/git:1"}, {"GIT_IMAGE": "env/git:1"}, "me/git:1"),
        ({}, {"GIT_IMAGE": "env/git:1"}, "env/git:1"),
        ({}, {}, GIT_IMAGE),
    ],
)
def test_git_image_flag_beats_env(flags: dict[str, object], env: dict[str, str], expected: str) -> None:
    assert resolve(flags, env).git_image == expected


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({}, {"REGISTRY_INSECURE": "false"}, False),
        ({}, {"REGISTRY_INSECURE": "0"}, False),
        ({}, {"REGISTRY_INSECURE": "No"}, False),
        ({"cloud": "gcp"}, {"REGISTRY_INSECURE": "true"}, True),
        ({"cloud": "gcp"}, {"REGISTRY_INSECURE": "1"}, True),
        ({"cloud": "aws"}, {"REGISTRY_INSECURE": "YES"}, True),
        ({"registry_insecure": "false"}, {"REGISTRY_INSECURE": "true"}, False),
        ({"cloud": "gcp", "registry_insecure": "yes"}, {"REGISTRY_INSECURE": "no"}, True),
        ({}, {"REGISTRY_INSECURE": ""}, True),  # empty = not given: the local default
    ],
)
def test_registry_insecure(flags: dict[str, object], env: dict[str, str], expected: bool) -> None:
    assert resolve(flags, env).registry_insecure is expected


def test_unknown_builder_message() -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"builder": "x"}, {})
    assert str(info.value) == "--builder/BUILDER: unknown builder 'x'; expected kaniko or buildah"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run"], ("buildah", BUILDAH_IMAGE, GIT_IMAGE, True)),
        (["run", "--cloud", "gcp", "--registry-insecure"], ("kaniko", KANIKO_IMAGE, GIT_IMAGE, True)),
        (EVERY_BUILDER_FLAG, ("kaniko", "k:1", "g:1", False)),
        (["run", "--registry-insecure=no"], ("buildah", BUILDAH_IMAGE, GIT_IMAGE, False)),
    ],
)
def test_cli_flags_reach_the_render_context(argv: list[str], expected: tuple[str, str, str, bool]) -> None:
    s = resolve(vars(build_parser().parse_args(argv)), {})
    driver = LocalDriver(registry_url="localhost:5000")
    ctx = render_context(s, driver)
    assert (ctx.builder, ctx.builder_image, ctx.git_image, ctx.insecure_registry) == expected
    assert ctx.cloud is driver
    assert describe_build(s) == {
        "builder": expected[0],
        "builder_image": expected[1],
        "git_image": expected[2],
        "registry_insecure": str(expected[3]).lower(),
    }


def test_builder_flags_are_in_the_help() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = run.format_help()
    for flag, var in (("--builder", "BUILDER"), ("--builder-image", "BUILDER_IMAGE"), ("--git-image", "GIT_IMAGE"),
                      ("--registry-insecure", "REGISTRY_INSECURE")):  # fmt: skip
        assert flag in text
        assert f"[{var};" in " ".join(text.split()), var


def test_metrics_secure_from_flag_or_environment() -> None:
    assert resolve({}, {}).metrics_secure is False
    assert resolve({"metrics_secure": True}, {}).metrics_secure is True
    s = resolve({}, {"METRICS_SECURE": "true", "METRICS_CERT_DIR": "/certs"})
    assert (s.metrics_secure, s.metrics_cert_dir) == (True, "/certs")
    args = build_parser().parse_args(["run", "--metrics-secure", "--metrics-cert-dir", "/c"])
    assert (resolve(vars(args), {}).metrics_secure, resolve(vars(args), {}).metrics_cert_dir) == (True, "/c")


AWS_IAM = ["namespace-iam", "--cloud", "aws", "--cluster-name", "c", "--artifact-bucket-url", "s3://bkt",
           "--registry-url", "123456789012.dkr.ecr.us-west-2.amazonaws.com/substratus",
           "--principal", "arn:aws:iam::123456789012:role/substratus"]  # fmt: skip
AWS_ENV = {"AWS_REGION": "us-west-2", "AWS_OIDC_PROVIDER": "oidc.eks.us-west-2.amazonaws.com/id/X",
           "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/usr/bin:/bin"}  # fmt: skip


def _cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "substratus_controller.cli", *argv],
        capture_output=True, text=True, check=False, timeout=60, env=env,
    )  # fmt: skip


def test_namespace_iam_prints_only_json_naming_the_namespace_role() -> None:
    import json

    proc = _cli([*AWS_IAM, "team-a"], AWS_ENV)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # nothing but the document on stdout
    assert out["principal"] == "arn:aws:iam::123456789012:role/substratus-team-a"
    assert out["artifacts"] == "s3://bkt/clusters/c/namespaces/team-a"
    assert set(out) == {"cloud", "namespace", "principal", "artifacts", "permissionPolicy", "trustPolicy"}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--workload-principal", "arn:aws:iam::123456789012:role/shared", "ns"], "must contain {namespace}"),
        (["n" * 60], "has no usable cloud identity"),
    ],
)
def test_namespace_iam_errors_are_one_line_and_exit_2(extra: list[str], needle: str) -> None:
    proc = _cli([*AWS_IAM, *extra], AWS_ENV)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert needle in line


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["run"], {}, "none"),
        (["run", "--notebook-network-policy", "deny-ingress"], {}, "deny-ingress"),
        (["run", "--notebook-network-policy=Deny-Ingress"], {}, "deny-ingress"),
        (["run"], {"NOTEBOOK_NETWORK_POLICY": "deny-ingress"}, "deny-ingress"),
        (["run", "--notebook-network-policy", "none"], {"NOTEBOOK_NETWORK_POLICY": "deny-ingress"}, "none"),
    ],
)
def test_notebook_network_policy_reaches_the_render_context(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    s = resolve(vars(build_parser().parse_args(argv)), env)
    assert render_context(s, LocalDriver(registry_url="localhost:5000")).notebook_network_policy == expected


def test_the_notebook_network_policy_flag_is_in_the_help() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = " ".join(run.format_help().split())
    assert "--notebook-network-policy" in text
    assert "[NOTEBOOK_NETWORK_POLICY; default none]" in text


def test_sync_period_from_flag_or_environment() -> None:
    assert resolve({}, {}).sync_period == 36000.0
    assert resolve({}, {"SYNC_PERIOD": "60"}).sync_period == 60.0
    assert resolve({"sync_period": "30"}, {"SYNC_PERIOD": "60"}).sync_period == 30.0
