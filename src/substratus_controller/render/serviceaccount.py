"""The per-namespace workload ServiceAccounts (`container-builder`, `data-loader`, `modeller`, `notebook`,
`model-server`).

Invariants: shared by every object of the namespace, so no ownerReference (deleting one Model must not
delete the SA its siblings use) and no per-object labels; the annotation binding it to the namespace's own
cloud principal is added when the driver has one (docs/decisions.md §2.3: its presence is how the controller
knows the binding is done).
"""

from __future__ import annotations

from substratus_controller.cloud.base import CloudDriver
from substratus_controller.constants import LABEL_MANAGED_BY, MANAGED_BY_VALUE
from substratus_controller.jsontypes import JSON

from .bodies import put


def service_account(name: str, namespace: str, cloud: CloudDriver) -> JSON:
    """The ServiceAccount `name` in `namespace`, with the cloud's identity annotations."""
    if not name or not namespace:
        raise ValueError("a ServiceAccount needs a name and a namespace")
    meta: JSON = {"name": name, "namespace": namespace, "labels": {LABEL_MANAGED_BY: MANAGED_BY_VALUE}}
    put(meta, "annotations", cloud.service_account_annotations(namespace))
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
