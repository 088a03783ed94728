"""Generators of bad inputs for the fuzz suite (tests/test_fuzz.py): poisoned JSON records and
damaged JSON-lines files, and the check of a clean error."""
from __future__ import annotations

import copy
import fnmatch
import json

POISON = [float("nan"), float("inf"), float("-inf"), None, "x", True, [1.0], {"a": 1}]


def _paths(obj, path=()):
    """(path, value) of every node below ``obj`` (dict keys and list indices)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield path + (k,), v
        yield from _paths(v, path + (k,))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()


def mutate_records(records: list, draw_index: int, draw_leaf: int, draw_op: int, keep: tuple = (),
                   optional: tuple = ()) -> tuple[list, str]:
    """A poisoned copy of JSON records: a number replaced by a non-number (NaN, inf, null, text,
    a boolean, a list, an object) or a required key deleted; ``keep``: keys never touched (free
    text), ``optional``: keys whose absence is a valid input (never deleted)."""
    out = copy.deepcopy(records)
    rec = out[draw_index % len(out)]
    numbers = [(p, v) for p, v in _paths(rec) if isinstance(v, (int, float)) and not isinstance(v, bool) and not set(p) & set(keep)]
    keys = [p for p, _ in _paths(rec) if isinstance(p[-1], str) and not set(p) & set(keep)
            and not any(fnmatch.fnmatch("/".join(map(str, p)), pat) for pat in optional)]
    if draw_op % 3 and numbers:
        p, _ = numbers[draw_leaf % len(numbers)]
        value = POISON[draw_op % len(POISON)]
        _set(rec, p, value)
        return out, f"{'/'.join(map(str, p))} = {value!r}"
    p = keys[draw_leaf % len(keys)]
    _set(rec, p, _DELETE)
    return out, f"del {'/'.join(map(str, p))}"


FILE_DAMAGE = ["torn_middle", "nul", "bad_utf8", "non_object", "duplicate", "empty", "blank_only", "garbage_line"]
NEUTRAL = ["bom", "crlf", "blank_lines", "extra_key"]


def damage_jsonl(records: list, kind: str) -> bytes:
    lines = [json.dumps(r) for r in records]
    if kind == "torn_middle":
        lines[0] = lines[0][: len(lines[0]) // 2]
    elif kind == "nul":
        lines[len(lines) // 2] = "\x00" * 8 + lines[len(lines) // 2]
    elif kind == "bad_utf8":
        return ("\n".join(lines) + "\n").encode().replace(b"{", b"{\xff", 1)
    elif kind == "non_object":
        lines.insert(1, "[1, 2, 3]")
    elif kind == "duplicate":
        lines.append(lines[0])
    elif kind == "empty":
        return b""
    elif kind == "blank_only":
        return b"\n \n\r\n"
    elif kind == "garbage_line":
        lines.insert(len(lines) // 2, "this is not json")
    elif kind == "bom":
        return b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode()
    elif kind == "crlf":
        return ("\r\n".join(lines) + "\r\n").encode()
    elif kind == "blank_lines":
        return ("\n\n".join(lines) + "\n\n\n").encode()
    elif kind == "extra_key":
        lines = [json.dumps({**r, "zz_unknown_extra": 1}) for r in records]
    return ("\n".join(lines) + "\n").encode()


def clean_error(rc: int, err: str, prog: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err[-3000:]
    assert rc == 2 and lines and f"{prog}: error:" in lines[-1], (rc, err[-2000:])
