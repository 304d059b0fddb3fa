"""Real file systems for disk-fault tests (root only): a size-limited tmpfs, and an ext4 volume
that can be turned read-only under open files the way a failing disk turns it.

Every mount point is unique to the process and the call, and is unmounted and removed when the
``with`` block ends, even when the test fails. A volume with files open for writing cannot be
remounted read-only (the kernel answers EBUSY, bind mounts included), so "the disk turns
read-only while the node runs" uses ext4's own error path: mounted ``errors=remount-ro``, an
error forced through ``/sys/fs/ext4/<dev>/trigger_fs_error`` makes the kernel flip it read-only
at once, open files and all (``emergency_ro``).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["tmpfs", "remount", "ext4_volume", "force_read_only", "digest_tree", "refuses_writes"]

_serial = itertools.count()


def _mount_point(kind: str) -> Path:
    path = Path(f"/tmp/swarmlist-{kind}-{os.getpid()}-{next(_serial)}")
    path.mkdir()
    return path


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)


def _unmount(path: Path) -> None:
    if os.path.ismount(path):
        done = subprocess.run(["umount", str(path)], capture_output=True, timeout=60)
        if done.returncode != 0:  # still busy (a process the test could not stop): detach it lazily
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)
    path.rmdir()


@contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``, e.g. ``1m``) mounted for the block."""
    path = _mount_point("tmpfs")
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
        yield path
    finally:
        _unmount(path)


def remount(path: Path, options: str) -> None:
    """``mount -o remount,<options>``: a new size, ``ro`` (no file open for writing) or ``rw``."""
    _run("mount", "-o", f"remount,{options}", str(path))


@contextmanager
def ext4_volume(image_dir: Path, size_mb: int = 32) -> Iterator[Path]:
    """A fresh ext4 file system on a loop device (image kept in ``image_dir``), mounted
    ``errors=remount-ro``; the loop device goes with the unmount (``mount -o loop`` sets autoclear)."""
    image = image_dir / f"volume-{os.getpid()}-{next(_serial)}.ext4"
    with open(image, "wb") as handle:
        handle.truncate(size_mb << 20)
    _run("mkfs.ext4", "-q", "-F", str(image))
    path = _mount_point("ext4")
    try:
        _run("mount", "-o", "loop,errors=remount-ro", str(image), str(path))
        yield path
    finally:
        _unmount(path)
        image.unlink(missing_ok=True)


def force_read_only(path: Path) -> None:
    """Make the ext4 volume mounted at ``path`` read-only now, under its open files, as a disk error does."""
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(path)], check=True, capture_output=True,
                            text=True, timeout=60).stdout.strip()  # fmt: skip
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("swarmlist disk-fault test\n")


def refuses_writes(path: Path) -> bool:
    """Whether creating a file under ``path`` fails with EROFS (ext4's emergency read-only does not
    show in the mount flags that ``statvfs`` reports)."""
    probe = path / f".write-probe-{os.getpid()}"
    try:
        probe.touch()
    except OSError as exc:
        return exc.errno == errno.EROFS
    probe.unlink()
    return False


def digest_tree(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root``: equal before and after means nothing changed."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
