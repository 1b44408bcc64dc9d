"""A small Dockerfile builder for the project's own images (no daemon, no registry): parse, key, build.

Understood instructions: `ARG` (before FROM, substituted as `${NAME}`/`$NAME` in FROM), `FROM`, `ENV`
(`k=v ...` or `k v`), `WORKDIR`, `COPY src... dest` (paths relative to the context, no flags), `RUN` (shell
form, run as root with `/bin/sh -c` in a chroot of the image's filesystem, in a private mount namespace with
/proc, /dev, a fresh /tmp and the host's resolv.conf and CA bundle, so that a RUN step can download through
the host's network, also behind a TLS-inspecting proxy; none of them ends up in the image),
`CMD`/`ENTRYPOINT` (JSON or shell form), `EXPOSE`, `LABEL`; others are an error naming the line.
Everything after FROM becomes one new layer on top of the base's layers.

Invariants:
- Files keep Docker's ownership rules: COPY gives root:root and keeps the modes; WORKDIR creates root-owned
  0755 directories; RUN runs as uid 0. So these images look like upstream's root-built images.
- `cache_key` covers everything the result depends on (the Dockerfile, the build args, the base image's id,
  and every COPY source's paths, modes and contents), so a cached image is reused only when nothing changed.
- RUN needs root (chroot, mount namespace); a build without RUN does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .imagepack import Image, ImageConfig, LayerStore, diff_layer, extract, snapshot

BUILDER_VERSION = "1"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
PROXY_VARS = frozenset({"http_proxy", "https_proxy", "no_proxy"})
KNOWN = {"ARG", "FROM", "ENV", "WORKDIR", "COPY", "RUN", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL"}
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


class DockerfileError(ValueError):
    """The Dockerfile cannot be built by this builder (the message names the file and line)."""


@dataclass(frozen=True)
class Instruction:
    line: int
    op: str
    args: str


def parse(text: str, *, source: str = "Dockerfile") -> list[Instruction]:
    """The instructions of a Dockerfile (comments dropped, `\\` continuations joined)."""
    out: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        op, _, args = full.partition(" ")
        op = op.upper()
        if op not in KNOWN:
            raise DockerfileError(f"{source}:{start}: {op} is not supported by this builder")
        out.append(Instruction(start, op, args.strip()))
    if pending:
        raise DockerfileError(f"{source}: ends with a line continuation")
    return out


def _words(args: str) -> list[str]:
    """JSON form (`["a", "b"]`) or shell form (split like a shell would)."""
    if args.startswith("["):
        value = json.loads(args)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a JSON list of strings")
        return value
    return shlex.split(args)


def _exec_form(args: str) -> list[str]:
    return _words(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def _pairs(args: str) -> list[tuple[str, str]]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV key value with spaces`
        return [(words[0], " ".join(words[1:]))]
    return [tuple(w.split("=", 1)) for w in words]  # type: ignore[misc]


@dataclass
class Plan:
    """A parsed Dockerfile with its build args applied: the base ref and the steps after FROM."""

    source: str
    base: str
    steps: list[Instruction]


def plan(text: str, *, source: str, build_args: Mapping[str, str]) -> Plan:
    args: dict[str, str] = {}
    base: str | None = None
    steps: list[Instruction] = []
    for ins in parse(text, source=source):
        if base is None:
            if ins.op == "ARG":
                name, _, default = ins.args.partition("=")
                args[name] = build_args.get(name, default)
            elif ins.op == "FROM":
                base = _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), ""), ins.args).split()[0]
            else:
                raise DockerfileError(f"{source}:{ins.line}: {ins.op} before FROM")
        elif ins.op in ("FROM", "ARG"):
            raise DockerfileError(f"{source}:{ins.line}: only one stage (one FROM, ARGs before it) is supported")
        else:
            steps.append(ins)
    if base is None:
        raise DockerfileError(f"{source}: no FROM")
    return Plan(source, base, steps)


def _copy_sources(context: Path, ins: Instruction, source: str) -> tuple[list[Path], str]:
    words = _words(ins.args)
    if len(words) < 2 or any(w.startswith("--") for w in words):
        raise DockerfileError(f"{source}:{ins.line}: COPY needs `src... dest` (no flags)")
    srcs = []
    for w in words[:-1]:
        path = (context / w).resolve()
        if context.resolve() not in (path, *path.parents):
            raise DockerfileError(f"{source}:{ins.line}: {w} is outside the build context")
        if not path.exists():
            raise DockerfileError(f"{source}:{ins.line}: {w} does not exist in the build context {context}")
        srcs.append(path)
    return srcs, words[-1]


def cache_key(p: Plan, *, context: Path, base_id: str) -> str:
    """A digest of everything the built image depends on (see module docstring)."""
    h = hashlib.sha256()
    h.update(f"builder {BUILDER_VERSION}\nbase {base_id}\n".encode())
    for ins in p.steps:
        h.update(f"{ins.op} {ins.args}\n".encode())
        if ins.op != "COPY":
            continue
        for src in _copy_sources(context, ins, p.source)[0]:
            files = [src] if src.is_file() else sorted(q for q in src.rglob("*"))
            for f in files:
                rel = f.relative_to(context.resolve())
                st = f.lstat()
                h.update(f"{rel} {st.st_mode:o}\n".encode())
                if f.is_file():
                    h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _copy_into(src: Path, dest: Path) -> None:
    """Docker COPY: a directory's contents go into dest; files keep their modes; owners become root."""
    if src.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        for child in sorted(src.iterdir()):
            if child.name == "__pycache__":
                continue
            _copy_into(child, dest / child.name)
        shutil.copystat(src, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest, follow_symlinks=True)
    if os.geteuid() == 0:
        os.lchown(dest, 0, 0)


