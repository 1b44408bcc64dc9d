"""`kubectl notebook`: open a Notebook in the browser, optionally built from and synced into a local directory.

Flow (docs/upstream-behaviour.md §7.5, with docs/decisions.md §2.5 and §5):
1. The Notebook comes from NAME (read from the cluster), or `-f FILE`, or `-d DIR` (which means
   `-f DIR/notebook.yaml` unless -f or NAME is given, builds DIR like `kubectl applybuild` unless
   --no-build, and syncs back into DIR unless --no-sync). Only the Notebook kind is accepted.
2. `spec.suspend=false` (and, when building, `spec.build.upload`) is server-side applied as field manager
   `kubectl`, with force by default (--no-force-conflicts to refuse), like upstream.
3. From here on, whatever happens (success, failure, Ctrl-C or SIGTERM) ends with the Notebook suspended
   (a JSON merge patch `{"spec":{"suspend":true}}`), unless --no-suspend.
4. Build handshake (when building), then wait for Ready (--timeout, default 20m), printing build pod phases.
5. The token is read from the Secret the Notebook's Pod names (annotation substratus.ai/token-secret, key `token`),
   and only through a Pod the Notebook controls (by uid). Each Pod has its own token: when the pod is
   replaced, the new token is read and the new URL printed.
6. `kubectl port-forward pod/<name>-notebook <port>:8888` runs as a child process (retried up to 3 times,
   1 s, 2 s, 4 s apart); once it forwards, `http://localhost:<port>/?token=<token>` is printed on stdout
   and opened in the browser (unless --no-open-browser). This is the one place a secret is printed: the
   URL is what the user needs.
7. With sync, `kubectl exec` runs a watcher in the pod and changed files are copied back (sync.py).
   Both children follow the pod (podtracker.py): when it is replaced (deleted, recreated after a spec
   change or a node restart) they are stopped and started again against the new pod once it is Ready,
   because kubectl v1.20's port-forward does not exit when its pod goes away.
8. Ctrl-C or SIGTERM stops the children (port-forward first), suspends, and exits 0. A child that keeps
   failing ends the session with exit code 1 (after suspending).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import signal
import sys
import tempfile
import uuid
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from substratus_controller.constants import ANNOTATION_TOKEN_SECRET, NOTEBOOK_PORT, Kind
from substratus_controller.jsontypes import JSON
from substratus_controller.render.names import notebook_pod_name
from substratus_controller.render.notebook import pod_token_secret
from substratus_controller.runtime.client import Client
from substratus_controller.runtime.errors import ApiError, NotFound
from substratus_controller.runtime.resource import Resource
from substratus_controller.runtime.resources import PODS, SECRETS

from . import manifest
from .commandline import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Output,
    PluginError,
    UsageError,
    add_connection_flags,
    duration_arg,
    format_duration,
    new_parser,
    normalise_verbosity,
    report,
)
from .handshake import ObjectDeleted, Target, Waiter, api_error_message, apply, build_pod_reporter
from .kubeconfig import Cluster, cluster_from_flags, resolve_namespace
from .kubectl import Kubectl, Run, run_child, stoppable, supervise
from .podtracker import PodTracker, follow_pod
from .sync import Syncer
from .tarball import Tarball, check_context, collect, pack, total_size

DEFAULT_TIMEOUT = 20 * 60.0
TOKEN_KEY = "token"  # the key of the token Secret (render/notebook.py)
MANIFEST_IN_DIR = "notebook.yaml"
FORWARD_READY = "Forwarding from"

EXAMPLES = """\
  # Open an existing Notebook (unsuspends it, suspends it again on Ctrl-C)
  kubectl notebook my-notebook

  # Build the image from the current directory (Dockerfile + notebook.yaml), open it, sync changes back
  kubectl notebook -d .

  # From a manifest, leaving the Notebook running on exit, without opening a browser
  kubectl notebook -f notebook.yaml --no-suspend --no-open-browser
