"""Namespace and kubeconfig resolution, the kubectl way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from substratus_controller.plugins.commandline import PluginError
from substratus_controller.plugins.kubeconfig import (
    Cluster,
    cluster_from_flags,
    context_namespace,
    kubeconfig_paths,
    resolve_namespace,
)


def kubeconfig(path: Path, current: str | None, contexts: dict[str, str | None]) -> Path:
    lines = [f"current-context: {current}"] if current else []
    lines.append("contexts:")
    for name, ns in contexts.items():
        lines.append(
            f"- name: {name}\n  context:\n    cluster: c\n    user: u" + (f"\n    namespace: {ns}" if ns else "")
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("flag", "manifest", "context", "expected"),
    [
        ("a", None, "ctx", "a"),  # -n wins
        ("a", "a", "ctx", "a"),  # the same namespace in the manifest is fine
        (None, "m", "ctx", "m"),  # the manifest's namespace, when -n is absent
        (None, None, "ctx", "ctx"),  # then the context's
        (None, None, None, "default"),
    ],
)
def test_namespace_precedence(flag: str | None, manifest: str | None, context: str | None, expected: str) -> None:
    assert resolve_namespace(flag, manifest, context) == expected


def test_a_manifest_namespace_that_differs_from_n_is_kubectls_error() -> None:
    with pytest.raises(PluginError) as info:
        resolve_namespace("b", "a", "ctx")
    assert str(info.value) == (
        'the namespace from the provided object "a" does not match the namespace "b". '
        "You must pass '--namespace=a' to perform this operation."
    )


def test_kubeconfig_flag_then_env_list_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = kubeconfig(tmp_path / "one", "x", {"x": None})
    two = kubeconfig(tmp_path / "two", None, {})
    assert kubeconfig_paths(str(one), {"KUBECONFIG": str(two)}) == [one]
    assert kubeconfig_paths(None, {"KUBECONFIG": f"{one}{os.pathsep}{two}"}) == [one, two]
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_paths(None, {}) == [tmp_path / ".kube" / "config"]
    assert kubeconfig_paths(None, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == []  # in-cluster
    with pytest.raises(PluginError, match=r"stat missing\.yaml: no such file or directory"):
        kubeconfig_paths("missing.yaml", {})


def test_context_namespace_across_merged_files(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "first", "dev", {"dev": "team-a"})
    second = kubeconfig(tmp_path / "second", "prod", {"dev": "ignored", "prod": "team-b", "bare": None})
    assert context_namespace([first, second], None) == "team-a"  # the first current-context and context win
    assert context_namespace([second, first], None) == "team-b"
    assert context_namespace([first, second], "prod") == "team-b"
    assert context_namespace([first, second], "bare") is None
    assert context_namespace([tmp_path / "absent", first], None) == "team-a"
    with pytest.raises(PluginError, match='context "nope" does not exist'):
        context_namespace([first], "nope")


def test_cluster_passes_explicit_flags_on_to_kubectl(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "cfg", "dev", {"dev": "team-a"})
    cluster = cluster_from_flags(str(path), "dev", env={})
    assert cluster.context_namespace == "team-a"
    assert cluster.kubectl_flags() == ["--kubeconfig", str(path), "--context", "dev"]
    assert Cluster((path,)).kubectl_flags() == []  # $KUBECONFIG is inherited by the child
