"""Steps on workers that share no filesystem with the driver (``--executor ray`` without ``--shared-dir``).

The files a step reads go out through Ray's object store and the files it writes come back as
bytes, so the driver stays the only writer of the run folder:

1. The driver finds the files in the step's arguments (:func:`needed_files`): every existing file
   path (an OpenVINO IR's ``.bin`` with its ``.xml``), the images of a calibration set, and the
   images of a dataset for the image ids that follow it in the same argument list (the
   ``(model, dataset, ids, ...)`` signature of evaluation and prediction). Each file is put in the
   object store once per run (:class:`Shipper`, keyed by path, size and modification time).
2. The worker writes them under a private staging folder that mirrors their absolute paths,
   points every path of the arguments there (:func:`map_paths`), runs the step, and returns the
   files the step created or changed in its output folders (:func:`run_staged`). The staging
   prefix is taken out of text outputs, results and error messages, so what comes back names the
   driver's paths.
3. The driver writes those files atomically at their real paths (:meth:`Shipper.land`).

On one machine this is slower than reading in place (``--shared-dir``) but proves the step reads
nothing it was not sent: a file missing from the staging folder fails the step.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import Dataset
from quantsweep.files import ModelFile, atomic_write_bytes

__all__ = ["Shipper", "map_paths", "needed_files", "run_staged"]

_TEXT = frozenset({".json", ".txt", ".log", ".md", ".yaml", ".csv", ".jsonl"})


def _is_ids(obj: Any) -> bool:
    return isinstance(obj, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in obj)


def needed_files(args: Any) -> list[Path]:
    """The files a step with arguments ``args`` reads (absolute, each once, in order found)."""
    found: dict[Path, None] = {}

    def add(p: Path) -> None:
        p = Path(p).absolute()
        for part in ModelFile.of(p).existing():  # a model's companions (an IR's .bin) travel with it
            found.setdefault(part, None)

    def walk(obj: Any) -> None:
        if isinstance(obj, Path):
            if obj.is_file():
                add(obj)
        elif isinstance(obj, CalibSet):
            for key in obj.ids:
                add(obj.source.path(key))
        elif isinstance(obj, Dataset):
            return  # its index travels in memory; its images with the ids that follow it (below)
        elif isinstance(obj, (list, tuple)):
            items = list(obj)
            for i, item in enumerate(items):
                walk(item)
                if isinstance(item, Dataset) and i + 1 < len(items) and _is_ids(items[i + 1]):
                    for image_id in items[i + 1]:
                        add(item.path(image_id))
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                if not f.name.startswith("_"):
                    walk(getattr(obj, f.name))

    walk(args)
    return list(found)


def _rebuild(obj: Any, leaf: Callable[[Any], Any], leaves: tuple[type, ...], into_dataclasses: bool) -> Any:
    """``obj`` rebuilt through tuples, lists, dicts (and dataclasses' init fields when
    ``into_dataclasses``), each instance of ``leaves`` replaced by ``leaf(it)``."""
    if isinstance(obj, leaves):
        return leaf(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_rebuild(x, leaf, leaves, into_dataclasses) for x in obj)
    if isinstance(obj, dict):
        return {k: _rebuild(v, leaf, leaves, into_dataclasses) for k, v in obj.items()}
    if into_dataclasses and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {}
        for f in dataclasses.fields(obj):
            if not f.init or f.name.startswith("_"):
                continue
            value = getattr(obj, f.name)
            new = _rebuild(value, leaf, leaves, into_dataclasses)
            if new is not value:
                changes[f.name] = new
        return dataclasses.replace(obj, **changes) if changes else obj
    return obj


def map_paths(obj: Any, fn: Callable[[Path], Path]) -> Any:
    """``obj`` with every :class:`~pathlib.Path` in it (through tuples, lists, dicts and dataclasses)
    replaced by ``fn(path)``; anything else is returned as is."""
    return _rebuild(obj, fn, (Path,), into_dataclasses=True)


def _strip(obj: Any, prefix: str) -> Any:
    """``obj`` with ``prefix`` taken out of every string in it (and every path)."""

    def leaf(x: str | Path) -> str | Path:
        if isinstance(x, str):
            return x.replace(prefix, "")
        return Path(str(x).replace(prefix, "")) if str(x).startswith(prefix) else x

    return _rebuild(obj, leaf, (str, Path), into_dataclasses=False)


def run_staged(func: Callable[..., Any], args: tuple[Any, ...], files: dict[str, Any],
               out_dirs: Sequence[str], get: Callable[[list[Any]], list[bytes]]) -> tuple[Any, dict[str, bytes]]:
    """On a worker: stage ``files`` (absolute path -> object ref, fetched with ``get``), run
    ``func(*args)`` on the staged copies, and return its result and
    the files it created or changed under ``out_dirs`` (absolute driver paths -> bytes)."""
    root = Path(tempfile.mkdtemp(prefix="qs-stage-"))
    prefix = str(root)

    def staged(p: Path) -> Path:
        p = Path(p).absolute()
        return root / p.relative_to(p.anchor)

    try:
        paths = list(files)
        for path, data in zip(paths, get([files[p] for p in paths])):
            target = staged(Path(path))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for d in out_dirs:
            staged(Path(d)).mkdir(parents=True, exist_ok=True)
        before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
        local_args = map_paths(args, staged)
        try:
            result = func(*local_args)
        except BaseException as exc:
            exc.args = tuple(_strip(a, prefix) for a in exc.args)
            raise
        back: dict[str, bytes] = {}
        for d in out_dirs:
            for p in sorted(staged(Path(d)).rglob("*")):
                if not p.is_file() or before.get(p) == (p.stat().st_size, p.stat().st_mtime_ns):
                    continue
                data = p.read_bytes()
                if p.suffix.lower() in _TEXT:
                    data = data.replace(prefix.encode(), b"")
                back["/" + str(p.relative_to(root))] = data
        return _strip(result, prefix), back
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Shipper:
    """The driver's side: files into the object store (once each), files back onto disk."""

    def __init__(self, put: Callable[[bytes], Any]) -> None:
        self._put = put
        self._refs: dict[tuple[str, int, int], Any] = {}
        self.bytes_out = 0  # sent to the object store
        self.bytes_back = 0  # received from workers
        self.files_out = 0

    def pack(self, args: Any, outputs: Sequence[Path] = ()) -> tuple[Any, dict[str, Any]]:
        """``args`` with absolute paths (a worker's working folder is not this one's), and object
        refs of the files they read (absolute path -> ref; the step's own ``outputs`` are not sent)."""
        args = map_paths(args, lambda p: Path(p).absolute())
        skip = {Path(o).absolute() for o in outputs}
        out = {}
        for p in needed_files(args):
            if p in skip:
                continue
            st = p.stat()
            key = (str(p), st.st_size, st.st_mtime_ns)
            if key not in self._refs:
                self._refs[key] = self._put(p.read_bytes())
                self.bytes_out += st.st_size
                self.files_out += 1
            out[str(p)] = self._refs[key]
        return args, out

    def land(self, files: dict[str, bytes]) -> None:
        """Write what a worker returned at its real paths, each file atomically."""
        for path, data in files.items():
            atomic_write_bytes(Path(path), data)
            self.bytes_back += len(data)

    def stats(self) -> dict[str, int]:
        return {"files_out": self.files_out, "bytes_out": self.bytes_out, "bytes_back": self.bytes_back}
