"""spec.env: literals, `${{ secrets.NAME.KEY }}` references, and merging with params and controller vars."""

from __future__ import annotations

import pytest

from substratus_controller.render.env import container_env, user_env
from substratus_controller.render.errors import InvalidSpecError


def ref(name: str, key: str) -> dict[str, object]:
    return {"secretKeyRef": {"name": name, "key": key}}


@pytest.mark.parametrize(
    ("value", "secret", "key"),
    [
        ("${{ secrets.hf.token }}", "hf", "token"),
        ("${{secrets.hf.token}}", "hf", "token"),
        ("${{   secrets.hf.token   }}", "hf", "token"),
        ("${{\tsecrets.hf.token }}", "hf", "token"),
        ("  ${{ secrets.hf.token }}\n", "hf", "token"),
        ("${{ secrets.a.b.c }}", "a.b", "c"),  # greedy NAME, like upstream
        ("${{ secrets.my-secret.v1.key_1 }}", "my-secret.v1", "key_1"),
    ],
)
def test_secret_refs(value: str, secret: str, key: str) -> None:
    assert user_env({"X": value}) == [{"name": "X", "valueFrom": ref(secret, key)}]


def test_literals_sorted_and_empty() -> None:
    assert user_env({"B": "2", "A": "1", "C": "", "D": "$(A) secrets.x.y"}) == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
        {"name": "C"},
        {"name": "D", "value": "$(A) secrets.x.y"},
    ]


@pytest.mark.parametrize("env", [None, {}])
def test_no_env(env: dict[str, str] | None) -> None:
    assert user_env(env) == []


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("prefix ${{ secrets.a.b }}", "exactly one secret reference"),
        ("${{ secrets.a.b }} suffix", "exactly one secret reference"),
        ("${{ secrets.a.b }}${{ secrets.c.d }}", "exactly one secret reference"),
        ("${{ secrets.onlyname }}", "exactly one secret reference"),
        ("${{ secret.a.b }}", "exactly one secret reference"),
        ("${{ SECRETS.a.b }}", "exactly one secret reference"),
        ("${{ secrets.a.b", "exactly one secret reference"),
        ("${{ secrets.Upper.key }}", "not a valid Secret name"),
        ("${{ secrets.a b.key }}", "not a valid Secret name"),
        ("${{ secrets.-a.key }}", "not a valid Secret name"),
        ("${{ secrets.a.k/y }}", "must match"),
        ("${{ secrets..key }}", "exactly one secret reference"),
        ("${{ secrets.a\nb.key }}", "not a valid Secret name"),  # re.match's `$` would accept a newline
    ],
)
def test_malformed_reference(value: str, why: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        user_env({"MY_VAR": value})
    assert err.value.field == "spec.env.MY_VAR"
    assert str(err.value).startswith("spec.env.MY_VAR: ")
    assert why in str(err.value)


@pytest.mark.parametrize("name", [".", "..", "..x"])
def test_names_the_api_server_rejects_are_invalid(name: str) -> None:
    """Security model (README): the schema's pattern admits them, the API server does not
    (e2e/test_operator.py shows it)."""
    with pytest.raises(InvalidSpecError) as err:
        user_env({name: "v"})
    assert err.value.field == f"spec.env.{name}"


def test_container_env_merges_sorted() -> None:
    token = {"name": "NOTEBOOK_TOKEN", "valueFrom": ref("nb-notebook-token", "token")}
    env = container_env(env={"Z": "1", "A": "${{ secrets.s.k }}"}, params={"epochs": 3}, extra=[token])
    assert [v["name"] for v in env] == ["A", "NOTEBOOK_TOKEN", "PARAM_EPOCHS", "Z"]
    assert env[1] == token


def test_container_env_empty() -> None:
    assert container_env(env=None, params=None) == []


def test_user_env_clashes_with_param() -> None:
    with pytest.raises(InvalidSpecError) as err:
        container_env(env={"PARAM_EPOCHS": "1"}, params={"epochs": 3})
    assert err.value.field == "spec.env.PARAM_EPOCHS"
    assert "spec.env" in str(err.value)
    assert "spec.params.epochs" in str(err.value)


def test_user_env_clashes_with_controller() -> None:
    with pytest.raises(InvalidSpecError) as err:
        container_env(env={"NOTEBOOK_TOKEN": "mine"}, params=None, extra=[{"name": "NOTEBOOK_TOKEN", "value": "x"}])
    assert err.value.field == "spec.env.NOTEBOOK_TOKEN"
    assert "the controller" in str(err.value)
