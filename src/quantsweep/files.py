"""Atomic writes, content hashes and model files: a reader never sees a half-written file.

A model file is a value (:class:`ModelFile`: a path and its :class:`ModelFormat`), not a suffix
test spread over the code: an ONNX file, an OpenVINO IR (``x.xml`` + ``x.bin``), a TensorRT
engine. It alone knows which files make up a model, and so how to hash, ship, copy and size it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "ONNX", "OPENVINO_IR", "TENSORRT_ENGINE", "ModelFile", "ModelFormat", "atomic_replace", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "capture_output", "file_hash",
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
    """Hex sha256 of a file's bytes; of a model made of several files (an OpenVINO IR ``x.xml``), of
    each of its files in turn (``x.xml`` then ``x.bin``): the IR's weights live in the ``.bin``, and a
    fingerprint of the ``.xml`` alone would not change when they do."""
    h = hashlib.sha256()
    for part in ModelFile.of(path).existing():
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


@dataclass(frozen=True)
class ModelFormat:
    """A kind of model file: its name in records (``format`` in a scheme JSON), its main file's
    suffix and the files that travel with it (an IR's ``.bin``)."""

    name: str
    title: str
    suffix: str
    companions: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


ONNX = ModelFormat("onnx", "ONNX", ".onnx")
OPENVINO_IR = ModelFormat("openvino-ir", "OpenVINO IR", ".xml", (".bin",))
TENSORRT_ENGINE = ModelFormat("tensorrt-engine", "TensorRT engine", ".engine")
FORMATS: dict[str, ModelFormat] = {f.name: f for f in (ONNX, OPENVINO_IR, TENSORRT_ENGINE)}


@dataclass(frozen=True)
class ModelFile:
    """A model on disk: ``path`` (the file a runtime opens) in ``format``.

    Example:
        >>> m = ModelFile.of(Path("candidates/int8-ov.xml"))
        >>> m.format.name, [p.name for p in m.files]
        ('openvino-ir', ['int8-ov.xml', 'int8-ov.bin'])
    """

    path: Path
    format: ModelFormat

    @classmethod
    def of(cls, path: Path | str) -> ModelFile:
        """The model whose main file is ``path``, its format told by the suffix (anything unknown is
        read as ONNX, whose loader then says what is wrong with it)."""
        path = Path(path)
        suffix = path.suffix.lower()
        return cls(path, next((f for f in FORMATS.values() if f.suffix == suffix), ONNX))

    @classmethod
    def find(cls, folder: Path, name: str) -> ModelFile:
        """The model called ``name`` in ``folder``: the first format whose main file is there (an IR
        before an ONNX twin of the same name), else ``name.onnx``."""
        for fmt in (OPENVINO_IR, TENSORRT_ENGINE, ONNX):
            path = Path(folder) / f"{name}{fmt.suffix}"
            if path.is_file():
                return cls(path, fmt)
        return cls(Path(folder) / f"{name}{ONNX.suffix}", ONNX)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def files(self) -> list[Path]:
        """Every file the model consists of, main file first."""
        return [self.path, *(self.path.with_suffix(c) for c in self.format.companions)]

    def existing(self) -> list[Path]:
        """:attr:`files` that exist (the main file always, so a missing one fails where it is read)."""
        return [self.path, *(p for p in self.files[1:] if p.exists())]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)

    def sha256(self) -> str:
        return sha256_file(self.path)

    def move_to(self, path: Path, copy: bool = False) -> ModelFile:
        """The model moved (or copied) to main file ``path``, each file atomically, companions first
        (so a reader that finds the main file finds all of it)."""
        target = ModelFile(Path(path), self.format)
        for src, dst in reversed(list(zip(self.files, target.files))):
            atomic_replace(src, dst, copy=copy)
        return target

    def copy_into(self, folder: Path) -> ModelFile:
        """A copy of the model in ``folder``, under the same file names."""
        return self.move_to(Path(folder) / self.name, copy=True)
