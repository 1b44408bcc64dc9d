"""Manifest reading and validation: errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from substratus_controller.constants import Kind
from substratus_controller.plugins import manifest
from substratus_controller.plugins.commandline import PluginError

MD5 = "0123456789abcdef0123456789abcdef"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return str(path)


def test_one_object(tmp_path: Path) -> None:
    path = write(tmp_path, "apiVersion: substratus.ai/v1\nkind: Model\nmetadata: {name: m}\nspec: {}\n")
    obj = manifest.load(path)
    assert manifest.kind_of(obj, path) is Kind.MODEL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must hold exactly one object, found 0"),
        ("a: 1\n---\nb: 2\n", "must hold exactly one object, found 2"),
        ("- 1\n", "must hold an object"),
        ("a: [1\n", r"invalid YAML: .* \(line 2, column 1\)"),
    ],
)
def test_load_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        manifest.load(write(tmp_path, text))


def test_a_missing_file_uses_kubectls_wording() -> None:
    with pytest.raises(PluginError, match=r'the path "nope\.yaml" does not exist'):
        manifest.load("nope.yaml")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"kind": "Model", "metadata": {"name": "m"}}, r"apiVersion: required \(substratus.ai/v1\)"),
        ({"apiVersion": "v1", "kind": "Model", "metadata": {"name": "m"}}, "apiVersion: 'v1' is not substratus.ai/v1"),
        ({"apiVersion": "substratus.ai/v1", "metadata": {"name": "m"}}, "kind: required"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Job", "metadata": {"name": "m"}}, "kind: 'Job' is not one of"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Model"}, "metadata: required"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": {}}, "metadata.name: required"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": {"generateName": "m-"}},
         r"metadata.name: required \(generateName is not supported\)"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": {"name": "My_Model"}},
         "metadata.name: 'My_Model' must be a DNS-1123 label"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Server", "metadata": {"name": "1srv"}},
         "metadata.name: .1srv. must be a DNS-1035 label"),
        ({"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": {"name": "m", "namespace": "A B"}},
         "metadata.namespace: 'A B' is not a valid namespace name"),
    ],
)  # fmt: skip
def test_kind_of_names_the_field(obj: dict[str, object], message: str) -> None:
    with pytest.raises(PluginError, match=f"^m.yaml: {message}"):
        manifest.kind_of(obj, "m.yaml")


def test_only_allowed_kinds() -> None:
    obj = {"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": {"name": "m"}}
    with pytest.raises(PluginError, match="this command needs a Notebook, the manifest holds a Model"):
        manifest.kind_of(obj, "m.yaml", allowed=(Kind.NOTEBOOK,))


def test_validation_names_every_offending_field() -> None:
    body = manifest.with_upload(
        {"apiVersion": "substratus.ai/v1", "kind": "Model", "metadata": {"name": "m"},
         "spec": {"resources": {"cpu": -1}, "imag": "x", "env": {"A": 1}}},
        MD5, "r",
    )  # fmt: skip
    with pytest.raises(PluginError) as info:
        manifest.validate(body, Kind.MODEL, "m.yaml")
    message = str(info.value)
    assert message.startswith("m.yaml: invalid Model: ")
    assert "spec.resources.cpu: Input should be greater than or equal to 0" in message
    assert "spec.imag: Extra inputs are not permitted" in message
    assert "spec.env.A" in message


def test_a_server_needs_its_model() -> None:
    body = manifest.with_upload(
        {"apiVersion": "substratus.ai/v1", "kind": "Server", "metadata": {"name": "s"}}, MD5, "r"
    )
    with pytest.raises(PluginError, match=r"spec.model: Field required"):
        manifest.validate(body, Kind.SERVER, "s.yaml")


def test_prepare_drops_server_fields_and_sets_the_namespace() -> None:
    got = {
        "apiVersion": "substratus.ai/v1", "kind": "Model",
        "metadata": {"name": "m", "namespace": "a", "uid": "u", "resourceVersion": "7", "generation": 3,
                     "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{}], "labels": {"x": "y"}},
        "spec": {"image": "i"}, "status": {"ready": True},
    }  # fmt: skip
    body = manifest.prepare(got, "b")
    assert body == {
        "apiVersion": "substratus.ai/v1",
        "kind": "Model",
        "metadata": {"name": "m", "namespace": "b", "labels": {"x": "y"}},
        "spec": {"image": "i"},
    }
    assert got["status"] == {"ready": True}, "the input is not changed"


def test_with_upload_replaces_image_and_git() -> None:
    body = {"spec": {"image": "old", "build": {"git": {"url": "https://g/r"}}, "params": {"a": 1}}}
    assert manifest.with_upload(body, MD5, "req")["spec"] == {
        "params": {"a": 1},
        "build": {"upload": {"md5Checksum": MD5, "requestID": "req"}},
    }
    assert body["spec"]["image"] == "old"


def test_dates_stay_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "apiVersion: substratus.ai/v1\nkind: Model\nmetadata: {name: m}\nspec: {params: {since: 2024-01-01}}\n",
    )
    assert manifest.load(path)["spec"]["params"]["since"] == "2024-01-01"
