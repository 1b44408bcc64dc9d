"""Names of the children, derived from the parent's name (docs/upstream-behaviour.md §14.2).

Invariants:
- Every name is a valid DNS-1123 label (<= 63 characters), so it fits Pods, Services, Jobs and label values.
- `<parent>-<suffix>` is used verbatim whenever it fits; this is upstream's naming, which users and tools
  (`kubectl logs job/squad-data-loader`) rely on.
- A name that would be too long is shortened deterministically: the parent is cut and followed by 8 hex
  characters of sha256 of the full name, then the suffix (`<cut parent>-<hash8>-<suffix>`). Two different
  long parents therefore get different names, and the suffix stays readable at the end.
- A parent name that is a DNS subdomain but not a DNS label (it has dots) is treated the same way, with the
  offending characters turned into `-` (the hash keeps `a.b` and `a-b` apart).
"""

from __future__ import annotations

import hashlib
import re

from substratus_controller.constants import MAX_NAME_LENGTH, Kind

HASH_LENGTH = 8
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NOT_LABEL_CHAR = re.compile(r"[^a-z0-9-]")


def child_name(parent: str, suffix: str) -> str:
    """`<parent>-<suffix>`, or `<cut parent>-<sha256[:8]>-<suffix>` when that exceeds 63 characters."""
    if not _DNS_LABEL.match(suffix):
        raise ValueError(f"child name suffix {suffix!r} is not a DNS label")
    full = f"{parent}-{suffix}"
    if len(full) <= MAX_NAME_LENGTH and _DNS_LABEL.match(full):
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:HASH_LENGTH]
    room = MAX_NAME_LENGTH - len(suffix) - HASH_LENGTH - 2
    if room < 1:
        raise ValueError(f"child name suffix {suffix!r} is too long to fit a DNS label with a hash")
    head = _NOT_LABEL_CHAR.sub("-", parent.lower())[:room].strip("-")
    return f"{head}-{digest}-{suffix}" if head else f"{digest}-{suffix}"


def build_job_name(kind: Kind, name: str) -> str:
    """The image build Job: `<name>-<kind>-bld`."""
    return child_name(name, f"{kind.singular}-bld")


def loader_job_name(name: str) -> str:
    """The Dataset loader Job: `<name>-data-loader`."""
    return child_name(name, "data-loader")


def modeller_job_name(name: str) -> str:
    """The Model Job: `<name>-modeller`."""
    return child_name(name, "modeller")


def notebook_pod_name(name: str) -> str:
    """The Notebook Pod: `<name>-notebook`."""
    return child_name(name, "notebook")


TOKEN_NONCE_LENGTH = 10
_TOKEN_NONCE = re.compile(rf"[a-z0-9]{{{TOKEN_NONCE_LENGTH}}}")


def notebook_token_secret_name(name: str, nonce: str) -> str:
    """The Secret holding the token of one Notebook Pod: `<name>-notebook-token-<nonce>`.

    The nonce is drawn when the Pod is about to be created (plan/notebook.py), so nobody can create the
    Secret before the controller does: the name is unknown until it exists (issue 13 §7)."""
    if not _TOKEN_NONCE.fullmatch(nonce):
        raise ValueError(f"token nonce {nonce!r} is not {TOKEN_NONCE_LENGTH} of [a-z0-9]")
    return child_name(name, f"notebook-token-{nonce}")


def is_notebook_token_secret_name(name: str, secret: str) -> bool:
    """Whether `secret` is a name `notebook_token_secret_name(name, <some nonce>)` gives."""
    nonce = secret[-TOKEN_NONCE_LENGTH:]
    return bool(_TOKEN_NONCE.fullmatch(nonce)) and secret == notebook_token_secret_name(name, nonce)


def notebook_pvc_name(name: str) -> str:
    """The Notebook's optional work volume claim: `<name>-notebook` (a PVC may share the Pod's name)."""
    return child_name(name, "notebook")


def server_name(name: str) -> str:
    """The Server's Deployment and Service: `<name>-server`."""
    return child_name(name, "server")


def params_configmap_name(kind: Kind, name: str) -> str:
    """The params ConfigMap: `<name>-<kind>-params`."""
    return child_name(name, f"{kind.singular}-params")
