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


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir()`` would have given it.

    ``tempfile.mkstemp`` / ``mkdtemp`` create 0600 / 0700 whatever the umask: a result file made
    atomically from one would otherwise be private to its writer on a shared machine."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``
    (mode as the umask says, like any file the user creates)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, dumps(obj, indent=indent) + "\n")


class DuplicateKeyError(ValueError):
    """A JSON object names a key twice: json.loads would keep the last value and drop the first."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"a JSON object has the key {key!r} twice (the first value would be silently dropped)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKeyError(k)
        out[k] = v
    return out


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses an object with a repeated key (DuplicateKeyError)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def read_json(path: str | os.PathLike) -> Any:
    """A JSON document; a UTF-8 byte-order mark is accepted, a bad file (a repeated key included) is a
    ValueError naming it."""
    text = read_text(path, "JSON file")
    try:
        return loads_strict(text)
    except json.JSONDecodeError as e:
        raise LineError(f"invalid JSON ({e.msg}, column {e.colno})", path, e.lineno) from None
    except DuplicateKeyError as e:
        raise LineError(str(e), path) from None


# ------------------------------------------------------------------------------------ JSONL
#
# Inputs (items, predictions, gold, annotations) are read strictly: every line must be valid JSON,
# a bad line anywhere is an error naming ``file:line``, an empty file is an error, a byte-order
# mark is accepted. The only repair is of the tool's *own* append-only output when a run resumes
# (``read_own_jsonl``): a torn final line, the one a killed run was writing, is cut off and said.


class LineError(ValueError):
    """A bad input file; ``str()`` reads ``path:line: reason`` (or ``path: reason``)."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.reason, self.path, self.line = reason, None if path is None else str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}" if path is not None else reason)


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """UTF-8 text (a byte-order mark is dropped); missing -> FileNotFoundError, else LineError."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    if not p.is_file():
        raise LineError(f"{what} is not a regular file", p)
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LineError(f"{what} is not UTF-8 text (byte {e.start})", p, line) from None
    return text


def _parse_lines(text: str, path, what: str, *, allow_empty: bool, objects: bool) -> list[tuple[int, Any]]:
    out = []
    lines = text.split("\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if "\x00" in line:
            raise LineError(f"NUL bytes in {what} (a file cut or overwritten by a crash?)", path, i + 1)
        try:
            rec = loads_strict(line)
        except json.JSONDecodeError as e:
            torn = " (a torn last line: was the run that wrote it interrupted?)" if i == last and i > 0 else ""
            raise LineError(f"invalid JSON in {what} ({e.msg}){torn}", path, i + 1) from None
        except DuplicateKeyError as e:
            raise LineError(str(e), path, i + 1) from None
        if objects and not isinstance(rec, dict):
            raise LineError(f"each line of {what} must be a JSON object, got {type(rec).__name__}", path, i + 1)
        out.append((i + 1, rec))
    if not out and not allow_empty:
        raise LineError(f"{what} is empty (no record)", path)
    return out


def read_jsonl_lines(path: str | os.PathLike, what: str = "JSONL file", *, allow_empty: bool = False,
                     objects: bool = False) -> list[tuple[int, Any]]:
    """(line number, record) of every non-blank line of an input, strictly (see above)."""
    return _parse_lines(read_text(path, what), path, what, allow_empty=allow_empty, objects=objects)


def read_jsonl(path: str | os.PathLike, what: str = "JSONL file", *, allow_empty: bool = False) -> list[Any]:
    return [rec for _, rec in read_jsonl_lines(path, what, allow_empty=allow_empty)]


def iter_jsonl(path: str | os.PathLike, what: str = "JSONL file", *, allow_empty: bool = False) -> Iterator[Any]:
    yield from read_jsonl(path, what, allow_empty=allow_empty)


def cut_torn_tail(path: str | os.PathLike, log=None) -> int:
    """Cut a torn final line (bytes after the last newline that do not parse as JSON) off the
    tool's own append-only output; returns the bytes removed (0: nothing torn). Said on ``log``."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        tail = data[keep:]
        try:
            json.loads(tail.decode("utf-8-sig" if keep == 0 else "utf-8"))
            f.write(b"\n")  # a complete last record that only lacks its newline: keep it
            return 0
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
        f.truncate(keep)
    if log is not None:
        log.warning("%s: cut off a torn last line (%d bytes) left by an interrupted run", path, len(tail))
    return len(tail)


def read_own_jsonl(path: str | os.PathLike, what: str = "output file", *, log=None, repair_hint: str = "",
                   objects: bool = True) -> list[tuple[int, Any]]:
    """The tool's own append-only output, read to resume: a torn final line is cut off (and said);
    any other bad line is an error (``repair_hint`` names the way to repair it). Empty is fine."""
    if not Path(path).exists():
        return []
    cut_torn_tail(path, log)
    try:
        return read_jsonl_lines(path, what, allow_empty=True, objects=objects)
    except LineError as e:
        raise LineError(e.reason + (f"; {repair_hint}" if repair_hint else ""), e.path, e.line) from None


def drop_bad_lines(path: str | os.PathLike, objects: bool = True) -> list[tuple[int, str]]:
    """Rewrite the tool's own JSONL output keeping only valid lines (atomically); returns the
    (line number, text) of the lines dropped. The caller re-runs the items they held."""
    text = read_text(path, "output file")
    kept, dropped = [], []
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            ok = not objects or isinstance(rec, dict)
        except json.JSONDecodeError:
            ok = False
        (kept if ok else dropped).append(line if ok else (i, line))
    if dropped:
        atomic_write_text(path, "".join(ln + "\n" for ln in kept))
    return dropped


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


def _is_key_of(key: str, path: str) -> bool:
    """``key`` is a hash-cache key of ``path``: the path, then 2 (older keys) or 4 numeric fields."""
    if not key.startswith(path + "|"):
        return False
    fields = key[len(path) + 1:].split("|")
    return len(fields) in (2, 4) and all(f.isdigit() for f in fields)


def folder_hash(folder: str | os.PathLike, patterns: tuple[str, ...] = ("*",)) -> str:
    """sha256 over (relative name, sha256) of the files in ``folder`` matching ``patterns``.

    A 7B backbone is ~15 GB: each file's hash is cached by (absolute path, size, mtime, inode,
    ctime) in ``$AHA_CACHE/file_hashes.json`` (default ``~/.cache/aha``), so only the first run reads
    it all. The inode and ctime are in the key because mtime alone can be set back: a same-size file
    copied over with ``cp -p`` (or ``rsync -t``) keeps the old mtime, but gets a new ctime. A cache
    that cannot be written is simply not used.
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
        where = str(p.resolve())
        key = f"{where}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"
        digest = cache.get(key)
        if digest is None:
            digest = sha256_file(p)
            # one entry per path: earlier versions of this file (and the keys of older releases,
            # without inode and ctime) are dropped, so the cache does not grow with every change
            for stale in [k for k in cache if _is_key_of(k, where)]:
                del cache[stale]
            cache[key] = digest
            changed = True
        h.update(f"{p.relative_to(folder)}\0{digest}\n".encode())
    if changed:
        try:
            atomic_write_json(cache_file, cache)
        except OSError:
            pass
    return h.hexdigest()