def _inside(rootfs: Path, path: str, workdir: str) -> Path:
    absolute = os.path.normpath(os.path.join(workdir or "/", path))
    return rootfs / absolute.lstrip("/")


def _run(rootfs: Path, command: str, *, env: Mapping[str, str], workdir: str, source: str, line: int) -> None:
    if os.geteuid() != 0:
        raise DockerfileError(f"{source}:{line}: RUN needs root (chroot and a mount namespace)")
    resolv = rootfs / "etc" / "resolv.conf"
    created = not resolv.exists() and not resolv.is_symlink()
    if created:
        resolv.parent.mkdir(parents=True, exist_ok=True)
        resolv.touch()
    # a private mount namespace: /proc, /dev and resolv.conf are mounted for this RUN only and vanish with it
    script = (
        'set -e; r="$1"; shift; mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; '
        'mount -t tmpfs tmpfs "$r/tmp"; mount --bind /etc/resolv.conf "$r/etc/resolv.conf"; '
        f'if [ -f {HOST_CA} ] && [ -f "$r{HOST_CA}" ]; then mount --bind {HOST_CA} "$r{HOST_CA}"; fi; '
        'exec chroot "$r" /usr/bin/env -i "$@"'
    )
    proxies = {k: v for k, v in os.environ.items() if k.lower() in PROXY_VARS}
    env_args = [f"{k}={v}" for k, v in {**proxies, **env}.items()]
    inner = f"cd {shlex.quote(workdir or '/')} && {command}"
    argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", str(rootfs),
            *env_args, "/bin/sh", "-c", inner]  # fmt: skip
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        if created:
            resolv.unlink(missing_ok=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise DockerfileError(f"{source}:{line}: RUN {command!r} exited with {result.returncode}:\n{tail}")


def build(p: Plan, *, context: Path, base: Image, ref: str, store: LayerStore) -> Image:
    """Build `p` FROM `base` into a new image `ref` whose last layer holds every change after FROM."""
    config = ImageConfig.from_json(base.config.to_json())
    with tempfile.TemporaryDirectory(prefix="substratus-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        extract(base.layers, rootfs)
        for d in ("proc", "dev", "tmp", "sys"):
            (rootfs / d).mkdir(exist_ok=True)
        before = snapshot(rootfs)
        for ins in p.steps:
            where = f"{p.source}:{ins.line}"
            try:
                if ins.op == "ENV":
                    for key, value in _pairs(ins.args):
                        config.set_env(
                            key, _VAR.sub(lambda m: config.env_dict().get(m.group(1) or m.group(2), ""), value)
                        )
                elif ins.op == "WORKDIR":
                    config.working_dir = os.path.normpath(os.path.join(config.working_dir or "/", ins.args))
                    target = _inside(rootfs, config.working_dir, "/")
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                elif ins.op == "COPY":
                    srcs, dest = _copy_sources(context, ins, p.source)
                    into_dir = dest.endswith("/") or len(srcs) > 1
                    for src in srcs:
                        target = _inside(rootfs, dest, config.working_dir)
                        if into_dir and src.is_file():
                            target = target / src.name
                        _copy_into(src, target)
                elif ins.op == "RUN":
                    env = {"PATH": config.env_dict().get("PATH", ""), "HOME": "/root", **config.env_dict()}
                    _run(rootfs, ins.args, env=env, workdir=config.working_dir, source=p.source, line=ins.line)
                elif ins.op == "CMD":
                    config.cmd = _exec_form(ins.args)
                elif ins.op == "ENTRYPOINT":
                    config.entrypoint = _exec_form(ins.args)
                    config.cmd = None  # Docker: ENTRYPOINT resets an inherited CMD
                elif ins.op == "EXPOSE":
                    config.exposed_ports += ins.args.split()
                elif ins.op == "LABEL":
                    config.labels.update(_pairs(ins.args))
            except (ValueError, OSError) as exc:
                if isinstance(exc, DockerfileError):
                    raise
                raise DockerfileError(f"{where}: {ins.op} {ins.args}: {exc}") from None
        layer = diff_layer(store, rootfs, before)
    history = [*(base.history or [f"{base.ref} layer {i}" for i in range(len(base.layers))]), f"{p.source}"]
    return Image(ref=ref, layers=[*base.layers, layer], config=config, history=history)


def build_args_of(values: Sequence[str]) -> dict[str, str]:
    """`NAME=value` strings (like `--build-arg`) as a dict."""
    return dict(v.split("=", 1) for v in values)
