"""YouCook2 dense video captioning, scored as the official dense-captioning evaluator does.

The official evaluator is Vid2Seq's re-implementation of ranjaykrishna/densevid_eval, used by
MMDuet and Aha (``test/dvc/eval_dvc.py``). Per video:

- **Detection** at tIoU {0.3, 0.5, 0.7, 0.9}: a prediction / GT segment is covered when some
  pair has IoU *strictly* above the threshold; precision = covered predictions / #predictions,
  recall = covered GT / #GT; ``F1_Score`` = 2PR/(P+R) of the threshold-averaged P and R.
- **Captioning** at each threshold: every (prediction, GT) pair with IoU >= threshold is a
  pair; a prediction that matches nothing is paired with a random letter string so it scores 0
  but still counts. CIDEr (pycocoevalcap, IDF over this video's pairs) and METEOR 1.5 (corpus
  score of this video's pairs) on PTB-tokenised text, then averaged over the thresholds.
- **SODA_c**: METEOR of every (prediction, GT) pair times their IoU (threshold 0), the best
  order-preserving assignment by dynamic programming, F = 2pr/(p+r) with p = score/#pred,
  r = score/#GT.

Metrics are computed per video and then averaged over videos, x100 (``n_preds`` is a plain
mean). The IoU is the official one: intersection / (union + 1e-8), so an IoU of exactly theta
(common with integer GT times and a 2-s frame grid) does *not* count at ">= theta".

Differences from the reference *driver* (``evaluate.py --func dense_captioning``), on purpose:
GT videos without a prediction are scored as empty predictions (0) instead of being skipped, and
the streaming conversion keeps the first caption (``responses_to_segments``). The reference's
behaviour is available only on request: ``protocol="reference"`` (drops the first caption and
skips GT videos without a prediction), or the options ``drop_first_caption`` / ``missing="skip"``.

Java is needed (METEOR and the PTB tokenizer jars shipped with pycocoevalcap). METEOR is started
once per evaluation (``MeteorSession``) and every pair is scored in one pass.
"""
from __future__ import annotations

import logging
import random
import string
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from test.postprocess import FusionParams
from utils.io import iter_jsonl, read_json

log = logging.getLogger(__name__)

DATASET = "youcook2"
IOU_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
IOU_EPS = 1e-8  # the official evaluator's union + 1e-8
RANDOM_REF_LEN = (10, 20)  # length range of the random reference of an unmatched prediction
DEFAULT_SEED = 0
PROTOCOLS = ("official", "reference")
MISSING_MODES = ("empty", "skip")


# ------------------------------------------------------------------------------------ data


@dataclass
class DenseCaptions:
    segments: np.ndarray  # [K, 2] seconds
    captions: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        if len(self.segments) != len(self.captions):
            raise ValueError(f"{len(self.segments)} segments but {len(self.captions)} captions")

    def __len__(self) -> int:
        return len(self.captions)


def load_gold(gold_file: str | Path) -> dict[str, DenseCaptions]:
    """ActivityNet-captions JSON: {video_key: {"duration", "timestamps": [[s, e]], "sentences"}}."""
    data = read_json(gold_file)
    if not isinstance(data, dict):
        raise ValueError(f"{gold_file}: expected a JSON object keyed by video id")
    out = {}
    for vid, v in data.items():
        if not isinstance(v, dict) or "timestamps" not in v or "sentences" not in v:
            raise ValueError(f"{gold_file}: video {vid!r} lacks 'timestamps' or 'sentences'")
        if len(v["timestamps"]) != len(v["sentences"]) or not v["sentences"]:
            raise ValueError(f"{gold_file}: video {vid!r} has {len(v['timestamps'])} timestamps "
                             f"and {len(v['sentences'])} sentences")
        out[str(vid)] = DenseCaptions(v["timestamps"], [str(s) for s in v["sentences"]])
    return out


