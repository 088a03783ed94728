"""Pre-extracted frame features: decode and run the frozen vision tower once, train many times.

Two kinds (``KINDS``):

* ``vision``: SigLIP patch features ``[F, patches, vision_dim]`` (``model.vision_features``); items
  carry ``vision_features`` and the model still runs the projector, so it keeps training.
* ``frame_embeds``: final frame tokens ``[F, tokens_per_frame, D]`` (``model.encode_frames``); for a
  frozen projector (training) or evaluation. Items carry ``frame_embeds``.

Layout: one safetensors file per (video, fps, frame size, degradation) under
``ROOT/{kind}-{fingerprint}/fps{fps}_s{size}/{namespace}/{relpath}[.d{schedule hash}].safetensors``
holding the frames ``[0, n)`` of that video (tensor ``features``) and, in the header, the video key,
fps, size, frame count, kind, degradation and the identity of the source file (``source``: its path,
size in bytes, packet count and duration). One file per video makes extraction safe to split
over processes / GPUs (``--shard i/n``) and every write atomic (temporary file + ``os.replace``);
reads take only the frames an item needs (lazy slice).

The **fingerprint** hashes what the features depend on: the vision config, feature layer and
selection, dtype and the vision tower's weights (plus the projector weights and pooling for
``frame_embeds``). A cache made with other weights or another dtype is simply another folder; it
is never read by mistake.

The **source** identity guards the other way round: a key is a path relative to some video root,
and another root may hold another video under the same name. ``check_source`` compares the
recorded identity with the video a driver is about to stand the features in for (a stat and a
packet scan, no decoding and no hashing of the file): a mismatch is an error naming both files.
Files written before the identity was recorded are refused by ``check_source`` (re-extract:
``scripts/extract_features.py`` extracts such files again instead of skipping them).

Sizes: SigLIP-so400m features are 729 x 1152 values per frame (1.7 MB in bf16; 128 frames = 215 MB
per video); frame embeddings of the 7B are 49 x 3584 (0.35 MB in bf16).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import torch

from data.degrade import DegradationSchedule
from utils.io import apply_umask

log = logging.getLogger(__name__)

KINDS = {"vision": "vision_features", "frame_embeds": "frame_embeds"}
TENSOR = "features"


class FeatureCacheMiss(LookupError):
    """The cache lacks a video or enough of its frames (run scripts/extract_features.py)."""


class FeatureCacheCorrupt(FeatureCacheMiss):
    """A feature file that cannot be read (cut short or damaged after it was written: a copy or disk
    error; writes themselves are atomic). Extraction writes it again; readers name it."""


def _open(p: Path):
    """``safe_open`` of a feature file, its errors named (safetensors' own name no file)."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(p), framework="pt")
    except (SafetensorError, OSError) as e:
        raise FeatureCacheCorrupt(f"{p}: unreadable feature file ({e}); rerun scripts/extract_features.py with the "
                                  "same flags (it extracts it again) or delete it") from None


class FeatureSourceMismatch(ValueError):
    """A feature file was extracted from another video than the one it would stand in for (or does
    not say from which)."""


# what must agree between a feature file's source and the video it is used for; the path is kept
# for the messages only (a copied or moved video is the same video)
SOURCE_FIELDS = ("bytes", "frames", "duration")


def probe_once(path: str | os.PathLike):
    """``data.video.probe`` of a file, scanned once per process while the file is unchanged (size and
    mtime): extraction plans a video's frame count and then records its source identity."""
    st = os.stat(path)
    return _probe_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _probe_cached(path: str, size: int, mtime_ns: int):
    from data.video import probe

    return probe(path)


def source_identity(path: str | os.PathLike) -> dict:
    """What a feature file records of its video, cheap enough to check at every use: the file's size
    and its packet count and duration (``data.video.probe``: a packet scan, no decoding)."""
    info = probe_once(path)
    return {"path": str(Path(path).resolve()), "bytes": os.stat(path).st_size, "frames": int(info.n_frames),
            "duration": round(float(info.duration), 6)}


def _describe(source: dict) -> str:
    return f"{source.get('path')} ({source.get('bytes')} bytes, {source.get('frames')} frames, {source.get('duration')} s)"


def _frames_of(f, p: Path) -> int:
    """The frame count a feature file's header states, checked against its tensor: a damaged or
    edited header (a count that is not a whole number, or not the tensor's rows) would have a slice
    silently return fewer frames than asked for, or a cache hit count the wrong frames."""
    meta = f.metadata() or {}
    text = meta.get("frames")
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise FeatureCacheCorrupt(f"{p}: its header's frame count {text!r} is not a whole number (a damaged feature "
                                  "file: rerun scripts/extract_features.py, it extracts it again, or delete it)") from None
    rows = f.get_slice(TENSOR).get_shape()[0]
    if n != rows:
        raise FeatureCacheCorrupt(f"{p}: its header says {n} frames, its tensor holds {rows} (a damaged feature file: "
                                  "rerun scripts/extract_features.py, it extracts it again, or delete it)")
    return n


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _hash_tensors(h, named: Iterable[tuple[str, torch.Tensor]]) -> None:
    for name, t in sorted(named, key=lambda kv: kv[0]):
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())


