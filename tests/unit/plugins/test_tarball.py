"""The build-context tarball: deterministic bytes, normalised headers, .dockerignore, what is skipped."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from substratus_controller.plugins.commandline import PluginError
from substratus_controller.plugins.tarball import _Reader, check_context, collect, pack

FILES = {
    "Dockerfile": b"FROM python:3.11-slim\nCOPY . /content\n",
    "app.py": b"print('hello')\n",
    "src/pkg/__init__.py": b"",
    "src/pkg/mod.py": b"X = 1\n",
    "README.md": b"# readme\n",
}


def make_tree(root: Path, files: dict[str, bytes], order: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in order or list(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    return root


def packed(root: Path, tmp: Path) -> tuple[str, Path]:
    dest = tmp / f"out-{len(list(tmp.iterdir()))}.tar.gz"
    result = pack(root, dest)
    return result.md5_hex, dest


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_md5_is_the_lower_hex_md5_of_the_gzip_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", FILES)
    result = pack(root, tmp_path / "a.tar.gz")
    data = (tmp_path / "a.tar.gz").read_bytes()
    assert result.md5_hex == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert result.size == len(data)
    assert result.files == len(FILES)


def test_same_tree_same_md5_whatever_the_mtimes_order_and_umask(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = make_tree(tmp_path / "one", FILES)
    old_umask = os.umask(0o077)
    try:
        second = make_tree(tmp_path / "two", FILES, order=sorted(FILES, reverse=True))
    finally:
        os.umask(old_umask)
    for i, path in enumerate(sorted(second.rglob("*"))):
        os.utime(path, (1_000_000 + i, 2_000_000 + i))
    md5_a, _ = packed(first, out)
    md5_b, _ = packed(second, out)
    md5_c, _ = packed(first, out)  # and again, another run
    assert md5_a == md5_b == md5_c


def test_a_change_changes_the_md5(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    root = make_tree(tmp_path / "ctx", FILES)
    before, _ = packed(root, out)
    (root / "app.py").write_bytes(b"print('bye')\n")
    after, _ = packed(root, out)
    assert before != after


def test_headers_are_normalised_and_the_executable_bit_kept(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {**FILES, "run.sh": b"#!/bin/sh\n"})
    (root / "run.sh").chmod(0o700)
    (root / "app.py").chmod(0o600)
    (root / "src").chmod(0o700)
    _, archive = packed(root, tmp_path)
    infos = members(archive)
    for info in infos.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    assert infos["run.sh"].mode == 0o755
    assert infos["app.py"].mode == 0o644
    assert infos["src"].isdir()
    assert infos["src"].mode == 0o755
    with gzip.open(archive) as gz:
        assert gz.read()  # a valid gzip stream
    header = archive.read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0", "gzip mtime is zero"
    assert not header[3] & 0x08, "no file name in the gzip header"


def test_entries_are_sorted_with_directories_before_their_contents(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"Dockerfile": b"FROM x\n", "a-b": b"1", "a/b": b"2", "a/c/d": b"3"})
    _, archive = packed(root, tmp_path)
    assert list(members(archive)) == ["Dockerfile", "a", "a/b", "a/c", "a/c/d", "a-b"]


def test_symlinks_devices_and_sockets_are_skipped_never_followed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", FILES)
    outside = make_tree(tmp_path / "outside", {"secret.txt": b"not for the image"})
    (root / "link.py").symlink_to(root / "app.py")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        _, archive = packed(root, tmp_path)
    names = set(members(archive))
    assert names.isdisjoint({"link.py", "linkdir", "linkdir/secret.txt", "dangling", "fifo", "sock"})
    assert "app.py" in names


def test_dockerignore_is_honoured(tmp_path: Path) -> None:
    files = {
        **FILES,
        ".dockerignore": b"# build outputs\n*.md\n/data\n!data/keep.txt\n**/__pycache__\n.git\n",
        "data/big.bin": b"\0" * 100,
        "data/keep.txt": b"keep",
        "src/pkg/__pycache__/mod.cpython-311.pyc": b"\0",
        ".git/config": b"[core]\n",
    }
    root = make_tree(tmp_path / "ctx", files)
    _, archive = packed(root, tmp_path)
    assert sorted(members(archive)) == [
        ".dockerignore", "Dockerfile", "app.py", "data", "data/keep.txt", "src", "src/pkg", "src/pkg/__init__.py",
        "src/pkg/mod.py",
    ]  # fmt: skip


def test_the_dockerfile_and_dockerignore_are_sent_even_when_excluded(tmp_path: Path) -> None:
    """Docker's rule: the builder still receives them; COPY/ADD (Kaniko re-reads .dockerignore) skip them."""
    root = make_tree(tmp_path / "ctx", {**FILES, ".dockerignore": b"Dockerfile\n.dockerignore\n*\n"})
    _, archive = packed(root, tmp_path)
    assert sorted(members(archive)) == [".dockerignore", "Dockerfile"]


def test_a_dockerfile_is_required(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {"app.py": b""})
    with pytest.raises(PluginError, match=r"ctx does not contain a Dockerfile$"):
        check_context(root)
    (root / "Dockerfile").symlink_to(root / "app.py")
    with pytest.raises(PluginError, match="not a regular file"):
        pack(root, tmp_path / "x.tar.gz")
    with pytest.raises(PluginError, match="does not exist"):
        check_context(tmp_path / "missing")
    with pytest.raises(PluginError, match="is not a directory"):
        check_context(root / "app.py")


def test_a_bad_dockerignore_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", {**FILES, ".dockerignore": b"!\n"})
    with pytest.raises(PluginError, match=r"\.dockerignore: illegal exclusion pattern"):
        collect(root)


def test_a_file_that_shrinks_while_packed_is_an_error(tmp_path: Path) -> None:
    reader = _Reader(io.BytesIO(b"short"), "app.py", 100, lambda _n: None)
    with pytest.raises(PluginError, match=r"app\.py changed while it was packed"):
        reader.read(1 << 20)


def test_progress_counts_every_byte(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", FILES)
    seen: list[int] = []
    pack(root, tmp_path / "p.tar.gz", progress=seen.append)
    assert sum(seen) == sum(len(v) for v in FILES.values())


def test_an_empty_directory_is_kept(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "ctx", FILES)
    (root / "empty").mkdir()
    _, archive = packed(root, tmp_path)
    assert members(archive)["empty"].isdir()
