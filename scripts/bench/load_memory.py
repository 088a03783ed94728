"""Peak host memory (RSS) and time to load a model from a weights folder, per layout, new loader vs old.

    python scripts/bench/load_memory.py --preset aha-0.5b --work /tmp/loadbench --out results/load_memory_0.5b.json
    python scripts/bench/load_memory.py --preset aha-7b --width_div 2 --work /tmp/loadbench7 --out results/load_memory_7b-half.json

For each layout (llava-hf with the hub's legacy key names, llava-hf current names, lmms-lab) a
folder of random bf16 weights with the preset's structure is written (sharded, as published; with
``--width_div N`` the language model's width, MLP width and head counts are divided by N, every layer
count and the vocabulary kept). Each load then runs in a fresh process, which reports its own peak
RSS (VmHWM) at the end of the load and after reading every weight once (safetensors may map the
files lazily), the RSS after imports (the floor every run pays), wall and CPU time of the load. ``old`` runs
``models.build.build_model`` from git revision ``--old_rev`` (exported to a temporary folder):
llava-hf through from_pretrained, lmms-lab by building the whole model in fp32 with random init and
loading a full state dict into it. Both load to bf16 on CPU.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LAYOUTS = ("llava-hf-legacy", "llava-hf", "lmms-lab")
# peak RSS from /proc/self/status VmHWM (this process's address space): getrusage's ru_maxrss
# survives fork + exec on Linux and would report the parent's peak
CHILD = r"""
import json, sys, time, os
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
sys.path.insert(0, {root!r})
import torch
from models.build import build_model
floor = hwm()
t0, c0 = time.perf_counter(), time.process_time()
m = build_model({preset!r}, weights={weights!r}, dtype=torch.bfloat16)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
after_load = hwm()
# weights may still be lazily mapped from the files: read every one, as the first forward will
with torch.no_grad():
    for p in m.parameters():
        p.sum()
n = sum(p.numel() for p in m.parameters())
print(json.dumps({{"peak_rss_mb": hwm(), "load_rss_mb": after_load, "import_rss_mb": floor, "wall_s": wall, "cpu_s": cpu,
                  "params": n}}))
"""


def scaled_preset(name: str, width_div: int, path: Path) -> Path:
    from models.build import preset_path

    spec = json.loads(preset_path(name).read_text())
    if width_div > 1:
        tc = spec["config"]["text_config"]
        for k in ("hidden_size", "intermediate_size", "num_attention_heads"):
            tc[k] //= width_div
        tc["num_key_value_heads"] = max(1, tc["num_key_value_heads"] // width_div)
    spec.pop("train_window_frames", None)
    path.write_text(json.dumps(spec))
    return path


def write_folder(preset: Path, layout: str, d: Path, shard_bytes: int = 2 << 30) -> int:
    """Random bf16 weights with the preset's structure under the layout's published names (no
    heads: a backbone). Returns the number of bytes written."""
    import torch
    from safetensors.torch import save_file

    from models.aha import AhaForStreaming
    from models.build import load_preset
    from tests.weight_layouts import llava_hf_hub_name, lmms_lab_name

    cfg = load_preset(preset)
    with torch.device("meta"):
        meta = AhaForStreaming(cfg)
    rename = {"llava-hf-legacy": llava_hf_hub_name, "llava-hf": lambda k: k, "lmms-lab": lmms_lab_name}[layout]
    d.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    shard, size, n_shard, weight_map, total = {}, 0, 0, {}, 0
    names = [(k, tuple(v.shape)) for k, v in meta.state_dict().items() if "_head" not in k or k == "lm_head.weight"]
    if cfg.tie_word_embeddings:
        names = [(k, s) for k, s in names if k != "lm_head.weight"]

    def flush():
        nonlocal shard, size, n_shard
        if shard:
            n_shard += 1
            fname = f"model-{n_shard:05d}.safetensors"
            save_file(shard, str(d / fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in shard})
            shard, size = {}, 0

    for k, shape in names:
        t = (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
        shard[rename(k)] = t
        size += t.numel() * 2
        total += t.numel() * 2
        if size >= shard_bytes:
            flush()
    flush()
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    if layout == "lmms-lab":
        tc = cfg.text_config
        conf = {"model_type": "llava", "mm_vision_tower": "google/siglip-so400m-patch14-384",
                **{k: getattr(tc, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                               "num_key_value_heads", "vocab_size", "rms_norm_eps", "max_position_embeddings")},
                "rope_theta": tc.rope_parameters["rope_theta"], "tie_word_embeddings": cfg.tie_word_embeddings}
    else:
        conf = {**{k: v for k, v in cfg.to_dict().items() if k in ("vision_config", "text_config", "image_token_index",
                                                                      "tie_word_embeddings", "projector_hidden_act")},
                "model_type": "llava_onevision"}
    (d / "config.json").write_text(json.dumps(conf))
    return total


def run_child(root: Path, preset: Path, weights: Path) -> dict:
    code = CHILD.format(root=str(root), preset=str(preset), weights=str(weights))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(root))
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="aha-0.5b")
    ap.add_argument("--width_div", type=int, default=1)
    ap.add_argument("--work", required=True, help="folder for the generated weights (several GB)")
    ap.add_argument("--old_rev", default="2d920b5", help="git revision of the old loader")
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--repeats", type=int, default=1, help="loads per (layout, loader), interleaved")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    preset = scaled_preset(args.preset, args.width_div, work / "preset.json")
    old_root = Path(tempfile.mkdtemp(prefix="aha-old-"))
    subprocess.run(f"git -C {REPO} archive {args.old_rev} | tar -x -C {old_root}", shell=True, check=True)
    rows = []
    for layout in args.layouts.split(","):
        d = work / layout
        nbytes = write_folder(preset, layout, d) if not (d / "config.json").is_file() else sum(
            p.stat().st_size for p in d.glob("*.safetensors"))
        for rep in range(args.repeats):
            for name, root in (("new", REPO), ("old", old_root)):
                r = run_child(root, preset, d)
                row = {"layout": layout, "loader": name, "repeat": rep, "weights_mb": nbytes / 2**20, **r}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"preset": args.preset, "width_div": args.width_div, "old_rev": args.old_rev, "dtype": "bf16", "device": "cpu",
              "rows": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n| layout | loader | weights (MB) | peak RSS, load (MB) | peak RSS, weights read (MB) | RSS after imports (MB) | wall (s) | CPU (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['layout']} | {r['loader']} | {r['weights_mb']:.0f} | error: {r['error'][:60]} | | | | |")
        else:
            print(f"| {r['layout']} | {r['loader']} | {r['weights_mb']:.0f} | {r['load_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['import_rss_mb']:.0f} | "
                  f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