def responses_to_segments(responses: Iterable[Mapping], drop_first_caption: bool = False
                          ) -> DenseCaptions:
    """Streaming responses -> captioned segments.

    Responses are taken in time order (user turns and empty texts ignored); consecutive identical
    texts are one caption, and its segment runs from the previous caption's last emission time
    (0 for the first caption) to its own last emission time. ``drop_first_caption`` reproduces
    the reference, which lost the first caption (it had no start time).
    """
    turns = []
    for r in responses:
        if r.get("role", "assistant") == "user":
            continue
        text = str(r.get("content") or "").strip()
        if text:
            if r.get("time") is None:
                raise ValueError(f"response without a time: {r!r}")
            turns.append((float(r["time"]), text))
    turns.sort(key=lambda x: x[0])  # stable: equal times keep their order
    segs: list[tuple[float, float]] = []
    caps: list[str] = []
    prev_end = 0.0
    cur_text, cur_last = None, None
    for time, text in turns:
        if text == cur_text:
            cur_last = time
            continue
        if cur_text is not None:
            segs.append((prev_end, cur_last))
            caps.append(cur_text)
            prev_end = cur_last
        cur_text, cur_last = text, time
    if cur_text is not None:
        segs.append((prev_end, cur_last))
        caps.append(cur_text)
    if drop_first_caption and caps:
        segs, caps = segs[1:], caps[1:]
    return DenseCaptions(np.array(segs, dtype=np.float64).reshape(-1, 2), caps)


def load_predictions(pred_file: str | Path, drop_first_caption: bool = False) -> dict[str, DenseCaptions]:
    """Streaming JSONL (``responses``) or a densevid JSON ({"results": {vid: [{timestamp, sentence}]}}
    or {vid: [{timestamp, caption}]}) with ready-made segments."""
    path = Path(pred_file)
    if path.suffix == ".json":
        data = read_json(path)
        data = data.get("results", data) if isinstance(data, dict) else None
        if not isinstance(data, dict):
            raise ValueError(f"{pred_file}: expected {{video: [{{timestamp, sentence}}]}}")
        out = {}
        for vid, items in data.items():
            try:
                segs = [it["timestamp"] for it in items]
                caps = [str(it.get("sentence", it.get("caption"))) for it in items]
            except (KeyError, TypeError) as e:
                raise ValueError(f"{pred_file}: video {vid!r}: bad entry ({e})") from None
            out[str(vid)] = DenseCaptions(np.array(segs, dtype=np.float64).reshape(-1, 2), caps)
        return out
    out = {}
    for rec in iter_jsonl(path):
        if "id" not in rec:
            raise ValueError(f"{pred_file}: prediction record without 'id'")
        out[str(rec["id"])] = responses_to_segments(rec.get("responses") or [], drop_first_caption)
    return out


# ------------------------------------------------------------------------ detection + SODA


def segment_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """The official tIoU: intersection / (union + 1e-8); disjoint segments have union = sum of lengths."""
    s1, e1 = min(a), max(a)
    s2, e2 = min(b), max(b)
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = min(max(e1, e2) - min(s1, s2), (e1 - s1) + (e2 - s2))
    return inter / (union + IOU_EPS)


