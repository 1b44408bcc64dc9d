"""params.json and PARAM_* env vars."""

from __future__ import annotations

import json

import pytest

from substratus_controller.api.v1 import Model
from substratus_controller.constants import Kind
from substratus_controller.render.errors import InvalidSpecError
from substratus_controller.render.params import param_env, param_env_name, params_configmap, params_json


def test_params_json_sorted_ints_as_numbers() -> None:
    text = params_json({"z": "x", "a": 456, "m": "1"})
    assert text == '{\n  "a": 456,\n  "m": "1",\n  "z": "x"\n}'
    assert json.loads(text) == {"a": 456, "m": "1", "z": "x"}


def test_params_json_upstream_example() -> None:
    assert params_json({"x": 456, "s": "x"}) == '{\n  "s": "x",\n  "x": 456\n}'


@pytest.mark.parametrize("params", [None, {}])
def test_params_json_empty(params: dict[str, int | str] | None) -> None:
    assert params_json(params) == "{}"


def test_params_json_keeps_utf8() -> None:
    assert params_json({"prompt": "héllo"}) == '{\n  "prompt": "héllo"\n}'


def test_params_json_from_parsed_model_keeps_types() -> None:
    model = Model.model_validate(
        {"metadata": {"name": "m", "namespace": "ns", "uid": "u"}, "spec": {"params": {"n": 3, "s": "3"}}}
    )
    assert json.loads(params_json(model.spec.params)) == {"n": 3, "s": "3"}


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("epochs", "PARAM_EPOCHS"),
        ("learning-rate", "PARAM_LEARNING_RATE"),
        ("hf.repo/id", "PARAM_HF_REPO_ID"),
        ("batchSize", "PARAM_BATCHSIZE"),
        ("x1", "PARAM_X1"),
        ("über", "PARAM__BER"),
        ("a b", "PARAM_A_B"),
    ],
)
def test_param_env_name(key: str, name: str) -> None:
    assert param_env_name(key) == name


def test_param_env_values_and_order() -> None:
    assert param_env({"b": 2, "a": "x", "c": ""}) == [
        {"name": "PARAM_A", "value": "x"},
        {"name": "PARAM_B", "value": "2"},
        {"name": "PARAM_C"},
    ]


def test_param_env_sorted_by_variable_name_not_key() -> None:
    # "a_b" < "a-b"? keys sort '-' (0x2d) before '_' (0x5f); names are compared after mapping
    env = param_env({"ab": 1, "a.c": 2})
    assert [v["name"] for v in env] == sorted(v["name"] for v in env)


def test_param_env_collision() -> None:
    with pytest.raises(InvalidSpecError) as err:
        param_env({"learning-rate": 1, "learning_rate": 2})
    assert err.value.field == "spec.params"
    assert "PARAM_LEARNING_RATE" in str(err.value)
    assert "'learning-rate'" in str(err.value)
    assert "'learning_rate'" in str(err.value)
    assert str(err.value).startswith("spec.params: ")


def test_case_collision() -> None:
    with pytest.raises(InvalidSpecError, match="PARAM_LR"):
        param_env({"lr": 1, "LR": 2})


def test_params_configmap() -> None:
    model = Model.model_validate(
        {"metadata": {"name": "opt", "namespace": "ns", "uid": "u-1"}, "spec": {"params": {"n": 3}}}
    )
    cm = params_configmap(model, Kind.MODEL)
    assert cm["metadata"]["name"] == "opt-model-params"
    assert cm["metadata"]["namespace"] == "ns"
    assert "role" not in cm["metadata"]["labels"]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert cm["data"] == {"params.json": '{\n  "n": 3\n}'}


def test_params_configmap_kind_must_match() -> None:
    model = Model.model_validate({"metadata": {"name": "opt", "namespace": "ns", "uid": "u-1"}})
    with pytest.raises(ValueError, match="expected a Dataset"):
        params_configmap(model, Kind.DATASET)