"""


class Interrupted(Exception):
    """Ctrl-C/SIGTERM before anything was changed in the cluster."""


def parser() -> argparse.ArgumentParser:
    p = new_parser(
        "kubectl notebook",
        "Start a Notebook (unsuspend it, building its image from a local directory with -d), wait until it is "
        "Ready, forward localhost to it and open Jupyter in the browser. Changed files are synced back into "
        "the directory. Ctrl-C suspends the Notebook again (unless --no-suspend).",
        EXAMPLES,
    )
    a = p.add_argument
    a("name", metavar="NAME", nargs="?", help="an existing Notebook")
    a(
        "-d",
        "--dir",
        help=f"build the image from DIR (a Dockerfile) and sync into DIR; implies -f DIR/{MANIFEST_IN_DIR}",
    )
    a("-f", "--filename", metavar="FILE", help="the Notebook's manifest (- for stdin)")
    a("--sync", action=argparse.BooleanOptionalAction, default=None,
      help="copy files that change under /content in the pod back into DIR (default with -d)")  # fmt: skip
    a("--no-build", action="store_true", help="with -d: run spec.image instead of building DIR")
    a("--no-suspend", action="store_true", help="leave the Notebook running on exit")
    a("--no-open-browser", action="store_true", help="print the URL without opening a browser")
    a("--force-conflicts", action=argparse.BooleanOptionalAction, default=True,
      help="take ownership of fields other field managers own (default: yes, like upstream)")  # fmt: skip
    a("--port", type=_port, default=NOTEBOOK_PORT, help=f"the local port to forward (default {NOTEBOOK_PORT})")
    a("--timeout", type=duration_arg, default=DEFAULT_TIMEOUT,
      help="how long to wait for the build and for Ready, e.g. 90s, 5m, 1h; 0 waits forever (default 20m)")  # fmt: skip
    add_connection_flags(p)
    return p


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}")
    return value


def check_args(args: argparse.Namespace) -> None:
    """Cross-flag rules (usage errors)."""
    if args.name and args.filename:
        raise UsageError("give either NAME or -f FILE, not both; see 'kubectl notebook --help'")
    if not (args.name or args.filename or args.dir):
        raise UsageError("a Notebook is needed: NAME, -f FILE or -d DIR; see 'kubectl notebook --help'")
    if args.sync and not args.dir:
        raise UsageError("--sync needs -d DIR (the directory to sync into); see 'kubectl notebook --help'")
    if args.no_build and not args.dir:
        raise UsageError("--no-build needs -d DIR (only -d builds); see 'kubectl notebook --help'")
    if args.dir and not args.name and not args.filename:
        args.filename = str(Path(args.dir) / MANIFEST_IN_DIR)
    args.sync = bool(args.dir) if args.sync is None else args.sync


def notebook_url(port: int, token: str) -> str:
    return f"http://localhost:{port}/?token={quote(token, safe='')}"


def controlled_by(obj: JSON, uid: str) -> bool:
    """Whether `obj`'s controller ownerReference is the object with this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


async def read_owned_part(client: Client, target: Target, res: Resource, name: str, what: str) -> JSON:
    """`res`/`name` in the target's namespace; a PluginError naming `what` when it cannot be read."""
    try:
        return await client.get(res, name, target.namespace)
    except NotFound:
        raise PluginError(f"{what} of {target.ref} was not found") from None
    except ApiError as exc:
        raise PluginError(f"reading {what}: {api_error_message(exc, target)}") from None


async def read_token(client: Client, target: Target, owner_uid: str, pod: JSON | None = None) -> tuple[str, str]:
    """The token of the Notebook's Pod (read now unless given), and that Pod's uid."""
    pod_name = notebook_pod_name(target.name)
    if pod is None:
        pod = await read_owned_part(client, target, PODS, pod_name, f"pod/{pod_name}")
    if not controlled_by(pod, owner_uid):
        raise PluginError(f"pod/{pod_name} is not controlled by {target.ref}; its token is not read")
    name = pod_token_secret(pod)
    if name is None:
        raise PluginError(f"pod/{pod_name} names no token Secret (no {ANNOTATION_TOKEN_SECRET} annotation)")
    return await read_secret_token(client, target, owner_uid, name), str(pod["metadata"]["uid"])


async def read_secret_token(client: Client, target: Target, owner_uid: str, name: str) -> str:
    secret = await read_owned_part(client, target, SECRETS, name, f'the token Secret "{name}"')
    if not controlled_by(secret, owner_uid):
        raise PluginError(f'the token Secret "{name}" is not controlled by {target.ref}; it is not used')
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    if not raw:
        raise PluginError(f'the token Secret "{name}" has no "{TOKEN_KEY}" key')
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise PluginError(f'the token Secret "{name}" holds an invalid "{TOKEN_KEY}"') from None


async def suspend(client: Client, target: Target, out: Output) -> bool:
    try:
        await client.patch(
            target.resource, target.name, {"spec": {"suspend": True}}, target.namespace, field_manager="kubectl"
        )
    except ApiError as exc:
        out.error(f"could not suspend {target.ref}: {api_error_message(exc, target)}")
        return False
    out.info(f"{target.ref} suspended")
    return True


