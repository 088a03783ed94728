"""Input checks shared by every benchmark module: files, records, numbers, spans, ids, options.

Every boundary of the benchmark layer (raw annotations, gold files, prediction files, options)
goes through these helpers, so a bad input is a clear ``InputError`` naming the file and line,
never a changed metric with exit status 0:

* files: missing -> FileNotFoundError; empty -> refused; JSON vs JSONL told apart by content
  (never by suffix); a JSONL line that is not a JSON object (``null``, a number, a list) or not
  valid JSON (a torn last line of an interrupted run included) -> refused with ``file:line``;
* numbers: booleans, strings, null, NaN and infinities are refused where a number is expected
  (``np.asarray([True])`` would silently become 1.0);
* times and spans: finite and non-negative, start <= end, inside the video. What happens to a
  span that runs past the video's end is the caller's stated policy: ``clip`` (counted and
  recorded) or ``refuse``;
* ids: not null (``str(None)`` would become the id "None"), unique, and known to the gold;
* options: only the names a protocol defines (a misspelt option would otherwise be ignored).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from utils.io import DuplicateKeyError, LineError, loads_strict
from utils.io import read_text as io_read_text

# the span policies a caller may choose for a span that ends after the video does
SPAN_POLICIES = ("clip", "refuse")


class InputError(LineError):
    """Invalid benchmark input; ``str()`` reads ``path:line: reason`` (or ``path: reason``)."""


def where(path: str | Path | None, line: int | None = None) -> str:
    """``path:line`` (or ``path``) for messages."""
    if path is None:
        return "<input>"
    return f"{path}:{line}" if line is not None else str(path)


# ------------------------------------------------------------------------------------ files


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_text(path: str | Path, what: str) -> str:
    """UTF-8 text (a byte-order mark is dropped); empty or not UTF-8 -> InputError."""
    path = require_file(path, what)
    try:
        text = io_read_text(path, what)
    except LineError as e:
        raise InputError(e.reason, e.path, e.line) from None
    if "\x00" in text:
        raise InputError(f"{what} holds NUL bytes (a file cut or overwritten by a crash?)", path,
                         text[: text.index("\x00")].count("\n") + 1)
    if not text.strip():
        raise InputError(f"{what} is empty", path)
    return text


def _jsonl_records(text: str, path: Path, what: str) -> list[tuple[int, dict]]:
    out = []
    # "\n" only: str.splitlines would also split at U+2028 and other separators valid inside a JSON string
    lines = text.rstrip("\n").split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = loads_strict(line)
        except json.JSONDecodeError as e:
            torn = " (a torn last line: was the run interrupted?)" if i == len(lines) else ""
            raise InputError(f"invalid JSON in {what} ({e.msg}){torn}", path, i) from None
        except DuplicateKeyError as e:
            raise InputError(str(e), path, i) from None
        if not isinstance(rec, dict):
            raise InputError(f"each line of {what} must be a JSON object, got {_kind(rec)}", path, i)
        out.append((i, rec))
    if not out:
        raise InputError(f"{what} holds no record", path)
    return out


def read_jsonl(path: str | Path, what: str = "JSONL file") -> list[tuple[int, dict]]:
    """(line number, record) of every non-blank line; each must be a JSON object."""
    path = Path(path)
    return _jsonl_records(read_text(path, what), path, what)


def read_json_or_jsonl(path: str | Path, what: str = "JSON file", record_keys: Sequence[str] = ()) -> tuple[str, Any]:
    """("json", the document) or ("jsonl", [(line, record), ...]), told apart by content.

    A one-line file holding one object is both; it is read as a one-record JSONL file when the
    object has one of ``record_keys`` (the keys a record of that format carries)."""
    path = Path(path)
    text = read_text(path, what)
    try:
        doc = loads_strict(text)
        if not isinstance(doc, (dict, list)):
            raise InputError(f"{what} must be a JSON object (or lines of them), got {_kind(doc)}", path, 1)
        if isinstance(doc, dict) and len(text.strip().splitlines()) == 1 and any(k in doc for k in record_keys):
            return "jsonl", [(1, doc)]
        return "json", doc
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":  # one broken document, not a JSON-lines file
            n_lines = len(text.rstrip().splitlines())
            torn = " (a torn last line: was the run interrupted?)" if n_lines > 1 and e.lineno == n_lines else ""
            raise InputError(f"invalid JSON in {what} ({e.msg}){torn}", path, e.lineno) from None
    except DuplicateKeyError as e:
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
        if len(lines) > 1 and all(ln.startswith("{") and ln.endswith("}") for ln in lines):
            return "jsonl", _jsonl_records(text, path, what)  # JSON lines: the error names the line
        raise InputError(str(e), path, 1 if len(lines) == 1 else None) from None
    return "jsonl", _jsonl_records(text, path, what)


def sniff_lines(path: str | Path, what: str) -> list[str]:
    """The non-blank lines of a text file (for tab/comma formats detected by content)."""
    return [ln for ln in read_text(path, what).splitlines() if ln.strip()]


def _kind(x: Any) -> str:
    return "null" if x is None else type(x).__name__


# ---------------------------------------------------------------------------------- numbers


def number(x: Any, what: str, path=None, line=None, *, min_value: float | None = None,
           positive: bool = False) -> float:
    """A finite float; booleans, strings, null and NaN/inf are refused."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        if isinstance(x, str):
            try:
                v = float(x)
            except ValueError:
                raise InputError(f"{what} is not a number: {x!r}", path, line) from None
            return number(v, what, path, line, min_value=min_value, positive=positive)
        raise InputError(f"{what} must be a number, got {_kind(x)} {x!r}", path, line)
    v = float(x)
    if not math.isfinite(v):
        raise InputError(f"{what} is not finite: {x!r}", path, line)
    if positive and not v > 0:
        raise InputError(f"{what} must be > 0, got {v:g}", path, line)
    if min_value is not None and v < min_value:
        raise InputError(f"{what} must be >= {min_value:g}, got {v:g}", path, line)
    return v


