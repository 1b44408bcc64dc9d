"""The images the real node runs, built here without Docker or a registry, and cached.

- `substratus.local/pause:3.2`: the pod sandbox, a static C program (sleep, reap zombies, exit on TERM);
- `substratus.local/python:3.11`: Debian bookworm minbase with python3, pip and CA certificates
  (debootstrap), the base of the reference images (like upstream's `python:3.11` bases); the real tier also
  pushes it to the node's registry as `base/python:3.11`, the `FROM` of the Dockerfiles it builds;
- `substratus.local/buildah:1.28` (buildah, vfs storage) and `substratus.local/git:2.39` (entrypoint git):
  the builder Job's images on the real tier (`--builder buildah`, `--builder-image`, `--git-image`);
- `substratus.local/<name>:0.1` for every `images/<name>/Dockerfile` of the repository (the reference
  workload images), built FROM the python base by `dockerfile.build` with `BASE=substratus.local/python:3.11`.

Images live in `${XDG_CACHE_HOME:-~/.cache}/substratus/testenv/images/`: layers by content under `layers/`,
one JSON record per image under `refs/` holding the cache key it was built from. An image is rebuilt only
when its key changes (a Dockerfile, a copied file, the base or the recipe). `archive()` writes all of them
into one `docker save` archive (shared layers once) for `ctr images import`.

Building the bases needs root, gcc and debootstrap (hack/bootstrap.sh installs them) and, once, Debian's
mirror; nothing here downloads at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import dockerfile
from .controlplane import default_cache_dir
from .imagepack import DEFAULT_PATH, Image, ImageConfig, LayerStore, tree_layer, write_archive

REGISTRY = "substratus.local"
PAUSE_REF = f"{REGISTRY}/pause:3.2"
PYTHON_REF = f"{REGISTRY}/python:3.11"
BUILDAH_REF = f"{REGISTRY}/buildah:1.28"
GIT_REF = f"{REGISTRY}/git:2.39"
REFERENCE_TAG = "0.1"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
STRIPPED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
            "usr/share/locale")  # fmt: skip
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void down(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction a = {0};
  a.sa_handler = down; sigaction(SIGINT, &a, 0); sigaction(SIGTERM, &a, 0);
  a.sa_handler = reap; a.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &a, 0);
  for (;;) pause();
}
"""

Log = Callable[[str], None]


def reference_ref(name: str) -> str:
    """The reference image built from `images/<name>/Dockerfile`."""
    return f"{REGISTRY}/{name}:{REFERENCE_TAG}"


def default_images_dir() -> Path:
    return default_cache_dir().parent / "images"


def repo_images_dir() -> Path:
    """`images/` of the source tree this package runs from."""
    return Path(__file__).resolve().parents[3] / "images"


class ImageError(RuntimeError):
    """An image could not be built (the message says which and why)."""


