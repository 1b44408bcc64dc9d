"""KEP-1755 registry discovery (cloud/registry_hosting.py) as a table (fast tier): the ConfigMap's data ->
the registry the local cloud pushes to and names images with, or why there is none."""

from __future__ import annotations

import pytest

from substratus_controller.cloud.registry_hosting import is_loopback, resolve_hosting

KEY = "localRegistryHosting.v1"


@pytest.mark.parametrize(
    ("doc", "registry", "problem"),
    [
        # the real node's: one address for everyone
        (
            'host: "10.244.0.1:5000"\nhostFromContainerRuntime: "10.244.0.1:5000"\n'
            'hostFromClusterNetwork: "10.244.0.1:5000"\n',
            "10.244.0.1:5000",
            "",
        ),
        # kind's recipe with the in-network name published for both
        (
            'host: "localhost:5001"\nhostFromContainerRuntime: "kind-registry:5000"\n'
            'hostFromClusterNetwork: "kind-registry:5000"\n',
            "kind-registry:5000",
            "",
        ),
        # the KEP's defaults: hostFromClusterNetwork <- hostFromContainerRuntime <- host
        ('host: "registry.internal:5000"\n', "registry.internal:5000", ""),
        ('hostFromContainerRuntime: "registry.internal:5000"\n', "registry.internal:5000", ""),
        # kind's documented minimum (only `host`, the laptop's view): a loopback address, refused
        ('host: "localhost:5001"\nhelp: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n', "", "loopback"),
        ('host: "127.0.0.1:5001"\n', "", "loopback"),
        # pods and nodes see different names: one image name cannot serve both
        ('hostFromContainerRuntime: "localhost:5001"\nhostFromClusterNetwork: "kind-registry:5000"\n', "", "differs"),
        ("help: x\n", "", "names no host"),
        ("- a list\n", "", "not a mapping"),
        ("host: [unclosed\n", "", "not YAML"),
    ],
)
def test_resolve(doc: str, registry: str, problem: str) -> None:
    hosting = resolve_hosting({KEY: doc})
    assert hosting.registry == registry
    assert problem in hosting.problem
    assert bool(hosting.problem) is not bool(registry)


def test_a_configmap_without_the_key_names_it() -> None:
    assert KEY in resolve_hosting({"other": "x"}).problem
    assert KEY in resolve_hosting(None).problem


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("localhost:5000", True),
        ("LOCALHOST", True),
        ("127.0.0.1:5000", True),
        ("127.9.9.9", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("10.244.0.1:5000", False),
        ("kind-registry:5000", False),
        ("localhost.example:5000", False),
        ("gcr.io/project", False),
        ("localhost:5000/team/sub", True),
    ],
)
def test_is_loopback(registry: str, loopback: bool) -> None:
    assert is_loopback(registry) is loopback
