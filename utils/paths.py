"""Locations outside the repository (the read-only shared data beside the checkout)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$AHA_SHARED_DATA`` or ``../shared/data`` beside the checkout; None when absent."""
    env = os.environ.get("AHA_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None
