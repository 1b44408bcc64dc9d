"""A toy operator on the runtime, for the runtime's integration tests (and runnable as its own process).

Widget (example.substratus.dev/v1, namespaced): spec {data: string, size: integer}. Its controller keeps a
ConfigMap `<name>-child` (controller-owned) holding the spec, and reports
status {observedGeneration, reconciledBy: <manager identity>} with one status apply, only when it changed.
`WRITES` counts the writes the reconciler made per (namespace, "child"|"status"), so tests can check
no-op reconciles in their own namespace.

    python -m tests.integration.runtime.toy --kubeconfig K --identity A [--leader-elect] [--probe-address :P]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter
from typing import Any

from substratus_controller.runtime import predicates, resources
from substratus_controller.runtime.applier import Applier
from substratus_controller.runtime.cache import CachedResource
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.controller import Controller, Request, Result
from substratus_controller.runtime.logs import configure
from substratus_controller.runtime.manager import Manager, ManagerError, ManagerOptions
from substratus_controller.runtime.resource import Resource

GROUP = "example.substratus.dev"
WIDGETS = Resource(GROUP, "v1", "widgets", "Widget")
MANAGER = "toy-controller"
WRITES: Counter[tuple[str | None, str]] = Counter()

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {"kind": "Widget", "listKind": "WidgetList", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"data": {"type": "string"}, "size": {"type": "integer"}},
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "observedGeneration": {"type": "integer"},
                                    "reconciledBy": {"type": "string"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, namespace: str, data: str = "hello", size: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"data": data, "size": size},
    }


class WidgetReconciler:
    """observe -> plan -> apply -> report, reading only from the cache."""

    def __init__(self, client: Client, widgets: CachedResource, children: CachedResource, identity: str) -> None:
        self.widgets, self.children, self.identity = widgets, children, identity
        self.applier = Applier(client, field_manager=MANAGER, digest_annotation=f"{GROUP}/applied")

    async def __call__(self, req: Request) -> Result:
        w = self.widgets.get(req.namespace, req.name)  # observe
        if w is None:
            return Result()  # deleted: the garbage collector removes the child
        meta = w["metadata"]
        child = {  # plan
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{req.name}-child",
                "namespace": req.namespace,
                "labels": {"widget": req.name},
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/v1",
                        "kind": "Widget",
                        "name": req.name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "data": {"data": str(w["spec"].get("data", "")), "size": str(w["spec"].get("size", 0))},
        }
        status = {"observedGeneration": meta["generation"], "reconciledBy": self.identity}
        if await self.applier.apply(resources.CONFIGMAPS, child, cache=self.children):  # apply
            WRITES[req.namespace, "child"] += 1
        if await self.applier.apply_status(WIDGETS, w, status, cache=self.widgets):  # report
            WRITES[req.namespace, "status"] += 1
        return Result()


def build(client: Client, options: ManagerOptions, *, workers: int = 2) -> Manager:
    manager = Manager(client, options)
    widgets = manager.cache.informer(WIDGETS)
    children = manager.cache.informer(resources.CONFIGMAPS)
    reconciler = WidgetReconciler(client, widgets, children, manager.identity)
    controller = Controller("widget", reconciler, workers=workers, metrics=manager.metrics)
    controller.for_kind(widgets, predicate=predicates.spec_or_metadata_changed)
    controller.owns(children, kind="Widget", group=GROUP)
    manager.add_controller(controller)
    return manager


async def _main(args: argparse.Namespace) -> int:
    configure(fmt="json", level="info")
    client = await Client.connect(args.kubeconfig)
    options = ManagerOptions(
        metrics_address=args.metrics_address,
        probe_address=args.probe_address,
        leader_election=args.leader_elect,
        leader_election_namespace=args.lease_namespace,
        leader_election_id="toy-lock",
        identity=args.identity,
    )
    manager = build(client, options)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, manager.stop)
    try:
        await manager.run()
    except ManagerError as exc:
        print(f"toy: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--leader-elect", action="store_true")
    parser.add_argument("--lease-namespace", default="default")
    parser.add_argument("--metrics-address", default="0")
    parser.add_argument("--probe-address", default="0")
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
