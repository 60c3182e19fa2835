"""Atomic writes and content hashes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_replace", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "capture_output", "file_hash",
           "file_mode", "sha256_file"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give a new file (0644 under the usual umask 022).

    Temporary files (``mkstemp``) are created 0600; a run folder written through them would be
    unreadable to a teammate, a CI job under another user or a serving process.
    """
    return 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + fsync + rename (mode as ``open``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_replace(src: Path, dst: Path, copy: bool = False) -> Path:
    """Put ``src`` at ``dst`` in one step: moved (or copied) to a temp name beside ``dst``, then renamed."""
    import shutil

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    (shutil.copyfile if copy else shutil.move)(str(src), str(tmp))
    os.chmod(tmp, file_mode())  # a file made by mkstemp elsewhere arrives 0600
    os.replace(tmp, dst)
    return dst


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes; of an OpenVINO IR (``x.xml``), of ``x.xml`` then ``x.bin``.

    The IR's weights live in the ``.bin``: a fingerprint of the ``.xml`` alone would not change
    when they do.
    """
    h = hashlib.sha256()
    path = Path(path)
    parts = [path]
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").exists():
        parts.append(path.with_suffix(".bin"))
    for part in parts:
        with open(part, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def file_hash(path: Path) -> str:
    """The first 16 hex digits of a file's sha256, or ``"missing"``: a step-input fingerprint."""
    return sha256_file(path)[:16] if path.exists() else "missing"


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) for a few system calls, so they cannot be cut in half."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def capture_output(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (C libraries included) to ``log_path`` for a while.

    Redirecting and restoring happen with Ctrl-C held back: an interrupt that lands while the
    streams are being switched still finds the terminal afterwards (its message is not lost in
    the log).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with _sigint_deferred():
        saved = os.dup(1), os.dup(2)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        handler = logging.FileHandler(log_path)
        logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        with _sigint_deferred():
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
                logging.getLogger().removeHandler(handler)
                handler.close()
