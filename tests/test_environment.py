"""The installed environment is the lock: what CI and a fresh machine get is what was tested."""
from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from utils.paths import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"
REQS = REPO_ROOT / "requirements.txt"


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"{path.name}: not an exact pin: {line!r}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def _requirements() -> list[Requirement]:
    reqs = []
    for line in REQS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs.append(Requirement(line))
    return reqs


def test_the_lock_pins_every_requirement_within_its_range():
    pins = _pins(LOCK)
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name == "torch":  # pinned in requirements.txt itself, installed first (scripts/setup_env.sh)
            assert str(req.specifier).startswith("=="), "torch must be pinned exactly in requirements.txt"
            assert name not in pins
            continue
        assert name in pins, f"{req.name} is required but not locked: run bash scripts/lock_env.sh"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock has {req.name}=={pins[name]}, requirements.txt wants {req.specifier}"


def _in_project_venv() -> bool:
    return Path(sys.prefix).resolve().parent == REPO_ROOT.resolve() or (Path(sys.prefix) / ".aha-installed").is_file()


@pytest.mark.skipif(not _in_project_venv(), reason="not running in the environment scripts/setup_env.sh built")
def test_the_environment_is_exactly_the_lock():
    pins = _pins(LOCK)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions()}
    wrong = {n: (v, installed.get(n)) for n, v in pins.items() if installed.get(n) != v}
    assert not wrong, f"installed versions differ from requirements.lock (locked, installed): {wrong}"
    # nothing beyond the lock, torch (installed on its own) and the venv's own tooling
    extra = set(installed) - set(pins) - {"torch", "pip", "setuptools", "wheel"}
    assert not extra, f"installed but not locked: {sorted(extra)}"
    torch_pin = next(str(r.specifier)[2:] for r in _requirements() if r.name == "torch")
    assert installed["torch"].split("+")[0] == torch_pin
