"""Resource requests, the memory limit (= the memory request) and GPU placement."""

from __future__ import annotations

import pytest

from substratus_controller.api.v1 import GPUResources, GPUType, Resources
from substratus_controller.cloud.base import GPU_TOLERATION
from substratus_controller.cloud.local import LocalDriver
from substratus_controller.constants import MAX_GPU_COUNT
from substratus_controller.render.errors import InvalidSpecError, UnsupportedGPUError
from substratus_controller.render.resources import container_resources

from .drivers import FakeGKEDriver


def test_defaults_from_cloud_when_absent() -> None:
    assert container_resources(None, FakeGKEDriver()) == (
        {"requests": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "100Gi"}, "limits": {"memory": "4Gi"}},
        {},
        [],
    )


def test_local_defaults_are_zero_so_nothing() -> None:
    assert container_resources(None, LocalDriver()) == ({}, {}, [])


def test_crd_defaults_when_present() -> None:
    res, selector, tolerations = container_resources(Resources(), LocalDriver())
    assert res == {
        "requests": {"cpu": "2", "memory": "10Gi", "ephemeral-storage": "10Gi"},
        "limits": {"memory": "10Gi"},
    }
    assert (selector, tolerations) == ({}, [])


def test_explicit_values_memory_limit_only() -> None:
    res, _, _ = container_resources(Resources(cpu=8, memory=8, disk=300), LocalDriver())
    assert res == {"requests": {"cpu": "8", "memory": "8Gi", "ephemeral-storage": "300Gi"}, "limits": {"memory": "8Gi"}}


def test_zeros_omitted() -> None:
    assert container_resources(Resources(cpu=0, memory=0, disk=0), LocalDriver()) == ({}, {}, [])
    res, _, _ = container_resources(Resources(cpu=1, memory=0, disk=0), LocalDriver())
    assert res == {"requests": {"cpu": "1"}}


def test_gpu_with_node_selector() -> None:
    gpu = GPUResources(type=GPUType.NVIDIA_L4, count=2)
    res, selector, tolerations = container_resources(Resources(cpu=4, memory=16, disk=0, gpu=gpu), FakeGKEDriver())
    assert res == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert tolerations == [GPU_TOLERATION]
    tolerations[0]["key"] = "mutated"
    assert GPU_TOLERATION["key"] == "nvidia.com/gpu"  # a copy, not the driver's table


def test_gpu_without_type_on_local() -> None:
    res, selector, tolerations = container_resources(
        Resources(cpu=0, memory=0, disk=0, gpu=GPUResources(count=1)), LocalDriver()
    )
    assert res == {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    assert selector == {}
    assert tolerations == [GPU_TOLERATION]


def test_gpu_count_zero_is_no_gpu() -> None:
    gpu = GPUResources(type=GPUType.NVIDIA_H100, count=0)  # unsupported on fake-gke, but not requested
    res, selector, tolerations = container_resources(Resources(cpu=2, gpu=gpu), FakeGKEDriver())
    assert res["limits"] == {"memory": "10Gi"}
    assert "nvidia.com/gpu" not in res["requests"]
    assert (selector, tolerations) == ({}, [])


@pytest.mark.parametrize("gpu_type", [GPUType.NVIDIA_H100, None])
def test_unsupported_gpu(gpu_type: GPUType | None) -> None:
    with pytest.raises(UnsupportedGPUError) as err:
        container_resources(Resources(gpu=GPUResources(type=gpu_type, count=1)), FakeGKEDriver())
    assert "fake-gke" in str(err.value)


@pytest.mark.parametrize(
    ("count", "accepted"),
    [(1, True), (8, True), (MAX_GPU_COUNT, True), (MAX_GPU_COUNT + 1, False), (10**9, False)],
)
def test_gpu_counts_no_node_has_are_invalid_specs_naming_the_field(count: int, accepted: bool) -> None:
    resources = Resources(gpu=GPUResources(type=GPUType.NVIDIA_L4, count=count))
    if accepted:
        res, _, _ = container_resources(resources, FakeGKEDriver())
        assert res["limits"]["nvidia.com/gpu"] == str(count)
        return
    with pytest.raises(InvalidSpecError) as err:
        container_resources(resources, FakeGKEDriver())
    assert err.value.field == "spec.resources.gpu.count"
    assert f"{count} GPUs cannot be placed" in str(err.value)