@dataclass
class ImageCache:
    root: Path

    def __post_init__(self) -> None:
        self.store = LayerStore(self.root / "layers")
        (self.root / "refs").mkdir(parents=True, exist_ok=True)

    def _record(self, ref: str) -> Path:
        return self.root / "refs" / (ref.replace("/", "_").replace(":", "_") + ".json")

    def load(self, ref: str, key: str) -> Image | None:
        """The cached image `ref` if it was built from `key` and all its layers are there."""
        try:
            data = json.loads(self._record(ref).read_text())
            if data["key"] != key:
                return None
            layers = [self.store.get(d) for d in data["layers"]]
        except (OSError, ValueError, KeyError):
            return None
        return Image(ref, layers, ImageConfig.from_json(data["config"]), list(data.get("history") or []))

    def save(self, image: Image, key: str) -> Image:
        record = {"ref": image.ref, "key": key, "layers": [layer.diff_id for layer in image.layers],
                  "config": image.config.to_json(), "history": image.history}  # fmt: skip
        tmp = self._record(image.ref).with_suffix(".partial")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, self._record(image.ref))
        return image


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def pause_image(cache: ImageCache, log: Log) -> Image:
    key = _key("pause", PAUSE_C)
    image = cache.load(PAUSE_REF, key)
    if image is not None:
        return image
    log(f"building {PAUSE_REF} (gcc -static)")
    with tempfile.TemporaryDirectory(prefix="substratus-pause-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        (Path(tmp) / "pause.c").write_text(PAUSE_C)
        _check(["gcc", "-Os", "-static", "-o", str(root / "pause"), str(Path(tmp) / "pause.c")], what=PAUSE_REF)
        _check(["strip", str(root / "pause")], what=PAUSE_REF)
        layer = tree_layer(cache.store, root)
    config = ImageConfig(env=[DEFAULT_PATH], entrypoint=["/pause"])
    return cache.save(Image(PAUSE_REF, [layer], config, ["substratus pause (gcc -static)"]), key)


@dataclass(frozen=True)
class DebianImage:
    """A Debian bookworm minbase image with `packages`, stripped of docs and apt caches, plus `files`."""

    ref: str
    packages: tuple[str, ...]
    config: ImageConfig
    files: tuple[tuple[str, str], ...] = ()  # (path in the image, content)
    remove: tuple[str, ...] = ()  # paths (files or directories) removed from the debootstrapped tree

    @property
    def recipe(self) -> str:
        return f"debootstrap --variant=minbase --include={','.join(self.packages)} bookworm"

    def key(self) -> str:
        return _key(self.ref, self.recipe, *STRIPPED, json.dumps(self.config.to_json(), sort_keys=True),
                    *(f"{path}\n{content}" for path, content in self.files),
                    *(f"remove {path}" for path in self.remove))  # fmt: skip


PYTHON = DebianImage(
    PYTHON_REF, ("python3", "python3-pip", "ca-certificates"), ImageConfig(env=[DEFAULT_PATH], cmd=["python3"])
)
# The real tier's image builder (render/builders.py renders its command): buildah with vfs storage and chroot
# isolation, no registry configuration beyond "no short names" (the rendered --tls-verify flag says whether a
# registry is plain HTTP). netavark: buildah's containers-common needs the virtual container-network-stack,
# which debootstrap cannot resolve; runc: buildah's declared runtime (chroot isolation does not use it).
# registries.conf.d (short-name aliases) is removed: no registry is ever guessed for a short name.
BUILDAH = DebianImage(BUILDAH_REF, ("buildah", "runc", "netavark"),
                      ImageConfig(env=[DEFAULT_PATH], cmd=["buildah", "--version"]), (
    ("etc/containers/storage.conf",
     '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n'),
    ("etc/containers/registries.conf", "unqualified-search-registries = []\n"),
    ("etc/containers/policy.json", '{"default": [{"type": "insecureAcceptAnything"}]}\n'),
), remove=("etc/containers/registries.conf.d",))  # fmt: skip
# The git-clone image (entrypoint git, like alpine/git): git:// and http:// only (no CA certificates).
GIT = DebianImage(GIT_REF, ("git",), ImageConfig(env=[DEFAULT_PATH], entrypoint=["git"]))


def debian_image(cache: ImageCache, log: Log, spec: DebianImage) -> Image:
    key = spec.key()
    image = cache.load(spec.ref, key)
    if image is not None:
        return image
    if os.geteuid() != 0:
        raise ImageError(f"building {spec.ref} needs root (debootstrap); run hack/bootstrap.sh as root")
    log(f"building {spec.ref} ({spec.recipe}, about a minute)")
    with tempfile.TemporaryDirectory(prefix="substratus-debian-") as tmp:
        root = Path(tmp) / "rootfs"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}", "bookworm",
                str(root), DEBIAN_MIRROR]  # fmt: skip
        _check(argv, what=spec.ref)
        for rel in STRIPPED:
            path = root / rel
            if path.is_dir():
                shutil.rmtree(path)
                path.mkdir(mode=0o755)
        (root / "etc" / "resolv.conf").unlink(missing_ok=True)  # the runtime provides it
        (root / "etc" / "hostname").unlink(missing_ok=True)
        for rel, content in spec.files:
            path = root / rel
            if path.is_dir():
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(0o644)
        for rel in spec.remove:
            path = root / rel
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        layer = tree_layer(cache.store, root)
    return cache.save(Image(spec.ref, [layer], spec.config, [f"substratus {spec.recipe}"]), key)


