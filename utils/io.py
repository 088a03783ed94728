"""Atomic and append-only file helpers.

Every result file in the project goes through these so that a run killed half-way never leaves a
truncated JSON behind (atomic replace) and streaming outputs keep every line written so far
(append + flush per record).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def _default(obj: Any):
    # numpy / torch scalars and arrays show up in metric dicts; make them plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, default=_default, ensure_ascii=False, allow_nan=False)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, dumps(obj, indent=indent) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike) -> Iterator[Any]:
    """Yield records; a torn last line (a run killed mid-write) is skipped, any other bad line raises."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                return
            raise ValueError(f"{path}:{i + 1}: invalid JSON line") from None


class JsonlWriter:
    """Append-only JSONL writer that flushes every record (outputs survive a crash line by line)."""

    def __init__(self, path: str | os.PathLike, mode: str = "a"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, mode, encoding="utf-8")

    def write(self, record: Any) -> None:
        self._f.write(dumps(record) + "\n")
        self._f.flush()

    def write_many(self, records: Iterable[Any]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN; record undefined metrics as null rather than a fake number."""
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (provenance records and determinism checks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_cache_file() -> Path:
    root = os.environ.get("AHA_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aha")
    return Path(root) / "file_hashes.json"


def folder_hash(folder: str | os.PathLike, patterns: tuple[str, ...] = ("*",)) -> str:
    """sha256 over (relative name, sha256) of the files in ``folder`` matching ``patterns``.

    A 7B backbone is ~15 GB: each file's hash is cached by (absolute path, size, mtime) in
    ``$AHA_CACHE/file_hashes.json`` (default ``~/.cache/aha``), so only the first run reads it all.
    A cache that cannot be written is simply not used.
    """
    import hashlib

    folder = Path(folder)
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"{folder}: no files matching {list(patterns)} to hash")
    cache_file = _hash_cache_file()
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    changed = False
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        digest = cache.get(key)
        if digest is None:
            digest = sha256_file(p)
            cache[key] = digest
            changed = True
        h.update(f"{p.relative_to(folder)}\0{digest}\n".encode())
    if changed:
        try:
            atomic_write_json(cache_file, cache)
        except OSError:
            pass
    return h.hexdigest()
