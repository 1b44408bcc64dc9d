"""Child names: upstream's `<name>-<suffix>` when it fits, a deterministic hashed short form otherwise."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from substratus_controller.constants import Kind
from substratus_controller.render import names

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_upstream_names() -> None:
    assert names.build_job_name(Kind.DATASET, "squad") == "squad-dataset-bld"
    assert names.build_job_name(Kind.NOTEBOOK, "my-nb") == "my-nb-notebook-bld"
    assert names.loader_job_name("squad") == "squad-data-loader"
    assert names.modeller_job_name("opt") == "opt-modeller"
    assert names.notebook_pod_name("nb") == "nb-notebook"
    assert names.notebook_token_secret_name("nb", "a1b2c3d4e5") == "nb-notebook-token-a1b2c3d4e5"
    assert names.notebook_pvc_name("nb") == "nb-notebook"
    assert names.server_name("opt") == "opt-server"
    assert names.params_configmap_name(Kind.MODEL, "opt") == "opt-model-params"
    assert names.params_configmap_name(Kind.SERVER, "opt") == "opt-server-params"


def test_fitting_name_is_verbatim() -> None:
    parent = "a" * 50  # the documented room: 50 + "-" + 12 = 63
    assert names.child_name(parent, "notebook-bld") == f"{parent}-notebook-bld"
    assert len(names.child_name(parent, "notebook-bld")) == 63


def test_long_name_is_shortened_with_hash() -> None:
    parent = "a" * 60
    name = names.child_name(parent, "data-loader")
    assert len(name) <= 63
    assert DNS_LABEL.match(name)
    assert name.endswith("-data-loader")
    assert name.startswith("a" * 20)
    head, digest, _suffix = re.fullmatch(r"(a+)-([0-9a-f]{8})-(data-loader)", name).groups()  # type: ignore[union-attr]
    assert len(head) == 63 - len("-12345678-data-loader")
    assert digest == hashlib.sha256(f"{parent}-data-loader".encode()).hexdigest()[:8]


def test_shortening_is_deterministic_and_distinguishes_parents() -> None:
    a, b = "x" * 55 + "-one", "x" * 55 + "-two"
    assert names.child_name(a, "server") == names.child_name(a, "server")
    assert names.child_name(a, "server") != names.child_name(b, "server")
    # same cut prefix, different parents: the hash keeps them apart
    assert names.child_name(a, "server")[:40] == names.child_name(b, "server")[:40]


def test_dotted_parent_becomes_a_dns_label() -> None:
    dotted, dashed = names.child_name("a.b", "server"), names.child_name("a-b", "server")
    assert dashed == "a-b-server"
    assert DNS_LABEL.match(dotted)
    assert dotted != dashed


def test_cut_never_leaves_a_trailing_dash() -> None:
    parent = "a" * 40 + "-" * 10 + "b" * 13
    name = names.child_name(parent, "data-loader")
    assert "--" not in name
    assert DNS_LABEL.match(name)


def test_bad_suffix_rejected() -> None:
    with pytest.raises(ValueError, match="suffix"):
        names.child_name("a", "Bad_Suffix")


@given(
    parent=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?", fullmatch=True),
    suffix=st.sampled_from(["dataset-bld", "notebook-bld", "data-loader", "modeller", "notebook-token", "server"]),
)
def test_always_a_dns_label(parent: str, suffix: str) -> None:
    name = names.child_name(parent, suffix)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name
    assert name.endswith(f"-{suffix}")
    assert name == names.child_name(parent, suffix)


@pytest.mark.parametrize(
    ("notebook", "secret", "ours"),
    [
        ("nb", "nb-notebook-token-a1b2c3d4e5", True),
        ("nb", "nb-notebook-token", False),  # the name before nonces: anyone could have created it
        ("nb", "nb-notebook-token-A1B2C3D4E5", False),
        ("nb", "nb-notebook-token-a1b2c3d4e", False),  # 9 characters
        ("nb", "other-notebook-token-a1b2c3d4e5", False),
        ("nb-x", "nb-notebook-token-a1b2c3d4e5", False),
        ("n" * 60, names.notebook_token_secret_name("n" * 60, "0123456789"), True),  # shortened with a hash
    ],
)
def test_notebook_token_secret_names(notebook: str, secret: str, ours: bool) -> None:
    assert names.is_notebook_token_secret_name(notebook, secret) is ours


def test_notebook_token_nonce_must_be_ten_of_a_z_0_9() -> None:
    for bad in ("", "a1b2c3d4e", "a1b2c3d4e5f", "A1B2C3D4E5", "a1b2c3d4-5"):
        with pytest.raises(ValueError, match="nonce"):
            names.notebook_token_secret_name("nb", bad)
    assert DNS_LABEL.match(names.notebook_token_secret_name("n" * 63, "0123456789"))
