"""Protocol presets shared by the score-based scorers (TVSum, Mr.HiSum, QVHighlights).

Each scorer names its protocols as dicts of option defaults; a caller picks one by name and may
override any of its options, never add one (a misspelt option would otherwise be ignored silently).
"""
from __future__ import annotations

from typing import Mapping


def resolve_protocol(dataset: str, protocols: Mapping[str, dict], protocol: str | None, default: str,
                     options: dict | None) -> tuple[str, dict]:
    """(protocol name, its options with ``options`` applied); unknown names raise ValueError."""
    name = protocol or default
    if name not in protocols:
        raise ValueError(f"unknown {dataset} protocol {name!r}; choose from {sorted(protocols)}")
    opts = dict(protocols[name])
    for k, v in (options or {}).items():
        if k not in opts:
            raise ValueError(f"unknown option {k!r} for the {dataset} {name} protocol; allowed: {sorted(opts)}")
        opts[k] = v
    return name, opts
