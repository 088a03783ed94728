"""Caption metrics through pycocoevalcap's Java tools: PTB tokenisation, METEOR 1.5 (one process), CIDEr.

``MeteorSession`` keeps one METEOR process for a whole evaluation (its jar takes seconds to load
its paraphrase table): every (hypothesis, reference) pair is scored in one pipelined pass, and
several evaluations (several prediction files) can share the session.
"""
from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np



def _pycoco_dir(sub: str) -> Path:
    import pycocoevalcap  # the jars ship inside the package

    base = Path(pycocoevalcap.__path__[0]) / sub
    if not base.is_dir():
        raise RuntimeError(f"pycocoevalcap has no {sub}/ folder at {base}")
    return base


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """PTB-tokenise (lower-case, punctuation removed) with pycocoevalcap's tokenizer, one Java call."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    unique = sorted({t for t in texts if t.strip()})
    if not unique:
        return ["" for _ in texts]
    out = PTBTokenizer().tokenize({str(i): [{"caption": t}] for i, t in enumerate(unique)})
    table = {t: out[str(i)][0] for i, t in enumerate(unique)}
    return [table.get(t, "") for t in texts]


def _meteor_text(s: str) -> str:
    # '|||' separates fields and a newline ends a request in METEOR's stdio protocol.
    return " ".join(s.replace("|||", " ").split())


class MeteorSession:
    """One METEOR 1.5 process (the jar in pycocoevalcap, same flags as its ``Meteor``).

    ``stats`` scores many (hypothesis, reference) pairs in one pipelined pass; ``corpus_scores``
    and ``segment_scores`` turn stats into METEOR's corpus score of each group (what
    ``Meteor.compute_score`` returns as its first value) or per-pair scores. The jar takes ~5 s to
    load its paraphrase table, so start one session and reuse it.
    """

    def __init__(self, memory: str = "2G"):
        meteor_dir = _pycoco_dir("meteor")
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            ["java", "-jar", f"-Xmx{memory}", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=meteor_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, encoding="utf-8", bufsize=1)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], str] = {}

    def _exchange(self, lines: list[str], n_out: Sequence[int]) -> list[list[str]]:
        """Write ``lines`` from a thread (so neither pipe can fill up and block) while reading
        ``n_out[i]`` answer lines for line i."""
        proc = self._proc
        if proc.poll() is not None:
            raise RuntimeError(f"METEOR exited with code {proc.returncode}: {self._err()}")

        def write():
            try:
                for line in lines:
                    proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # the reader reports the failure

        writer = threading.Thread(target=write, daemon=True)
        with self._lock:
            writer.start()
            answers = []
            for n in n_out:
                got = []
                for _ in range(n):
                    line = proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"METEOR stopped answering: {self._err()}")
                    got.append(line.strip())
                answers.append(got)
            writer.join()
        return answers

    def _err(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]

    def stats(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """METEOR sufficient statistics of each (hypothesis, reference) pair (cached per pair)."""
        todo = sorted({(_meteor_text(h), _meteor_text(r)) for h, r in pairs} - self._cache.keys())
        if todo:
            answers = self._exchange([f"SCORE ||| {r} ||| {h}" for h, r in todo], [1] * len(todo))
            self._cache.update({pair: a[0] for pair, a in zip(todo, answers)})
        return [self._cache[(_meteor_text(h), _meteor_text(r))] for h, r in pairs]

    def corpus_scores(self, groups: Sequence[Sequence[str]]) -> list[float]:
        """METEOR corpus score of each non-empty group of stats (one EVAL request per group)."""
        if any(not g for g in groups):
            raise ValueError("empty METEOR group")
        answers = self._exchange(["EVAL ||| " + " ||| ".join(g) for g in groups], [len(g) + 1 for g in groups])
        return [float(a[-1]) for a in answers]

    def segment_scores(self, stats: Sequence[str], chunk: int = 2000) -> list[float]:
        """Per-pair METEOR scores (segment scores do not depend on the other pairs of the request)."""
        chunks = [list(stats[i:i + chunk]) for i in range(0, len(stats), chunk)]
        if not chunks:
            return []
        answers = self._exchange(["EVAL ||| " + " ||| ".join(c) for c in chunks], [len(c) + 1 for c in chunks])
        return [float(x) for a in answers for x in a[:-1]]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> "MeteorSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cider_score(pairs: Sequence[tuple[str, str]]) -> float:
    """pycocoevalcap CIDEr (n=4, sigma=6) of (hypothesis, reference) pairs; IDF over these pairs."""
    from pycocoevalcap.cider.cider import Cider

    if not pairs:
        return 0.0
    if not any(r.split() for _, r in pairs):
        return 0.0  # no reference n-gram at all: CIDEr is 0 (pycocoevalcap would fail on max([]))
    gts = {i: [r] for i, (_, r) in enumerate(pairs)}
    res = {i: [h] for i, (h, _) in enumerate(pairs)}
    score, _ = Cider().compute_score(gts, res)
    return float(np.nan_to_num(score))
