"""The substratus.ai/v1 API resources: where Datasets, Models, Notebooks and Servers live.

The one home of these descriptors for the controller and the client side (plugins, tests) alike, so that
the plugins never import the controller engine. Built-in resources are in runtime/resources.py.
"""

from __future__ import annotations

from substratus_controller.constants import GROUP, Kind
from substratus_controller.runtime.resource import Resource

DATASETS = Resource(GROUP, "v1", Kind.DATASET.plural, Kind.DATASET.value)
MODELS = Resource(GROUP, "v1", Kind.MODEL.plural, Kind.MODEL.value)
NOTEBOOKS = Resource(GROUP, "v1", Kind.NOTEBOOK.plural, Kind.NOTEBOOK.value)
SERVERS = Resource(GROUP, "v1", Kind.SERVER.plural, Kind.SERVER.value)
RESOURCE_OF: dict[Kind, Resource] = {
    Kind.DATASET: DATASETS,
    Kind.MODEL: MODELS,
    Kind.NOTEBOOK: NOTEBOOKS,
    Kind.SERVER: SERVERS,
}