def iou_matrix(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """[n_gold, n_pred] IoU matrix."""
    return np.array([[segment_iou(p, g) for p in pred] for g in gold]).reshape(len(gold), len(pred))


def detection_scores(ious: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS
                     ) -> tuple[list[float], list[float]]:
    """Precision and recall per threshold from a [n_gold, n_pred] IoU matrix (strict IoU > thr)."""
    n_gold, n_pred = ious.shape
    precision, recall = [], []
    for thr in thresholds:
        hit = ious > thr
        precision.append(float(hit.any(axis=0).sum()) / max(n_pred, 1))
        recall.append(float(hit.any(axis=1).sum()) / n_gold)
    return precision, recall


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def ordered_assignment_score(scores: np.ndarray) -> float:
    """Best total score of a one-to-one, order-preserving matching of rows to columns.

    dp[i][j] = max(dp[i-1][j], dp[i][j-1], dp[i-1][j-1] + s[i-1][j-1]) (SODA's DP; scores >= 0).
    """
    m, n = scores.shape
    dp = np.zeros((m + 1, n + 1))
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            dp[i, j] = max(dp[i - 1, j], dp[i, j - 1], dp[i - 1, j - 1] + scores[i - 1, j - 1])
    return float(dp[m, n])


def soda_c(ious: np.ndarray, meteor: np.ndarray) -> float:
    """SODA_c F-measure from [n_gold, n_pred] IoU and METEOR matrices (tIoU threshold 0)."""
    n_gold, n_pred = ious.shape
    if n_pred == 0 or n_gold == 0:
        return 0.0
    best = ordered_assignment_score(ious * meteor)
    return f1(best / n_pred, best / n_gold)


def caption_pairs(ious: np.ndarray, threshold: float) -> list[tuple[int, int | None]]:
    """(pred, gold) pairs with IoU >= threshold, in pred order; (pred, None) for an unmatched pred."""
    pairs: list[tuple[int, int | None]] = []
    for p in range(ious.shape[1]):
        matched = np.flatnonzero(ious[:, p] >= threshold)
        if matched.size:
            pairs.extend((p, int(g)) for g in matched)
        else:
            pairs.append((p, None))
    return pairs


# ------------------------------------------------------------------------- Java text tools


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


# -------------------------------------------------------------------------------- scoring


def evaluate_dense_captions(preds: Mapping[str, DenseCaptions], gold: Mapping[str, DenseCaptions],
                            thresholds: Sequence[float] = IOU_THRESHOLDS, captions: bool = True,
                            seed: int = DEFAULT_SEED, meteor: MeteorSession | None = None) -> dict:
    """Per-video metrics averaged over every GT video (a video without prediction scores 0).

    ``captions=False`` skips CIDEr / METEOR / SODA_c (no Java needed). ``meteor``: a running
    session to reuse (else one is started and closed here).
    """
    rng = random.Random(seed)
    empty = DenseCaptions(np.zeros((0, 2)), [])
    keys = list(gold)
    per_video: dict[str, dict] = {}
    ious = {}
    for vid in keys:
        p, g = preds.get(vid, empty), gold[vid]
        ious[vid] = iou_matrix(p.segments, g.segments)
        precision, recall = detection_scores(ious[vid], thresholds)
        pm, rm = float(np.mean(precision)), float(np.mean(recall))
        row = {f"Precision@{t}": v for t, v in zip(thresholds, precision)}
        row.update({f"Recall@{t}": v for t, v in zip(thresholds, recall)})
        row.update(Precision_Mean=pm, Recall_Mean=rm, F1_Score=f1(pm, rm), n_preds=len(p))
        per_video[vid] = row
    if captions:
        _caption_metrics(preds, gold, ious, per_video, thresholds, rng, meteor)

    metric_names = [k for k in next(iter(per_video.values())) if k != "n_preds"] if per_video else []
    summary = {k: float(np.mean([v[k] for v in per_video.values()]) * 100) for k in metric_names}
    summary["n_preds"] = float(np.mean([v["n_preds"] for v in per_video.values()])) if per_video else 0.0
    if per_video:
        # Also the dataset-level harmonic mean of the averaged P and R (the official F1_Score above
        # is the mean of per-video F1s).
        summary["F1_of_mean_PR"] = f1(summary["Precision_Mean"], summary["Recall_Mean"])
    return {"metrics": summary, "per_video": per_video}


def _caption_metrics(preds, gold, ious, per_video, thresholds, rng, meteor):
    empty = DenseCaptions(np.zeros((0, 2)), [])
    # 1. every raw caption PTB-tokenised in one Java call
    raw = [c for v in gold.values() for c in v.captions] + [c for v in gold for c in preds.get(v, empty).captions]
    tok = dict(zip(raw, ptb_tokenize(raw)))

    # 2. the pairs of every (video, threshold) group and of SODA_c
    groups: list[tuple[str, float, list[tuple[str, str]]]] = []
    soda_pairs: dict[str, list[tuple[int, int]]] = {}
    for vid, g in gold.items():
        p = preds.get(vid, empty)
        hyps = [tok[c] for c in p.captions]
        refs = [tok[c] for c in g.captions]
        for thr in thresholds:
            pairs = []
            for pi, gi in caption_pairs(ious[vid], thr):
                ref = refs[gi] if gi is not None else _random_reference(rng)
                pairs.append((hyps[pi], ref))
            groups.append((vid, thr, pairs))
        # pairs with IoU 0 contribute 0 to IoU x METEOR: only overlapping ones need METEOR
        soda_pairs[vid] = [(gi, pi) for gi, pi in zip(*np.nonzero(ious[vid] > 0))]

    # 3. METEOR: all stats in one pass, then one corpus score per non-empty group
    own = meteor is None
    session = MeteorSession() if own else meteor
    try:
        flat = [pr for _, _, pairs in groups for pr in pairs]
        soda_flat = [(tok[preds[vid].captions[pi]], tok[gold[vid].captions[gi]])
                     for vid, idx in soda_pairs.items() for gi, pi in idx]
        log.info("YouCook2: METEOR on %d caption pairs and %d SODA_c pairs", len(flat), len(soda_flat))
        stats = dict(zip(flat + soda_flat, session.stats(flat + soda_flat)))
        nonempty = [pairs for _, _, pairs in groups if pairs]
        corpus = iter(session.corpus_scores([[stats[pr] for pr in pairs] for pairs in nonempty]))
        seg = iter(session.segment_scores([stats[pr] for pr in soda_flat]))
    finally:
        if own:
            session.close()

    # 4. per video: CIDEr / METEOR averaged over thresholds, SODA_c
    by_video: dict[str, dict[str, list[float]]] = {vid: {"CIDEr": [], "METEOR": []} for vid in gold}
    for vid, _thr, pairs in groups:
        by_video[vid]["CIDEr"].append(cider_score(pairs))
        by_video[vid]["METEOR"].append(float(np.nan_to_num(next(corpus))) if pairs else 0.0)
    for vid, g in gold.items():
        n_pred = len(preds.get(vid, empty))
        met = np.zeros((len(g), n_pred))
        for gi, pi in soda_pairs[vid]:
            met[gi, pi] = next(seg)
        row = per_video[vid]
        row["CIDEr"] = float(np.mean(by_video[vid]["CIDEr"]))
        row["METEOR"] = float(np.mean(by_video[vid]["METEOR"]))
        row["SODA_c"] = soda_c(ious[vid], met)


def _random_reference(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(*RANDOM_REF_LEN)))


