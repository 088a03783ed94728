"""The whole synthetic data set (``generate_dataset``) and its command line (``python -m data.synthetic``)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np

from utils.io import atomic_write_json, atomic_write_text, read_json, sha256_file
from data.synthetic.scene import FORMAT_VERSION, GENERATOR, HISUM_FILES, QVH_VIDEO_TEMPLATE, SPLITS, Scene, SynthConfig, sample_scene, video_id, video_seed
from data.synthetic.render import render_scene, resolve_codec
from data.synthetic.annotations import HIHD_COLUMNS, _csv_text, mixture_config, write_hisum_files, write_split_annotations



# ------------------------------------------------------------------------------- the data set

def _render_job(args: tuple[Scene, SynthConfig, str]) -> tuple[str, str, str]:
    scene, cfg, path = args
    result = render_scene(scene, path, cfg=cfg)  # the very scene the annotations were made from
    return scene.video_id, result.sha256, result.codec


def _prepare_out(out: Path) -> None:
    """Create ``out``, or clear a previous synthetic set there; refuse a folder that is not ours."""
    if out.exists() and any(out.iterdir()):
        manifest = out / "manifest.json"
        try:
            ours = read_json(manifest).get("generator") == GENERATOR
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise ValueError(f"{out} is not empty and holds no synthetic manifest.json; choose an empty folder")
        for name in ("videos", *SPLITS):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in ("manifest.json", "HIHD_metadata.csv", "mixture_train.json", "videos_metadata.json", *HISUM_FILES):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def is_default_set(folder: str | Path, seed: int = 0, counts: dict[str, int] | None = None) -> bool:
    """Whether ``folder`` holds a complete set of this format, made with the default SynthConfig
    and ``seed`` (and these split sizes, if given): the scripts reuse such a folder instead of
    generating it again."""
    try:
        m = read_json(Path(folder) / "manifest.json")
    except (OSError, ValueError):
        return False
    return (m.get("complete") is True and m.get("format_version") == FORMAT_VERSION and m.get("seed") == seed
            and m.get("config") == json.loads(json.dumps(SynthConfig().to_dict()))
            and (counts is None or m.get("counts") == counts))


def generate_dataset(out: str | Path, seed: int = 0, n_train: int = 120, n_val: int = 20, n_test: int = 20,
                     cfg: SynthConfig = SynthConfig(), workers: int = 1, progress: bool = False) -> dict:
    """Write the whole synthetic set under ``out`` (layout in the module doc); returns the manifest."""
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise ValueError(f"split sizes must be >= 0 and not all 0, got {counts}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    codec = resolve_codec(cfg.codec)
    _prepare_out(out)
    # a stub first, so a run that dies half-way leaves a folder the next run may clear
    atomic_write_json(out / "manifest.json", {"generator": GENERATOR, "complete": False})
    scenes = {s: [sample_scene(video_seed(seed, s, i), None, cfg, video_id(s, i)) for i in range(n)]
              for s, n in counts.items()}
    jobs = [(sc, cfg, str(out / "videos" / f"{sc.video_id}.mp4")) for s in SPLITS for sc in scenes[s]]
    started = time.perf_counter()
    if workers == 1:
        results = map(_render_job, jobs)
        done = _collect(results, len(jobs), progress)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = _collect(pool.map(_render_job, jobs, chunksize=1), len(jobs), progress)
    render_s = time.perf_counter() - started

    write_hisum_files(out, scenes)
    hihd = []
    for s in SPLITS:
        if scenes[s]:
            hihd += write_split_annotations(out / s, s, scenes[s], cfg, seed)
    atomic_write_text(out / "HIHD_metadata.csv", _csv_text(hihd, HIHD_COLUMNS))
    if scenes["train"]:
        atomic_write_json(out / "mixture_train.json", mixture_config())

    files = {p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(out.rglob("*"))
             if p.is_file() and p.parent.name != "videos" and p.name != "manifest.json"}
    manifest = {
        "generator": GENERATOR, "complete": True, "format_version": FORMAT_VERSION, "seed": int(seed),
        "counts": counts, "config": cfg.to_dict(), "codec": codec,
        "versions": {"numpy": np.__version__, "av": av.__version__},
        "converter_items": "datasets/convert.py convert_{charades,tvsum,youcook2,magqa,qvh,hisum}, default templates, "
                           f"this seed; qvh with --video_template {QVH_VIDEO_TEMPLATE}",
        "videos": {sc.video_id: {"split": s, "seed": sc.seed, "duration": sc.duration, "n_frames": sc.n_frames,
                                 "query": sc.query.text, "n_events": len(sc.events), "n_matches": len(sc.matches),
                                 "sha256": done[sc.video_id]}
                   for s in SPLITS for sc in scenes[s]},
        "files": files,
    }
    atomic_write_json(out / "manifest.json", manifest)
    if progress:
        print(f"{len(jobs)} videos ({codec}) in {render_s:.1f} s -> {out}", file=sys.stderr)
    return manifest


def _collect(results, total: int, progress: bool) -> dict[str, str]:
    done = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="synthetic videos", unit="video")
    for vid, sha, _ in results:
        done[vid] = sha
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return done


# ------------------------------------------------------------------------------------- CLI

def parse_size(text: str) -> tuple[int, int]:
    """"128" -> (128, 128); "160x120" -> (160, 120)."""
    parts = text.lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--size must be W or WxH, got {text!r}") from None
    if len(dims) == 1:
        return dims[0], dims[0]
    if len(dims) == 2:
        return dims[0], dims[1]
    raise ValueError(f"--size must be W or WxH, got {text!r}")


def parse_duration(text: str) -> tuple[int, int]:
    """"30" -> (30, 30); "20:40" -> (20, 40) (whole seconds, drawn uniformly per video)."""
    parts = text.split(":")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--duration must be S or LO:HI in whole seconds, got {text!r}") from None
    if len(vals) == 1:
        return vals[0], vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise ValueError(f"--duration must be S or LO:HI in whole seconds, got {text!r}")


def parse_fraction_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--event_radius must be LO:HI (fractions), got {text!r}") from None
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data.synthetic",
                                description="Generate the deterministic synthetic shapes benchmark.")
    p.add_argument("--out", required=True, help="output folder (empty, or a previous synthetic set to replace)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n_train", type=int, default=120)
    p.add_argument("--n_val", type=int, default=20)
    p.add_argument("--n_test", type=int, default=20)
    p.add_argument("--duration", default="20:40", help="seconds per video: S or LO:HI (default %(default)s)")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--size", default="128", help="W (square) or WxH, even (default %(default)s)")
    p.add_argument("--n_annotators", type=int, default=20, help="TVSum-style annotators per video")
    p.add_argument("--codec", choices=("auto", "libx264", "mpeg4"), default="auto")
    p.add_argument("--clutter_palette", choices=("colours", "grey"), default="grey",
                   help="static clutter in greys (default) or in the query colours (format 1's harder set)")
    p.add_argument("--event_radius", default="0.12:0.17",
                   help="event shape radius LO:HI, fraction of the short side (format 1: 0.08:0.12)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="encoding processes")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.size)
        cfg = SynthConfig(fps=args.fps, width=width, height=height, duration=parse_duration(args.duration),
                          n_annotators=args.n_annotators, codec=args.codec, clutter_palette=args.clutter_palette,
                          event_radius=parse_fraction_range(args.event_radius))
        manifest = generate_dataset(args.out, args.seed, args.n_train, args.n_val, args.n_test, cfg,
                                    workers=args.workers, progress=not args.quiet)
    except ValueError as e:
        parser.exit(2, f"python -m data.synthetic: error: {e}\n")
    n = sum(manifest["counts"].values())
    print(f"synthetic: {n} videos {manifest['counts']} seed {args.seed} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

