"""The daemonless image builder (testing/imagepack.py, testing/dockerfile.py): Dockerfile parsing, cache keys,
layers (ownership, modes, whiteouts) and the `docker save` archive. RUN (a chroot) is exercised by building
the notebook image during provisioning and running it on the real node."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from substratus_controller.testing import dockerfile
from substratus_controller.testing.imagepack import (
    Image,
    ImageConfig,
    LayerStore,
    diff_layer,
    extract,
    snapshot,
    tree_layer,
    write_archive,
)

DOCKERFILE = """\
# a comment
ARG BASE=python:3.11-slim
FROM ${BASE}
ENV A=1 \\
    B="two words"
WORKDIR /content
COPY app /usr/local/lib/app
COPY data.txt /content/
EXPOSE 8080
LABEL team=ml
CMD ["python3", "-m", "app"]
"""


def test_parse_joins_continuations_and_applies_build_args() -> None:
    p = dockerfile.plan(DOCKERFILE, source="Dockerfile", build_args={"BASE": "substratus.local/python:3.11"})
    assert p.base == "substratus.local/python:3.11"
    assert [s.op for s in p.steps] == ["ENV", "WORKDIR", "COPY", "COPY", "EXPOSE", "LABEL", "CMD"]
    assert p.steps[0].args == 'A=1  B="two words"'
    assert dockerfile.plan(DOCKERFILE, source="D", build_args={}).base == "python:3.11-slim"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("FROM a\nADD x /x\n", "D:2: ADD is not supported"),
        ("COPY x /x\n", "D:1: COPY before FROM"),
        ("FROM a\nFROM b\n", "only one stage"),
        ("ARG X=1\n", "no FROM"),
        ("FROM a\nRUN echo \\\n", "ends with a line continuation"),
    ],
)
def test_parse_errors_name_the_line(text: str, error: str) -> None:
    with pytest.raises(dockerfile.DockerfileError, match=error):
        dockerfile.plan(text, source="D", build_args={})


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "app" / "__init__.py").write_text("")
    (ctx / "app" / "run.sh").write_text("#!/bin/sh\n")
    (ctx / "app" / "run.sh").chmod(0o755)
    (ctx / "data.txt").write_text("rows\n")
    return ctx


def _base(tmp_path: Path, store: LayerStore) -> Image:
    root = tmp_path / "base"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "proc").mkdir()
    return Image("base:1", [tree_layer(store, root)], ImageConfig(cmd=["sh"]))


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_build_makes_one_root_owned_layer_over_the_base(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    base = _base(tmp_path, store)
    ctx = _context(tmp_path)
    p = dockerfile.plan(DOCKERFILE, source="Dockerfile", build_args={"BASE": "base:1"})
    image = dockerfile.build(p, context=ctx, base=base, ref="app:1", store=store)
    assert image.layers[0] == base.layers[0]
    assert len(image.layers) == 2
    files = _members(image.layers[1].path)
    assert {"content", "content/data.txt", "usr/local/lib/app/run.sh", "usr/local/lib/app/__init__.py"} <= set(files)
    assert "etc/passwd" not in files  # unchanged base files stay in the base layer
    run = files["usr/local/lib/app/run.sh"]
    assert (run.uid, run.gid, run.mode) == (0, 0, 0o755)
    assert (files["content"].uid, files["content"].mode) == (0, 0o755)  # WORKDIR: root-owned, not writable for 1000
    assert image.config.working_dir == "/content"
    assert image.config.env_dict()["B"] == "two words"
    assert image.config.cmd == ["python3", "-m", "app"]
    assert image.config.exposed_ports == ["8080"]
    assert image.config.labels == {"team": "ml"}


def test_cache_key_follows_every_input(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    p = dockerfile.plan(DOCKERFILE, source="Dockerfile", build_args={})
    key = dockerfile.cache_key(p, context=ctx, base_id="sha256:a")
    assert dockerfile.cache_key(p, context=ctx, base_id="sha256:a") == key
    assert dockerfile.cache_key(p, context=ctx, base_id="sha256:b") != key
    (ctx / "app" / "run.sh").write_text("#!/bin/sh\necho changed\n")
    assert dockerfile.cache_key(p, context=ctx, base_id="sha256:a") != key
    other = dockerfile.plan(DOCKERFILE.replace("A=1", "A=2"), source="Dockerfile", build_args={})
    assert dockerfile.cache_key(other, context=ctx, base_id="sha256:a") != dockerfile.cache_key(
        p, context=ctx, base_id="sha256:a"
    )


def test_diff_layer_whiteouts_and_extract_applies_them(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    root = tmp_path / "root"
    (root / "keep").mkdir(parents=True)
    (root / "keep" / "a").write_text("a")
    (root / "gone").mkdir()
    (root / "gone" / "b").write_text("b")
    (root / "c").write_text("c")
    base = tree_layer(store, root)
    before = snapshot(root)
    (root / "c").unlink()
    (root / "gone" / "b").unlink()
    (root / "gone").rmdir()
    (root / "new").write_text("n")
    layer = diff_layer(store, root, before)
    names = set(_members(layer.path))
    assert {".wh.c", ".wh.gone", "new"} <= names
    assert "gone/.wh.b" not in names  # one whiteout for the removed directory
    out = tmp_path / "out"
    extract([base, layer], out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["keep", "keep/a", "new"]


def test_same_tree_same_layer(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    root = tmp_path / "t"
    (root / "x").mkdir(parents=True)
    (root / "x" / "f").write_text("f")
    os.utime(root / "x" / "f", (1000, 1000))
    assert tree_layer(store, root).diff_id == tree_layer(store, root).diff_id
    assert len(list((tmp_path / "layers").glob("*.tar"))) == 1


def test_archive_holds_shared_layers_once(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    base = _base(tmp_path, store)
    ctx = _context(tmp_path)
    p = dockerfile.plan(DOCKERFILE, source="Dockerfile", build_args={"BASE": "base:1"})
    one = dockerfile.build(p, context=ctx, base=base, ref="one:1", store=store)
    two = Image("two:1", one.layers, ImageConfig(cmd=["true"]))
    archive = write_archive([base, one, two], tmp_path / "images.tar")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[1]["Config"]))  # type: ignore[arg-type]
    assert [m["RepoTags"] for m in manifest] == [["base:1"], ["one:1"], ["two:1"]]
    assert sum(n.endswith("layer.tar") for n in names) == 2
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in one.layers]
    assert len(config["history"]) == len(one.layers)
    assert config["config"]["WorkingDir"] == "/content"
