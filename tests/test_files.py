"""File fingerprints: what counts as a changed file, a Kubernetes symlink swap included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.files import Fingerprint, fingerprint, stat_file


def mount(root: Path, version: str, text: str, ns: int) -> Path:
    """Lay ``root`` out as Kubernetes mounts a ConfigMap; the new file's mtime is ``ns``."""
    data = root / f"..{version}"
    data.mkdir()
    (data / "config.yaml").write_text(text, encoding="utf-8")
    os.utime(data / "config.yaml", ns=(ns, ns))
    tmp = root / "..data_tmp"
    tmp.symlink_to(data.name)
    tmp.replace(root / "..data")
    link = root / "config.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/config.yaml")
    return link


def test_a_fingerprint_names_the_resolved_file_and_its_identity(tmp_path: Path) -> None:
    """Path with every link followed, then device, inode, size and mtime of that file."""
    link = mount(tmp_path, "v1", "a: 1\n", 1_700_000_000_000_000_000)
    target = tmp_path / "..v1" / "config.yaml"
    st = target.stat()
    want = Fingerprint(str(target), st.st_dev, st.st_ino, 5, 1_700_000_000_000_000_000)
    assert fingerprint(str(link)) == want
    assert stat_file(str(link))[0] == want
    assert stat_file(str(link))[1].st_ino == st.st_ino


def test_a_configmap_swap_is_a_change_even_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    """Swapping ``..data`` to a file of equal size and mtime still changes the fingerprint."""
    ns = 1_700_000_000_000_000_000
    link = mount(tmp_path, "v1", "a: 1\n", ns)
    before = fingerprint(str(link))
    mount(tmp_path, "v2", "a: 2\n", ns)
    after = fingerprint(str(link))
    assert before is not None
    assert after is not None
    assert (after.path, after.size, after.mtime_ns) == (str(tmp_path / "..v2/config.yaml"), 5, ns)
    assert after != before


def test_an_in_place_rewrite_is_a_change_by_its_mtime(tmp_path: Path) -> None:
    """Same inode and size with a new mtime is another fingerprint; an untouched file is equal."""
    path = tmp_path / "secret"
    path.write_text("one", encoding="utf-8")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = fingerprint(str(path))
    assert fingerprint(str(path)) == before
    path.write_text("two", encoding="utf-8")
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    after = fingerprint(str(path))
    assert before is not None
    assert after is not None
    assert (after.inode, after.size, after.mtime_ns) == (before.inode, 3, 2_000_000_000)
    assert after != before


def test_a_missing_file_or_dangling_link_has_no_fingerprint(tmp_path: Path) -> None:
    """``fingerprint`` answers ``None``; ``stat_file`` raises the error it met."""
    (tmp_path / "dangling").symlink_to("nowhere")
    assert fingerprint(str(tmp_path / "missing")) is None
    assert fingerprint(str(tmp_path / "dangling")) is None
    with pytest.raises(FileNotFoundError):
        stat_file(str(tmp_path / "dangling"))
