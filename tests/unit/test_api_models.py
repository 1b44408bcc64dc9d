"""The pydantic API models: JSON names, round trips, and the validation docs/decisions.md §1 asks for."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from substratus_controller.api.v1 import KINDS, Dataset, Model, Notebook, Server
from tests.samples import MD5, full_objects, minimal

BY_KIND = {cls.KIND.value: cls for cls in KINDS}


@pytest.mark.parametrize("obj", full_objects(), ids=lambda o: o["metadata"]["name"])
def test_full_objects_round_trip(obj: dict[str, Any]) -> None:
    parsed = BY_KIND[obj["kind"]].from_api(obj)
    assert parsed.to_api() == obj


def test_acronym_aliases_follow_the_seed() -> None:
    obj = full_objects()[2]  # dataset upload variant
    parsed = Dataset.from_api(obj)
    assert parsed.spec.build is not None
    assert parsed.spec.build.upload is not None
    assert parsed.spec.build.upload.request_id == "req-1"
    out = parsed.to_api()
    assert set(out["spec"]["build"]["upload"]) == {"md5Checksum", "requestID"}
    assert set(out["status"]["buildUpload"]) == {"signedURL", "requestID", "expiration", "storedMD5Checksum"}
    assert "observedGeneration" in out["status"]


def test_unset_fields_are_omitted_not_null() -> None:
    out = Model.from_api(minimal("Model")).to_api()
    assert out["spec"] == {"image": "img"}
    assert "status" not in out


def _error(cls: type[Any], obj: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        cls.from_api(obj)
    return str(info.value)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (
            {"build": {"git": {"url": "u"}, "upload": {"md5Checksum": MD5, "requestID": "r"}}},
            "exactly one of git",
        ),
        ({"build": {}}, "exactly one of git"),
        ({"build": {"git": {"url": "u", "tag": "t", "branch": "b"}}}, "either tag or branch"),
        ({"build": {"upload": {"md5Checksum": "xyz", "requestID": "r"}}}, "md5Checksum"),
        ({"build": {"upload": {"md5Checksum": "g" * 32, "requestID": "r"}}}, "md5Checksum"),
        ({"resources": {"gpu": {"type": "nvidia-k80", "count": 1}}}, "gpu.type"),
        ({"resources": {"gpu": {"type": "nvidia-t4", "count": -1}}}, "gpu.count"),
        ({"image": "x" * 1025}, "image"),
        ({"env": {"1BAD": "x"}}, "invalid environment variable name"),
        ({"env": {"OK": "x" * 8193}}, "env.OK"),
        ({"params": {"": 1}}, "invalid param name"),
        ({"params": {"x": 1.5}}, "params.x"),
        ({"command": ["x"] * 129}, "command"),
        ({"model": {"name": "Not_A_Label"}}, "model.name"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_invalid_specs_name_the_problem(spec: dict[str, Any], needle: str) -> None:
    assert needle in _error(Model, minimal("Model", **spec))


def test_server_requires_a_model() -> None:
    obj = minimal("Server")
    del obj["spec"]["model"]
    assert "spec.model" in _error(Server, obj)


def test_notebook_suspend_distinguishes_unset_from_false() -> None:
    assert Notebook.from_api(minimal("Notebook")).spec.suspend is None
    assert Notebook.from_api(minimal("Notebook", suspend=False)).spec.suspend is False


def test_resources_defaults_match_upstream_crd_defaults() -> None:
    res = Model.from_api(minimal("Model", resources={})).spec.resources
    assert res is not None
    assert (res.cpu, res.disk, res.memory, res.gpu) == (2, 10, 10, None)


def test_params_keep_ints_and_strings_apart() -> None:
    spec = Model.from_api(minimal("Model", params={"a": 1, "b": "1"})).spec
    assert spec.params == {"a": 1, "b": "1"}
    assert isinstance(spec.params["a"], int)
    assert isinstance(spec.params["b"], str)