def python_image(cache: ImageCache, log: Log) -> Image:
    return debian_image(cache, log, PYTHON)


def reference_images(cache: ImageCache, base: Image, log: Log, images_dir: Path | None = None) -> list[Image]:
    """Every `images/<name>/Dockerfile`, built FROM `base` (context: the `images/` directory)."""
    context = images_dir or repo_images_dir()
    out = []
    for path in sorted(context.glob("*/Dockerfile")):
        name = path.parent.name
        ref = reference_ref(name)
        p = dockerfile.plan(path.read_text(), source=str(path), build_args={"BASE": base.ref})
        if p.base != base.ref:
            raise ImageError(f"{path}: FROM {p.base}, expected the ARG BASE (got {base.ref})")
        key = dockerfile.cache_key(p, context=context, base_id=base.id)
        image = cache.load(ref, key)
        if image is None:
            log(f"building {ref} from {path.relative_to(context.parent)}")
            image = cache.save(dockerfile.build(p, context=context, base=base, ref=ref, store=cache.store), key)
        out.append(image)
    return out


def ensure_images(
    *, cache_dir: Path | None = None, images_dir: Path | None = None, log: Log = lambda _m: None
) -> list[Image]:
    """All the node's images (pause, python, the builder's, reference), built where missing or stale."""
    cache = ImageCache(cache_dir or default_images_dir())
    base = python_image(cache, log)
    builders = [debian_image(cache, log, BUILDAH), debian_image(cache, log, GIT)]
    return [pause_image(cache, log), base, *builders, *reference_images(cache, base, log, images_dir)]


# The controller's settings for building on the real node: buildah and git from the node's own images (no
# registry outside the node). No REGISTRY_URL: the controller finds the node's registry through
# kube-public/local-registry-hosting, as it would on a user's cluster.
NODE_BUILDER = {"BUILDER": "buildah", "BUILDER_IMAGE": BUILDAH_REF, "GIT_IMAGE": GIT_REF}

# Images the real node's registry holds from the start (local ref -> repository:tag in the registry), for
# the Dockerfiles the real tier builds to start FROM.
BASES = {PYTHON_REF: "base/python:3.11", reference_ref("notebook"): "base/notebook:0.1"}


def node_archives(*, log: Log = lambda _m: None) -> tuple[Path, dict[str, Path]]:
    """The real node's archive (every image, for import) and one archive per base in BASES (for its registry)."""
    built = {i.ref: i for i in ensure_images(log=log)}
    bases = {ref: archive([built[ref]], name="base-" + ref.split("/")[-1].split(":")[0]) for ref in BASES}
    return archive(list(built.values())), bases


def archive(images: Sequence[Image], *, cache_dir: Path | None = None, name: str = "archive") -> Path:
    """One `docker save` archive of `images`, cached by their ids (one archive per `name`)."""
    root = cache_dir or default_images_dir()
    digest = _key(*(f"{i.ref} {i.id}" for i in images))[:16]
    out = root / f"{name}-{digest}.tar"
    if not out.is_file():
        for old in root.glob(f"{name}-*.tar"):
            old.unlink(missing_ok=True)
        write_archive(images, out)
    return out


def _check(argv: Sequence[str], *, what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ImageError(f"building {what}: cannot run {argv[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ImageError(f"building {what}: {' '.join(argv[:3])}... exited with {result.returncode}:\n{tail}")
