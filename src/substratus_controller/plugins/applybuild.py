"""`kubectl applybuild`: build a Dataset, Model, Notebook or Server from a local directory.

Flow: read and check the manifest (one object of any of the four kinds) -> resolve the namespace -> pack the
directory (Dockerfile required, .dockerignore honoured, deterministic tarball, tarball.py) -> set
`spec.build.upload = {md5Checksum, requestID: <new uuid4>}` (dropping `spec.image` and any git source) ->
server-side apply as field manager `kubectl` -> upload handshake and wait for `Built=True` (handshake.py),
printing the build pod's phase changes -> with `--wait`, wait for `Ready=True` too.

Exit codes: 0 built (and Ready with --wait), 1 any failure (including a failed build or a timeout), 2 usage,
130 interrupted. The default timeout is 20m and covers everything after the apply.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from substratus_controller.jsontypes import JSON

from . import manifest
from .commandline import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    Output,
    PluginError,
    add_connection_flags,
    duration_arg,
    format_duration,
    new_parser,
    normalise_verbosity,
    report,
)
from .handshake import Target, Waiter, apply, build_pod_reporter
from .kubeconfig import Cluster, cluster_from_flags, resolve_namespace
from .tarball import Tarball, check_context, collect, pack, total_size

DEFAULT_TIMEOUT = 20 * 60.0
PLACEHOLDER_MD5 = "0" * 32

EXAMPLES = """\
  # Build a Model from the current directory (it holds a Dockerfile) and wait for the image
  kubectl applybuild -f model.yaml .

  # The same in another namespace, then wait until the Model is Ready (its training Job completed)
  kubectl applybuild -n ml -f model.yaml --wait --timeout 1h ./my-model

  # Take over fields another field manager owns
  kubectl applybuild -f server.yaml --force-conflicts ./server
"""


def parser() -> argparse.ArgumentParser:
    p = new_parser(
        "kubectl applybuild",
        "Pack DIR (a Docker build context: a Dockerfile, .dockerignore honoured) into a tarball, apply the "
        "object in MANIFEST (a Dataset, Model, Notebook or Server) so that the cluster builds its image from "
        "that tarball, upload it, and wait until the image is built.",
        EXAMPLES,
    )
    a = p.add_argument
    a("dir", metavar="DIR", help="the build context: a directory holding a Dockerfile")
    a("-f", "--filename", required=True, metavar="MANIFEST", help="the manifest of the object (- for stdin)")
    a("--force-conflicts", action="store_true", help="take ownership of fields other field managers own")
    a("--wait", action="store_true", help="after the build, wait until the object is Ready")
    a("--timeout", type=duration_arg, default=DEFAULT_TIMEOUT,
      help="how long to wait for the build (and Ready), e.g. 90s, 5m, 1h; 0 waits forever (default 20m)")  # fmt: skip
    add_connection_flags(p)
    return p


async def run(args: argparse.Namespace, out: Output) -> int:
    cluster = cluster_from_flags(args.kubeconfig, args.context)
    obj = manifest.load(args.filename)
    kind = manifest.kind_of(obj, args.filename)
    namespace = resolve_namespace(args.namespace, obj["metadata"].get("namespace"), cluster.context_namespace)
    target = Target(kind, namespace, obj["metadata"]["name"])
    directory = Path(args.dir)
    check_context(directory)
    base = manifest.prepare(obj, namespace)
    manifest.validate(manifest.with_upload(base, PLACEHOLDER_MD5, "check"), kind, args.filename)

    with tempfile.TemporaryDirectory(prefix="substratus-kubectl-upload") as tmp:
        entries = collect(directory)
        with out.progress("packing", total_size(entries)) as advance:
            tarball = await asyncio.to_thread(
                pack, directory, Path(tmp) / "archive.tar.gz", entries=entries, progress=advance
            )
        out.detail(f"packed {tarball.files} files from {directory} into {tarball.size} bytes, md5 {tarball.md5_hex}")
        return await build(args, out, cluster=cluster, target=target, base=base, tarball=tarball)


async def build(
    args: argparse.Namespace, out: Output, *, cluster: Cluster, target: Target, base: JSON, tarball: Tarball
) -> int:
    """Apply, upload, wait (see module docstring)."""
    client = await cluster.connect()
    try:

        async def apply_with(request_id: str) -> JSON:
            body = manifest.with_upload(base, tarball.md5_hex, request_id)
            return await apply(client, target, body, force=args.force_conflicts)

        applied = await apply_with(str(uuid.uuid4()))
        out.result(f"{target.ref} serverside-applied")
        waiter = Waiter(client, target, out, tarball=tarball, want_ready=args.wait, reapply=apply_with)
        what = "built and Ready" if args.wait else "built"
        try:
            async with build_pod_reporter(client, target, out), asyncio.timeout(args.timeout or None):
                final = await waiter.run(applied)
        except TimeoutError:
            raise PluginError(
                f"timed out after {format_duration(args.timeout)} waiting for {target.ref} to be {what} "
                f"({waiter.describe()})"
            ) from None
        image = (final.get("spec") or {}).get("image")
        out.result(f"{target.ref} {what}" + (f" (image {image})" if image and not args.wait else ""))
        return EXIT_OK
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    out = Output()
    try:
        args = parser().parse_args(normalise_verbosity(sys.argv[1:] if argv is None else argv))
        out = Output(args.verbose)
        return asyncio.run(run(args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except PluginError as exc:
        return report(out, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
