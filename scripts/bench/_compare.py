"""Side-by-side runs of the previous engine and this one: each measurement runs in its own process,
importing ``models`` from either an exported git revision (the old path) or this checkout.

The old path is a revision exported with ``git archive`` into a temporary folder (nothing in the
working tree changes); the workers only use the API both engines share (``StreamingEngine(model, tok,
EngineConfig(...))``, ``add_query``, ``encode_images``, ``process_frame``) plus ``process_frames`` on
the new one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def export_revision(rev: str) -> Path:
    """The tree of ``rev`` in a temporary folder (kept for the process's lifetime)."""
    out = Path(tempfile.mkdtemp(prefix=f"aha_{rev[:10]}_"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True, text=True).stdout.strip()
    (out / ".revision").write_text(sha)
    return out


def head_revision() -> str:
    """This checkout's commit (+dirty); ``AHA_REVISION`` where the tree travels without git (a GPU machine)."""
    if os.environ.get("AHA_REVISION"):
        return os.environ["AHA_REVISION"]
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return sha + ("+dirty" if dirty else "")


def run_worker(script: Path, src: Path, args: list[str], threads: int = 1) -> dict:
    """Run ``script --worker --src SRC ARGS`` in a fresh process; returns the JSON it prints last."""
    cmd = [sys.executable, str(script), "--worker", "--src", str(src), "--threads", str(threads), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(src))
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def import_tree(src: str) -> None:
    """Make ``import models`` resolve to the tree at ``src`` (called first thing in a worker)."""
    sys.path.insert(0, str(Path(src).resolve()))
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]


def add_model_args(ap) -> None:
    """The model flags every bench script takes: a preset at random init, where, in what precision, and
    the real Qwen2 tokenizer (a local folder; ../shared/data by default)."""
    ap.add_argument("--preset", default="aha-tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "data" / "tokenizers" / "qwen2"))