class Session:
    """Port-forward (and sync) until stopped, following the pod; prints and opens the URL once forwarding."""

    def __init__(self, args: argparse.Namespace, out: Output, kubectl: Kubectl, target: Target, client: Client, *,
                 owner_uid: str, token: tuple[str, str]) -> None:  # fmt: skip
        self.args, self.out, self.kubectl, self.target, self.client = args, out, kubectl, target, client
        self.owner_uid = owner_uid
        self.pod = notebook_pod_name(target.name)
        self.url = notebook_url(args.port, token[0])
        self.token_pod_uid = token[1]  # the pod whose token `url` holds
        self.url_changed = False  # a replacement pod's new URL is still to be printed
        self.announced = False  # the URL was printed (once per session)
        self.forwarding = False  # the current port-forward child printed its first "Forwarding from"
        self.tracker = PodTracker(client, target.namespace, self.pod, report=out.info)

    def _forward_line(self, line: str) -> None:
        self.out.detail(f"port-forward: {line}", level=2)
        if FORWARD_READY not in line or self.forwarding:
            return  # kubectl prints one line per address (127.0.0.1 and ::1)
        self.forwarding = True
        if self.announced:
            self.out.info(f"Forwarding localhost:{self.args.port} -> pod/{self.pod}:{NOTEBOOK_PORT} again")
            if self.url_changed:
                self.url_changed = False
                self.out.info("the new pod has its own token:")
                self.out.result(self.url)
        else:
            self.announced = True
            self.out.info(
                f"Forwarding localhost:{self.args.port} -> pod/{self.pod}:{NOTEBOOK_PORT}; press Ctrl-C "
                + ("to stop" if self.args.no_suspend else "to stop and suspend the Notebook")
            )
            self.out.result(self.url)
            if not self.args.no_open_browser:
                asyncio.get_running_loop().run_in_executor(None, self._open_browser)

    def _open_browser(self) -> None:
        try:
            if not webbrowser.open(self.url):
                self.out.detail("no browser could be opened; use the URL above")
        except webbrowser.Error as exc:
            self.out.detail(f"no browser could be opened ({exc}); use the URL above")

    async def _forward_once(self, stop: asyncio.Event) -> Run | None:
        """One port-forward child, until it exits (a Run) or `stop` (None)."""
        self.forwarding = False
        argv = self.kubectl.port_forward_argv(self.pod, self.args.port, NOTEBOOK_PORT)
        return await run_child(self.kubectl, argv, stop, on_stdout=self._forward_line,
                               on_stderr=lambda line: self.out.detail(f"port-forward: {line}"),
                               ready_marker=FORWARD_READY)  # fmt: skip

    async def _refresh_token(self) -> None:
        """Read the token of the current Ready pod when it is not the one the URL was made for."""
        pod = self.tracker.ready_pod
        if pod is None or self.tracker.ready_uid == self.token_pod_uid:
            return
        try:
            token, uid = await read_token(self.client, self.target, self.owner_uid, pod)
        except PluginError as exc:
            self.out.info(f"{exc}; the URL printed before will not work with the new pod")
            return
        url = notebook_url(self.args.port, token)
        self.url_changed, self.url, self.token_pod_uid = url != self.url, url, uid

    def _replaced(self, what: str) -> None:
        self.out.info(f"pod/{self.pod} was replaced; {what} restarts once the new pod is Ready")

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (returns) or a child that keeps failing against a live pod (PluginError)."""

        async def forward(child_stop: asyncio.Event) -> None:
            await self._refresh_token()
            await supervise(f"port-forward to pod/{self.pod}", lambda: self._forward_once(child_stop), child_stop,
                            report=self.out.info)  # fmt: skip

        forwarding = follow_pod(self.tracker, stop, forward, on_replaced=lambda: self._replaced("port-forward"))
        tasks = [asyncio.create_task(self.tracker.run(stop)), asyncio.create_task(forwarding)]
        if self.args.sync:
            syncer = Syncer(
                self.kubectl, self.pod, Path(self.args.dir), self.out, since=lambda: self.tracker.started_at
            )
            tasks.append(asyncio.create_task(follow_pod(self.tracker, stop, syncer.run,
                                                        on_replaced=lambda: self._replaced("sync"))))  # fmt: skip
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            stop.set()  # one child's end ends the session: stop the others before the caller suspends
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, PluginError):
                    await task


async def run(args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    cluster = cluster_from_flags(args.kubeconfig, args.context)
    obj: JSON | None = None
    if args.filename:
        obj = manifest.load(args.filename)
        manifest.kind_of(obj, args.filename, allowed=(Kind.NOTEBOOK,))
        ns = resolve_namespace(args.namespace, obj["metadata"].get("namespace"), cluster.context_namespace)
        name = str(obj["metadata"]["name"])
    else:
        ns = resolve_namespace(args.namespace, None, cluster.context_namespace)
        name = args.name
    target = Target(Kind.NOTEBOOK, ns, name)
    kubectl = Kubectl(ns, cluster.kubectl_flags())
    build = bool(args.dir) and not args.no_build
    if build:
        check_context(Path(args.dir))
    with tempfile.TemporaryDirectory(prefix="substratus-kubectl-upload") as tmp:
        tarball = None
        if build:
            entries = collect(Path(args.dir))
            with out.progress("packing", total_size(entries)) as advance:
                tarball = await asyncio.to_thread(
                    pack, Path(args.dir), Path(tmp) / "archive.tar.gz", entries=entries, progress=advance
                )
            out.detail(f"packed {tarball.files} files from {args.dir} into {tarball.size} bytes, md5 {tarball.md5_hex}")
        if stop.is_set():
            raise Interrupted
        return await session(args, out, stop, cluster=cluster, target=target, obj=obj, tarball=tarball, kubectl=kubectl)


async def session(args: argparse.Namespace, out: Output, stop: asyncio.Event, *, cluster: Cluster, target: Target,
                  obj: JSON | None, tarball: Tarball | None, kubectl: Kubectl) -> int:  # fmt: skip
    """Apply, wait, forward (and sync) until stopped; then suspend (see module docstring)."""
    client = await cluster.connect()
    applied = asyncio.Event()  # set once the Notebook was applied: from then on, exit suspends it
    try:
        try:
            code = await open_notebook(args, out, stop, client=client, target=target, obj=obj, tarball=tarball,
                                       kubectl=kubectl, applied=applied)  # fmt: skip
        except ObjectDeleted:
            raise  # nothing left to suspend
        except BaseException:
            if applied.is_set() and not args.no_suspend:
                await suspend(client, target, out)
            raise
        if applied.is_set() and not args.no_suspend and not await suspend(client, target, out):
            return EXIT_FAILURE
        return code
    finally:
        await client.close()


async def open_notebook(args: argparse.Namespace, out: Output, stop: asyncio.Event, *, client: Client,
                        target: Target, obj: JSON | None, tarball: Tarball | None, kubectl: Kubectl,
                        applied: asyncio.Event) -> int:  # fmt: skip
    if obj is None:
        try:
            obj = await client.get(target.resource, target.name, target.namespace)
        except NotFound:
            raise PluginError(f'notebooks.substratus.ai "{target.name}" not found') from None
        except ApiError as exc:
            raise PluginError(api_error_message(exc, target)) from None
    base = manifest.prepare(obj, target.namespace)
    base["spec"]["suspend"] = False

    def body_for(request_id: str) -> JSON:
        return manifest.with_upload(base, tarball.md5_hex, request_id) if tarball is not None else base

    if args.filename:
        manifest.validate(body_for("check"), Kind.NOTEBOOK, str(args.filename))

    async def apply_with(request_id: str) -> JSON:
        return await apply(client, target, body_for(request_id), force=args.force_conflicts)

    if stop.is_set():
        raise Interrupted
    first = await apply_with(str(uuid.uuid4()))
    applied.set()
    out.result(f"{target.ref} serverside-applied")
    waiter = Waiter(client, target, out, tarball=tarball, want_ready=True, reapply=apply_with)
    try:
        async with (
            build_pod_reporter(client, target, out, enabled=tarball is not None),
            asyncio.timeout(args.timeout or None),
        ):
            if await stoppable(waiter.run(first), stop):
                return EXIT_OK
    except TimeoutError:
        raise PluginError(
            f"timed out after {format_duration(args.timeout)} waiting for {target.ref} to be Ready "
            f"({waiter.describe()})"
        ) from None
    out.detail(f"{target.ref} is Ready")
    owner_uid = str(first["metadata"]["uid"])
    token, pod_uid = await read_token(client, target, owner_uid)
    await Session(args, out, kubectl, target, client, owner_uid=owner_uid, token=(token, pod_uid)).run(stop)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    out = Output()
    try:
        args = parser().parse_args(normalise_verbosity(sys.argv[1:] if argv is None else argv))
        out = Output(args.verbose)
        check_args(args)
        return asyncio.run(_main(args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except PluginError as exc:
        return report(out, exc)


async def _main(args: argparse.Namespace, out: Output) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run(args, out, stop)
    except Interrupted:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
