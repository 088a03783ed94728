"""Load a command-line script (``scripts/``, ``datasets/``) as a module: scripts are not packages,
so the tests import them by path, through this one loader. (Not named ``scripts.py``: tests/ is on
sys.path, and that name would shadow the repository's ``scripts`` folder.)"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(relpath: str, name: str | None = None, register: bool = False) -> ModuleType:
    """The script at ``REPO / relpath`` as a fresh module (named ``name``, default ``aha_script_<stem>``).

    ``register``: put it in ``sys.modules`` under that name (once; later calls return the same module),
    for scripts whose dataclasses, pickling or worker processes look their module up by name."""
    path = REPO / relpath
    name = name or f"aha_script_{path.stem}"
    if register and name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