def _scan(x: Any, what: str, path, line) -> None:
    if isinstance(x, (list, tuple)):
        for v in x:
            if isinstance(v, (list, tuple)):
                _scan(v, what, path, line)
            elif isinstance(v, bool) or v is None or isinstance(v, str):
                raise InputError(f"{what} must hold numbers only, found {_kind(v)} {v!r}", path, line)


def numbers(x: Any, what: str, path=None, line=None, *, ndim: int = 1, allow_empty: bool = False,
            min_value: float | None = None) -> np.ndarray:
    """A finite float64 array of ``ndim`` dimensions (JSON lists checked element by element)."""
    if x is None:
        raise InputError(f"{what} is missing (null)", path, line)
    _scan(x, what, path, line)
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a{' nested' if ndim > 1 else ''} list of numbers", path, line) from None
    if a.size == 0 and allow_empty:
        return a.reshape((0,) * ndim) if ndim > 1 else a.reshape(0)
    if a.ndim != ndim:
        raise InputError(f"{what} must be {ndim}-D, got shape {a.shape}", path, line)
    if a.size == 0:
        raise InputError(f"{what} is empty", path, line)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} contains NaN or infinite values", path, line)
    if min_value is not None and np.any(a < min_value):
        raise InputError(f"{what} has values below {min_value:g} (min {a.min():g})", path, line)
    return a


def frame_times(t: Any, what: str, path=None, line=None, duration: float | None = None,
                slack: float | None = None) -> np.ndarray:
    """Frame times in seconds: finite, >= 0, strictly increasing and, when ``duration`` is known,
    not past its end by more than ``slack`` (default: two frame periods, at least 1 s).

    Reversed, repeated (all-zero) or rescaled (milliseconds, x1000) times would otherwise
    silently re-map scores onto the wrong clips."""
    a = numbers(t, what, path, line, min_value=0.0)
    if len(a) > 1 and not np.all(np.diff(a) > 0):
        k = int(np.flatnonzero(np.diff(a) <= 0)[0])
        raise InputError(f"{what} must increase strictly: {a[k]:g} is followed by {a[k + 1]:g}", path, line)
    if duration is not None:
        if slack is None:
            period = float(np.median(np.diff(a))) if len(a) > 1 else 0.0
            slack = max(1.0, 2.0 * period)
        if a[-1] > duration + slack:
            raise InputError(f"{what} run to {a[-1]:g} s, past the video's {duration:g} s "
                             "(times in milliseconds? another video's predictions?)", path, line)
    return a