def evaluate_files(pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: dict | None = None) -> dict:
    """Score predictions (streaming JSONL or densevid JSON) against ``yc2_val.json``.

    protocol: "official" (default) or "reference" (the reference driver's conversion and skipping).
    options: ``drop_first_caption`` (False; True = the reference conversion), ``missing``
    ("empty": a GT video without prediction scores 0; "skip": left out), ``captions`` (True;
    False = detection only, no Java), ``seed`` (0, the random references of unmatched predictions),
    ``thresholds`` (0.3, 0.5, 0.7, 0.9). ``fusion`` is unused: segments come from the responses.
    """
    protocol = {None: "official", "standard": "official"}.get(protocol, protocol)
    if protocol not in PROTOCOLS:
        raise ValueError(f"youcook2 protocol must be one of {PROTOCOLS}, got {protocol!r}")
    reference = protocol == "reference"
    options = dict(options or {})
    drop_first = bool(options.get("drop_first_caption", reference))
    missing = options.get("missing", "skip" if reference else "empty")
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {MISSING_MODES}, got {missing!r}")
    captions = bool(options.get("captions", True))
    seed = int(options.get("seed", DEFAULT_SEED))
    thresholds = tuple(float(t) for t in options.get("thresholds", IOU_THRESHOLDS))
    all_gold = load_gold(gold_file)
    preds = load_predictions(pred_file, drop_first)
    n_pred = sum(1 for v in all_gold if v in preds)
    # "skip" (the reference driver) scores only the GT videos that have a prediction
    gold = {v: d for v, d in all_gold.items() if missing == "empty" or v in preds}
    if not gold:
        raise ValueError(f"no GT video of {gold_file} to score (missing={missing!r})")
    result = evaluate_dense_captions(preds, gold, thresholds, captions, seed, options.get("meteor"))
    result.update(
        protocol={
            "dataset": DATASET, "name": protocol, "gold_file": str(gold_file),
            "evaluator": "Vid2Seq/densevid_eval re-implementation (per video, then averaged x100)",
            "iou_thresholds": list(thresholds), "iou": "intersection / (union + 1e-8)",
            "detection_match": "iou > threshold", "caption_match": "iou >= threshold",
            "unmatched_prediction": "paired with a random string (scores 0)", "seed": seed,
            "captions": captions, "cider": "pycocoevalcap Cider(n=4, sigma=6), IDF per video",
            "meteor": "METEOR 1.5 (pycocoevalcap jar, -l en -norm), corpus score per video",
            "tokenizer": "pycocoevalcap PTBTokenizer (stanford-corenlp-3.4.1)",
            "soda_c": "METEOR x IoU, tIoU 0, order-preserving DP",
            "f1": "F1_Score = mean over videos of 2PR/(P+R) of threshold-averaged P, R",
            "missing_video": {"empty": "empty prediction (scores 0)",
                              "skip": "not scored (reference driver)"}[missing],
            "drop_first_caption": drop_first,
            "conversion": "consecutive identical responses merged; span = previous caption's last "
                          "emission (0 for the first) .. own last emission",
            "fusion": None},
        n_videos=len(gold), n_predicted=n_pred, n_missing=len(all_gold) - n_pred,
        n_extra_predictions=len(preds) - n_pred)
    return result
