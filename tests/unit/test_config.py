"""Settings: flags over environment over defaults, and one clear error naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from substratus_controller.cloud.local import LocalDriver
from substratus_controller.controllers.config import ConfigError, make_local_driver, resolve


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