def response_slack(fps: Any) -> float:
    """How far past the video's duration a record's response time may lie: what ``frame_times`` allows
    a stream's frames (two frame periods, at least 1 s) when the record gives its ``fps``, else 1 s."""
    return max(1.0, 2.0 / fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0 else 1.0


def stream_response_times(responses: Any, times: np.ndarray, qid: str, path=None, line=None) -> None:
    """A stream record's responses (``test.run_benchmark``) are made at its frames: the time of every
    assistant response with text must be one of the stream's frame times. A time at no frame (seconds
    written as milliseconds, another video's responses, a shifted clock) or none at all (null, -1:
    the untimed answers of offline baselines, which MAGQA matches with *every* gold span) is refused:
    scored, it would silently move or widen the response."""
    if not isinstance(responses, list):
        raise InputError(f"item {qid}: 'responses' must be a list", path, line)
    frames = np.asarray(times, dtype=np.float64)
    for r in responses:
        if not isinstance(r, dict) or r.get("role", "assistant") == "user" or not str(r.get("content") or "").strip():
            continue  # what the benchmark module ignores (or refuses itself)
        t = r.get("time")
        if t is None:
            raise InputError(f"item {qid}: a response without a time in a stream record (responses are made at "
                             "frames; untimed answers belong to offline predictions)", path, line)
        t = number(t, f"item {qid} response time", path, line)
        if frames.size == 0 or not np.any(np.abs(frames - t) <= 1e-6):
            last = f"{frames[-1]:g} s" if frames.size else "none"
            raise InputError(f"item {qid}: a response at {t:g} s, at no frame of its stream (last frame {last}): "
                             "responses are made at frame times (times in milliseconds? another video's "
                             "responses?)", path, line)


# ------------------------------------------------------------------------------------ spans


def span(pair: Any, what: str, path=None, line=None, duration: float | None = None,
         beyond: str = "refuse", allow_empty: bool = True) -> tuple[float, float, bool]:
    """(start, end, clipped) of a [start, end] pair in seconds.

    Refused: not a pair, non-finite, start < 0, start > end (reversed), an empty span when
    ``allow_empty`` is False, a start at or after the video's end. An end past ``duration`` is
    clipped to it (``beyond="clip"``; ``clipped`` says so) or refused (``beyond="refuse"``).
    """
    if beyond not in SPAN_POLICIES:
        raise ValueError(f"beyond must be one of {SPAN_POLICIES}, got {beyond!r}")
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise InputError(f"{what} must be [start, end], got {pair!r}", path, line)
    s = number(pair[0], f"{what} start", path, line)
    e = number(pair[1], f"{what} end", path, line)
    if s < 0:
        raise InputError(f"{what} starts before 0: [{s:g}, {e:g}]", path, line)
    if e < s:
        raise InputError(f"{what} is reversed (end before start): [{s:g}, {e:g}]", path, line)
    if not allow_empty and e == s:
        raise InputError(f"{what} is empty: [{s:g}, {e:g}]", path, line)
    clipped = False
    if duration is not None:
        if s >= duration:
            raise InputError(f"{what} [{s:g}, {e:g}] starts at or after the video's end ({duration:g} s)", path, line)
        if e > duration:
            if beyond == "refuse":
                raise InputError(f"{what} [{s:g}, {e:g}] ends after the video ({duration:g} s)", path, line)
            e, clipped = float(duration), True
    return s, e, clipped


def duration(x: Any, what: str, path=None, line=None) -> float:
    """A video duration: a finite number > 0."""
    return number(x, what, path, line, positive=True)


# -------------------------------------------------------------------------------------- ids


def item_id(x: Any, what: str = "id", path=None, line=None) -> str:
    """A record id as text; null, empty text, booleans and non-scalar ids are refused."""
    if x is None or isinstance(x, bool) or not isinstance(x, (str, int, np.integer)):
        raise InputError(f"{what} must be a string or an integer, got {_kind(x)} {x!r}", path, line)
    s = str(x).strip()
    if not s:
        raise InputError(f"{what} is empty", path, line)
    return s


class UniqueIds:
    """Collects ids and refuses a repeat, naming where the first one was."""

    def __init__(self, what: str = "id"):
        self.what = what
        self.seen: dict[str, str] = {}

    def add(self, i: str, path=None, line=None) -> str:
        if i in self.seen:
            raise InputError(f"duplicate {self.what} {i!r} (first at {self.seen[i]})", path, line)
        self.seen[i] = where(path, line)
        return i


def match_ids(pred_ids: Iterable[str], gold_ids: Iterable[str], *, missing: str = "error",
              extra: str = "error", what: str = "item") -> tuple[list[str], dict]:
    """The gold ids to score, in gold order, and a record of what was left out.

    ``missing`` (gold ids without prediction): "error" | "drop" (left out, counted: the
    reference's ``match_number=False``) | "count" (kept: the benchmark scores them by its own
    rule, e.g. IoU 0). ``extra`` (predicted ids unknown to the gold): "error" | "drop". No shared
    id at all is always an error.
    """
    gold_list = list(dict.fromkeys(gold_ids))
    pred_set = set(pred_ids)
    gold_set = set(gold_list)
    miss = [i for i in gold_list if i not in pred_set]
    unknown = sorted(pred_set - gold_set)
    if not pred_set & gold_set:
        raise InputError(f"no predicted {what} id is in the gold ({len(pred_set)} predicted, e.g. "
                         f"{sorted(pred_set)[:3]}; gold has {len(gold_list)}, e.g. {gold_list[:3]})")
    if unknown and extra == "error":
        raise InputError(f"{len(unknown)} predicted {what} ids are not in the gold, e.g. {unknown[:5]} "
                         "(predictions of another split or data set?)")
    if miss and missing == "error":
        raise InputError(f"{len(miss)} gold {what} ids have no prediction, e.g. {miss[:5]}; the official protocol "
                         "scores every item (option match_number=false scores only the predicted ones, as the "
                         "MMDuet/Aha reference does)")
    keep = gold_list if missing == "count" else [i for i in gold_list if i in pred_set]
    record = {"n_gold": len(gold_list), "n_predicted": len(gold_list) - len(miss), "n_scored": len(keep),
              "n_missing": len(miss), "missing_policy": missing, "missing_ids": miss[:20],
              "n_unknown_predictions": len(unknown) if extra == "drop" else 0}
    return keep, record


# ---------------------------------------------------------------------------------- options


def resolve_protocol(dataset: str, protocols: Mapping[str, Mapping[str, Any]], protocol: str | None,
                     default: str, options: Mapping[str, Any] | None, aliases: Mapping[str, str] | None = None
                     ) -> tuple[str, dict]:
    """(protocol name, its option defaults with ``options`` applied); an unknown protocol or option
    name raises ValueError (a caller may override a protocol's options, never add one)."""
    name = (aliases or {}).get(protocol, protocol) if protocol is not None else default
    if name not in protocols:
        raise ValueError(f"unknown {dataset} protocol {protocol!r}; choose from {sorted(protocols)}")
    opts = dict(protocols[name])
    for k, v in (options or {}).items():
        if k not in opts:
            raise ValueError(f"unknown option {k!r} for the {dataset} {name} protocol; allowed: {sorted(opts)}")
        opts[k] = v
    return name, opts


def choice(value: Any, allowed: Sequence, what: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {list(allowed)}, got {value!r}")
    return value


def as_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {value!r}")
    return value


def as_int(value: Any, what: str, min_value: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{what} must be >= {min_value}, got {value}")
    return int(value)
