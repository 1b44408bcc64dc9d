"""Fast tier: `kubectl notebook` reads the token only through a Pod and a Secret the Notebook controls.

The client is a dict of objects by (plural, name): the decisions under test are which objects are believed.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from substratus_controller.constants import Kind
from substratus_controller.plugins.commandline import PluginError
from substratus_controller.plugins.handshake import Target
from substratus_controller.plugins.notebook import read_token
from substratus_controller.runtime.errors import NotFound

NB_UID = "uid-nb"
TARGET = Target(Kind.NOTEBOOK, "team", "lab")
SECRET_NAME = "lab-notebook-token-0123456789"


class Objects:
    def __init__(self, *objs: tuple[str, dict[str, Any]]) -> None:
        self.objs = {(plural, o["metadata"]["name"]): o for plural, o in objs}

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        try:
            return self.objs[(res.plural, name)]
        except KeyError:
            raise NotFound(f"{res.plural} {name} not found") from None


def owned(uid: str | None) -> list[dict[str, Any]]:
    return [{"kind": "Notebook", "name": "lab", "uid": uid, "controller": True}] if uid else []


def pod(owner: str | None = NB_UID, secret: str | None = SECRET_NAME) -> tuple[str, dict[str, Any]]:
    annotations = {"substratus.ai/token-secret": secret} if secret else {}
    meta = {"name": "lab-notebook", "uid": "uid-pod", "ownerReferences": owned(owner), "annotations": annotations}
    return "pods", {"metadata": meta}


def secret(owner: str | None = NB_UID, token: str = "t0ken") -> tuple[str, dict[str, Any]]:
    meta = {"name": SECRET_NAME, "ownerReferences": owned(owner)}
    return "secrets", {"metadata": meta, "data": {"token": base64.b64encode(token.encode()).decode()}}


async def test_the_token_of_the_notebooks_pod() -> None:
    assert await read_token(Objects(pod(), secret()), TARGET, NB_UID) == ("t0ken", "uid-pod")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("objs", "message"),
    [
        ((pod(owner="uid-someone"), secret()), "pod/lab-notebook is not controlled by notebook.substratus.ai/lab"),
        ((pod(owner=None), secret()), "is not controlled by"),
        ((pod(), secret(owner="uid-someone")), f'the token Secret "{SECRET_NAME}" is not controlled by'),
        ((pod(), secret(owner=None)), "is not controlled by"),
        ((pod(secret=None), secret()), "pod/lab-notebook names no token Secret (no substratus.ai/token-secret"),
        ((secret(),), "pod/lab-notebook of notebook.substratus.ai/lab was not found"),
        ((pod(),), f'the token Secret "{SECRET_NAME}" of notebook.substratus.ai/lab was not found'),
    ],
)
async def test_a_token_from_anything_the_notebook_does_not_control_is_refused(
    objs: tuple[tuple[str, dict[str, Any]], ...], message: str
) -> None:
    with pytest.raises(PluginError, match=re.escape(message)) as err:
        await read_token(Objects(*objs), TARGET, NB_UID)  # type: ignore[arg-type]
    assert "t0ken" not in str(err.value)
