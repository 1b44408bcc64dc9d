"""The `substratus-controller` command: `crds` prints the CustomResourceDefinitions.

(`run`, the controller itself, arrives with the operator.) Exit codes: 0 success, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from substratus_controller.api.v1.crd import build_crds, strip_cel
from substratus_controller.yamlio import dump_all


def _crds(args: argparse.Namespace) -> int:
    crds = build_crds()
    if args.no_cel:
        crds = [strip_cel(c) for c in crds]
    sys.stdout.write(dump_all(crds))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="substratus-controller", description="Kubernetes operator for substratus.ai/v1 resources."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crds = sub.add_parser(
        "crds",
        help="print the CustomResourceDefinitions as YAML (substratus-controller crds | kubectl apply -f -)",
        description="Print the four CustomResourceDefinitions as a multi-document YAML stream.",
    )
    crds.add_argument(
        "--no-cel",
        action="store_true",
        help="omit x-kubernetes-validations (CEL) for API servers older than 1.25, whose kubectl "
        "validation rejects the field; the controller enforces the same rules anyway",
    )
    crds.set_defaults(func=_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
