"""The workload pod's pure decisions: pull policy, scratch env defaults (spec.env wins), init containers."""

from __future__ import annotations

import pytest

from substratus_controller.render._pod import pull_policy
from substratus_controller.render.env import container_env
from substratus_controller.render.errors import InvalidSpecError
from substratus_controller.render.scratch import scratch_env


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("substratus.local/model-server:0.1", "IfNotPresent"),
        ("python:3.11", "IfNotPresent"),
        ("localhost:5000/team/loader:v2", "IfNotPresent"),
        ("10.244.0.1:5000/x@sha256:" + "a" * 64, "IfNotPresent"),
        ("substratusai/base", "Always"),  # no tag: Kubernetes pulls it every time
        ("substratusai/base:latest", "Always"),
        ("localhost:5000/team/loader", "Always"),  # the port is not a tag
    ],
)
def test_pull_policy_is_kubernetes_default_made_explicit(image: str, policy: str) -> None:
    assert pull_policy(image) == policy


def test_scratch_defaults_yield_to_spec_env() -> None:
    env = container_env(env={"HF_HOME": "/content/artifacts/hf"}, params={"epochs": 2}, defaults=scratch_env())
    by_name = {v["name"]: v.get("value") for v in env}
    assert by_name["HF_HOME"] == "/content/artifacts/hf"
    assert by_name["HOME"] == "/home/substratus"
    assert by_name["PARAM_EPOCHS"] == "2"
    assert [v["name"] for v in env] == sorted(by_name)


def test_jupyter_dirs_only_for_notebooks() -> None:
    assert not any(v["name"].startswith("JUPYTER_") for v in scratch_env())
    assert {v["name"] for v in scratch_env(jupyter=True)} >= {"JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"}


def test_reserved_extra_still_conflicts() -> None:
    with pytest.raises(InvalidSpecError, match="NOTEBOOK_TOKEN"):
        container_env(env={"NOTEBOOK_TOKEN": "x"}, params=None, extra=[{"name": "NOTEBOOK_TOKEN", "value": "y"}],
                      defaults=scratch_env())  # fmt: skip
