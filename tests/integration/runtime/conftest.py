"""Fixtures for the runtime's integration tests."""

from __future__ import annotations

import pytest

from substratus_controller.testing import ControlPlane
from tests.conftest import install_crds
from tests.integration.runtime import toy


@pytest.fixture(scope="session")
def widgets_crd(control_plane: ControlPlane) -> ControlPlane:
    """The session control plane with the toy Widget CRD installed."""
    install_crds(control_plane, [toy.CRD])
    return control_plane
