"""Fully populated objects of each kind: together they set every field of the seed API reference.

`build` holds exactly one of git/upload and git holds tag or branch, so each kind comes in three variants
(git+tag, git+branch, upload); `full_objects()` returns them all and a test checks that their union covers
every seed field.
"""

from __future__ import annotations

import copy
from typing import Any

MD5 = "0123456789abcdef0123456789ABCDEF"
TIME = "2026-01-02T03:04:05Z"


def _conditions(main: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": TIME,
            "reason": "JobComplete" if main == "Complete" else "DeploymentReady",
            "message": "all good",
        },
        {
            "type": main,
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": TIME,
            "reason": "JobComplete" if main == "Complete" else "DeploymentReady",
            "message": "done",
        },
    ]


def _status(kind: str) -> dict[str, Any]:
    main = "Complete" if kind in ("Dataset", "Model") else "Serving"
    status: dict[str, Any] = {
        "ready": True,
        "observedGeneration": 1,
        "conditions": _conditions(main),
        "buildUpload": {
            "signedURL": "https://storage.example.com/bucket/upload?sig=abc",
            "requestID": "req-1",
            "expiration": TIME,
            "storedMD5Checksum": MD5.lower(),
        },
    }
    if kind != "Server":
        status["artifacts"] = {"url": "gs://bucket/93ea94b18012ca14d84e1468d65e8709"}
    return status


def _spec(kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "command": ["python", "main.py", "--flag=1"],
        "env": {"HF_HOME": "/content/cache", "TOKEN": "${{ secrets.hf.token }}"},
        "image": "registry.example.com/substratus/thing:v1",
        "build": {"git": {"url": "https://github.com/example/repo", "path": "sub/dir", "tag": "v1.2.3"}},
        "resources": {"cpu": 4, "disk": 50, "memory": 16, "gpu": {"type": "nvidia-l4", "count": 1}},
        "params": {"epochs": 3, "name": "facebook/opt-125m"},
    }
    if kind == "Notebook":
        spec["suspend"] = True
    if kind in ("Model", "Notebook", "Server"):
        spec["model"] = {"name": "base-model"}
    if kind in ("Model", "Notebook"):
        spec["dataset"] = {"name": "squad"}
    return spec


def full_object(kind: str, name: str, variant: str = "git-tag") -> dict[str, Any]:
    spec = _spec(kind)
    if variant == "git-branch":
        spec["build"] = {"git": {"url": "https://github.com/example/repo", "path": "x", "branch": "main"}}
    elif variant == "upload":
        spec["build"] = {"upload": {"md5Checksum": MD5, "requestID": "req-1"}}
    return {
        "apiVersion": "substratus.ai/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
        "status": _status(kind),
    }


VARIANTS = ("git-tag", "git-branch", "upload")
KINDS = ("Dataset", "Model", "Notebook", "Server")


def full_objects() -> list[dict[str, Any]]:
    return [full_object(k, f"{k.lower()}-{v}", v) for k in KINDS for v in VARIANTS]


def minimal(kind: str, name: str = "x", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"image": "img"}
    if kind == "Server":
        base["model"] = {"name": "m"}
    base.update(spec)
    return copy.deepcopy({"apiVersion": "substratus.ai/v1", "kind": kind, "metadata": {"name": name}, "spec": base})