def model_fingerprint(model, kind: str = "vision") -> str:
    """16 hex digits identifying what cached features of ``kind`` depend on."""
    if kind not in KINDS:
        raise ValueError(f"feature kind must be one of {sorted(KINDS)}, got {kind!r}")
    base = _base(model)
    cfg = base.config
    h = hashlib.sha256()
    spec = {
        "kind": kind,
        "vision_config": cfg.vision_config.to_dict(),
        "vision_feature_layer": cfg.vision_feature_layer,
        "vision_feature_select_strategy": cfg.vision_feature_select_strategy,
        "vision_dtype": str(base.vision_dtype),
    }
    if cfg.frame_resize != "antialias":  # only when set: fingerprints of existing caches stay valid
        spec["frame_resize"] = cfg.frame_resize  # the pixels the features come from
    if kind == "frame_embeds":
        spec.update(frame_pool_stride=cfg.frame_pool_stride, frame_pool_mode=cfg.frame_pool_mode,
                    frame_pool_ceil=cfg.frame_pool_ceil,
                    text_hidden=cfg.text_config.hidden_size)
        if getattr(cfg, "projector_hidden_act", "gelu") != "gelu":
            # the projector's activation is config, not a weight: only when set (existing fingerprints stay valid)
            spec["projector_hidden_act"] = cfg.projector_hidden_act
        if cfg.frame_summary_token:  # only when set: fingerprints of existing caches stay valid
            spec["frame_summary_token"] = True
    h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    _hash_tensors(h, base.model.vision_tower.state_dict().items())
    if kind == "frame_embeds":
        # a peft-wrapped projector holds the trained copy beside the original: both are hashed
        _hash_tensors(h, base.model.multi_modal_projector.state_dict().items())
    return h.hexdigest()[:16]


def schedule_tag(degradation: DegradationSchedule | None) -> str:
    if degradation is None or not degradation.segments:
        return ""
    blob = json.dumps({"segments": degradation.to_list(), "seed": degradation.seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _safe_key(key: str) -> PurePosixPath:
    p = PurePosixPath(key)
    if p.is_absolute() or any(part in ("..", "") for part in p.parts):
        raise ValueError(f"feature-cache key must be a relative path without '..': {key!r}")
    return p


class FeatureCache:
    """Read / write cached features of one model fingerprint and kind."""

    def __init__(self, root: str | Path, fingerprint: str, kind: str = "vision"):
        if kind not in KINDS:
            raise ValueError(f"feature kind must be one of {sorted(KINDS)}, got {kind!r}")
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.kind = kind
        # key -> the video it stands for, set by a driver that knows (test.engine_args.open_features)
        self.video_of: Callable[[str], Path] | None = None

    @classmethod
    def for_model(cls, root: str | Path, model, kind: str = "vision") -> "FeatureCache":
        return cls(root, model_fingerprint(model, kind), kind)

    @property
    def item_key(self) -> str:
        """The item / batch key the features travel under (a model forward argument)."""
        return KINDS[self.kind]

    @property
    def directory(self) -> Path:
        return self.root / f"{self.kind}-{self.fingerprint}"

    def exists(self) -> bool:
        return self.directory.is_dir()

    def path(self, key: str, fps: float, size: int, degradation: DegradationSchedule | None = None) -> Path:
        rel = _safe_key(key)
        tag = schedule_tag(degradation)
        name = rel.name + (f".d{tag}" if tag else "") + ".safetensors"
        return self.directory / f"fps{fps:g}_s{int(size)}" / rel.parent / name

    def metadata(self, key: str, fps: float, size: int, degradation: DegradationSchedule | None = None) -> dict | None:
        """The header of a video's feature file (None when there is none)."""
        p = self.path(key, fps, size, degradation)
        if not p.is_file():
            return None
        with _open(p) as f:
            _frames_of(f, p)
            return dict(f.metadata())

    def frames_cached(self, key: str, fps: float, size: int, degradation: DegradationSchedule | None = None) -> int:
        meta = self.metadata(key, fps, size, degradation)
        return 0 if meta is None else int(meta["frames"])

    def source(self, key: str, fps: float, size: int, degradation: DegradationSchedule | None = None) -> dict | None:
        """The identity of the video a feature file was extracted from (None: absent, or a file
        written before it was recorded)."""
        meta = self.metadata(key, fps, size, degradation)
        return None if meta is None or "source" not in meta else json.loads(meta["source"])

    def check_source(self, key: str, fps: float, size: int, video: str | os.PathLike,
                     degradation: DegradationSchedule | None = None) -> None:
        """Refuse to let the features of ``key`` stand in for ``video`` unless they were extracted
        from it (same size, packet count and duration): FeatureSourceMismatch naming both files.
        A file that does not record its source is refused too. Nothing to check when absent."""
        p = self.path(key, fps, size, degradation)
        meta = self.metadata(key, fps, size, degradation)
        if meta is None:
            return
        if "source" not in meta:
            raise FeatureSourceMismatch(
                f"{p} does not record which video it was extracted from (written by an older "
                f"scripts/extract_features.py), so it cannot be checked against {video}; re-extract it: rerun "
                "scripts/extract_features.py with the same flags (it extracts such files again)")
        recorded, actual = json.loads(meta["source"]), source_identity(video)
        if any(recorded.get(k) != actual[k] for k in SOURCE_FIELDS):
            raise FeatureSourceMismatch(f"the features {p} of {key!r} were extracted from {_describe(recorded)}, "
                                        f"not from {_describe(actual)}: another video under the same name; extract them for "
                                        "this video (scripts/extract_features.py replaces them) or use another --features folder")

    def check_sources_by_size(self, needs: Sequence, size: int) -> dict[str, int]:
        """Training's check that the cached features are of the videos the data set names: for every
        video (``data.stream.VideoNeed``) whose file is present, the feature file must record a source
        of the file's size in bytes. A stat per video (no packet scan: a mixture of tens of thousands
        of videos checks in seconds); another video under the same key has another size in all but
        contrived cases, and ``check_source`` (used by the benchmarks) compares packets and duration
        too. A video that is absent is not checked (features make the videos optional for training)
        and counted; a feature file that is absent is the loader's miss. FeatureSourceMismatch names
        the first mismatches (and files written before sources were recorded)."""
        stats = {"checked": 0, "video_absent": 0, "features_absent": 0}
        bad: list[str] = []
        for need in needs:
            meta = self.metadata(need.key, need.fps, size, need.degradation)
            if meta is None:
                stats["features_absent"] += 1
                continue
            try:
                actual = os.stat(need.path).st_size
            except FileNotFoundError:
                stats["video_absent"] += 1
                continue
            stats["checked"] += 1
            if "source" not in meta:
                bad.append(f"{self.path(need.key, need.fps, size, need.degradation)} does not record its video (an older "
                           "scripts/extract_features.py wrote it)")
                continue
            recorded = json.loads(meta["source"])
            if recorded.get("bytes") != actual:
                bad.append(f"the features of {need.key!r} were extracted from {_describe(recorded)}, not from "
                           f"{Path(need.path).resolve()} ({actual} bytes)")
        if bad:
            raise FeatureSourceMismatch(
                f"{len(bad)} of {stats['checked']} feature files do not match the data set's videos; first: "
                + "; ".join(bad[:3]) + ". Re-extract them (scripts/extract_features.py with the training flags "
                "replaces them) or point --feature_cache at the features of these videos")
        return stats

    def load(self, key: str, fps: float, start: int, end: int, size: int,
             degradation: DegradationSchedule | None = None) -> torch.Tensor:
        """Frames ``[start, end)`` of a video; FeatureCacheMiss when absent or too short."""
        p = self.path(key, fps, size, degradation)
        if not p.is_file():
            raise FeatureCacheMiss(f"{key} ({fps:g} fps, {size} px) is not in the feature cache {self.directory} "
                                   "(run scripts/extract_features.py with the same model, dtype and dataset config)")
        with _open(p) as f:
            n = _frames_of(f, p)
            if not 0 <= start <= end <= n:
                raise FeatureCacheMiss(f"{p}: holds {n} frames, frames [{start}, {end}) were asked for")
            return f.get_slice(TENSOR)[start:end]

    def save(self, key: str, fps: float, size: int, features: torch.Tensor,
             degradation: DegradationSchedule | None = None, source: dict | None = None) -> Path:
        """Write the frames ``[0, n)`` of a video (atomically); ``source``: ``source_identity`` of the
        video they were extracted from."""
        from safetensors.torch import save_file

        if features.dim() != 3:
            raise ValueError(f"features must be [frames, tokens, dim], got {tuple(features.shape)}")
        p = self.path(key, fps, size, degradation)
        p.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "video": key, "fps": f"{fps:g}", "size": str(int(size)), "frames": str(features.shape[0]),
            "kind": self.kind, "fingerprint": self.fingerprint,
            "degradation": json.dumps(None if degradation is None else
                                      {"segments": degradation.to_list(), "seed": degradation.seed}),
        }
        if source is not None:
            meta["source"] = json.dumps(source, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({TENSOR: features.detach().to("cpu").contiguous()}, tmp, metadata=meta)
            apply_umask(tmp)  # mkstemp made it private
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return p


# --------------------------------------------------------------------------- extraction

class _DecodeNeeds(torch.utils.data.Dataset):
    """Decodes one video's needed frames per item (runs in DataLoader workers)."""

    def __init__(self, needs: Sequence, size: int, resize: str = "antialias"):
        self.needs = list(needs)
        self.size, self.resize = size, resize

    def __len__(self) -> int:
        return len(self.needs)

    def __getitem__(self, i: int):
        from data.video import VideoDecodeError, load_clip

        need = self.needs[i]
        try:
            frames = load_clip(need.path, need.fps, 0, need.end_frame, size=self.size, degradation=need.degradation,
                               resize=self.resize)
            return i, torch.from_numpy(frames), None
        except (VideoDecodeError, FileNotFoundError) as e:
            return i, None, str(e)


def merge_needs(needs: Sequence) -> list:
    """One need per feature file (key, fps, degradation), with the largest ``end_frame`` asked for.

    Datasets of a mixture may share a video root and fps (Shot2Story's captioning and MAGQA): the
    same video is then needed twice under one key. Extracted as two needs, the later (shorter) one
    replaced the file of the earlier, and the items needing the frames past it missed the cache.
    Two different files under one key would overwrite each other's features: refused."""
    merged: dict[tuple, object] = {}
    for need in needs:
        k = (need.key, float(need.fps), schedule_tag(need.degradation))
        old = merged.get(k)
        if old is None:
            merged[k] = need
            continue
        if Path(old.path).resolve() != Path(need.path).resolve():
            raise ValueError(f"feature-cache key {need.key!r} names two videos, {old.path} and {need.path}: their "
                             "features would overwrite each other (give the datasets distinct video roots)")
        if need.end_frame > old.end_frame:
            merged[k] = need
    return list(merged.values())


def extract_features(
    model,
    needs: Sequence,
    cache: FeatureCache,
    frame_size: int,
    batch_frames: int = 32,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    overwrite: bool = False,
    shard: tuple[int, int] = (0, 1),
    progress: bool = False,
) -> dict[str, int]:
    """Cache features for ``needs`` (``data.stream.VideoNeed``: key, path, fps, end_frame, degradation).

    Videos already cached with enough frames are skipped unless ``overwrite``; a file of another video
    under the same key, or one that does not record its video (an older version), is extracted
    again. Each file records its video's ``source_identity``. A video that fails
    to decode is logged and counted (its items will be skipped by the dataset's bounded retries);
    one that decodes fewer frames than needed is cached with what it has. ``shard=(i, n)`` takes
    every n-th video from the i-th (for several processes / GPUs).
    """
    from tqdm import tqdm

    from models.frames import to_pixel_values

    i_shard, n_shards = shard
    if not 0 <= i_shard < n_shards:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    if batch_frames < 1:
        raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
    ordered = sorted(merge_needs(needs), key=lambda n: (n.key, n.fps, schedule_tag(n.degradation)))[i_shard::n_shards]
    stats = {"videos": len(ordered), "extracted": 0, "skipped": 0, "failed": 0, "short": 0}
    todo, sources = [], []
    from data.video import VideoDecodeError

    for need in ordered:
        try:
            source = source_identity(need.path)
        except (VideoDecodeError, FileNotFoundError) as e:
            stats["failed"] += 1
            log.warning("feature extraction: %s failed: %s", need.key, e)
            continue
        try:
            cached = cache.source(need.key, need.fps, frame_size, need.degradation)
        except FeatureCacheCorrupt as e:  # damaged after it was written: extracted again, not a stop
            log.warning("feature extraction: %s; extracting it again", e)
            todo.append(need)
            sources.append(source)
            continue
        if cached is not None and any(cached.get(k) != source[k] for k in SOURCE_FIELDS):
            # the key now names another video (another root, a re-encoded file): its features are replaced
            log.warning("feature extraction: %s: the cached features are of %s, not of %s; extracting them again",
                        need.key, _describe(cached), _describe(source))
        elif (not overwrite and cached is not None
              and cache.frames_cached(need.key, need.fps, frame_size, need.degradation) >= need.end_frame):
            stats["skipped"] += 1  # a file without its source (older version) is extracted again
            continue
        todo.append(need)
        sources.append(source)
    base = _base(model)
    base.eval()
    dev = torch.device(device) if device is not None else next(base.parameters()).device
    loader = torch.utils.data.DataLoader(_DecodeNeeds(todo, frame_size, base.config.frame_resize), batch_size=None, shuffle=False,
                                         num_workers=num_workers)
    encode = base.vision_features if cache.kind == "vision" else base.encode_frames
    for i, frames, error in tqdm(loader, total=len(todo), disable=not progress, desc=f"{cache.kind} features"):
        need = todo[i]
        if error is not None:
            stats["failed"] += 1
            log.warning("feature extraction: %s failed: %s", need.key, error)
            continue
        if frames.shape[0] < need.end_frame:
            stats["short"] += 1
            log.warning("feature extraction: %s gave %d of %d frames", need.key, frames.shape[0], need.end_frame)
        chunks = []
        with torch.inference_mode():
            for s in range(0, frames.shape[0], batch_frames):
                px = to_pixel_values(frames[s:s + batch_frames], frame_size, dtype=base.vision_dtype, device=dev)
                chunks.append(encode(px).to("cpu"))
        feats = torch.cat(chunks) if chunks else torch.zeros(0)
        if feats.numel():
            cache.save(need.key, need.fps, frame_size, feats, need.degradation, source=sources[i])
            stats["extracted"] += 1
    cache.directory.mkdir(parents=True, exist_ok=True)
    return stats
