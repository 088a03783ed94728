"""The benchmark scripts a GPU lease runs (scripts/bench/gpu_h200.sh) work end to end at toy size on CPU,
so that a lease is never spent finding a broken script. Nothing here times anything: the numbers are
recorded by running the scripts (instructions/performance.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts" / "bench"))


def test_kernel_profile_groups_every_mode_by_kind(shared_data, tmp_path):
    import kernel_profile

    out = tmp_path / "kernels.json"
    assert kernel_profile.main(["--tokenizer", str(shared_data / "tokenizers" / "qwen2"), "--steps", "2", "--warmup", "6",
                                "--window", "300", "--streams", "2", "--frames_per_step", "4", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["modes"]) == {"frame", "block", "vision_one_frame", "vision_batch", "batch_2"}
    assert rec["protocol"]["cache"]["window"] == 300 and rec["revision"]
    for name, mode in rec["modes"].items():
        assert mode["aten_ops_per_step"] > 0 and mode["wall_ms_median"] > 0, name
        assert sum(mode["by_kind_share"].values()) == pytest.approx(1.0), name
        assert mode["by_kind_ms_per_step"]["attention"] > 0 and mode["by_kind_ms_per_step"]["gemm"] > 0, name
        assert mode["top"][0]["ms_per_step"] >= mode["top"][-1]["ms_per_step"], name
    # the batch mode's lanes stream frames the whole time: more frames per forward than one lane's block
    assert rec["modes"]["batch_2"]["frames_per_forward"] > 4
    assert rec["derived_floor_not_measured"]["lm_weight_bytes_read_per_forward"] > 0


@pytest.mark.parametrize("name, kind", [("nvjet_tst_128x64_64x8_2x1_v_bz_TNT", "gemm"),
                                        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", "gemm"),
                                        ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits>", "attention"),
                                        ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", "attention"),
                                        ("triton_poi_fused_add_mul_0", "fused (inductor)"),
                                        ("Memcpy HtoD (Pinned -> Device)", "copy / index"),
                                        ("aten::addmm", "gemm"), ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
                                        ("void at::native::vectorized_elementwise_kernel<4, silu>", "elementwise / reduction")])
def test_kernel_names_fall_in_their_kind(name, kind):
    import kernel_profile

    assert kernel_profile.kind_of(name) == kind


def test_scale_out_compares_split_rules_and_records_the_batching(shared_data, tmp_path):
    import scale_out

    out = tmp_path / "scale.json"
    assert scale_out.main(["--tokenizer", str(shared_data / "tokenizers" / "qwen2"), "--streams", "1,2", "--procs", "1",
                           "--reps", "1", "--items", "3", "--frames", "10", "--split_rows", "none,0", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    rows = {(r["streams"], r["split_rows"]): r for r in rec["rows"]}
    assert set(rows) == {(1, "-"), (2, "none"), (2, "0")} and rec["protocol"]["split_rows"] == "none,0"
    none, split = rows[(2, "none")]["forwards"], rows[(2, "0")]["forwards"]
    assert none["forwards"] == none["ticks"] and split["forwards"] >= split["ticks"]  # only split steps add forwards
    assert none["rows"] == split["rows"] and split["padded_rows"] <= none["padded_rows"]
    assert rows[(2, "none")]["frames"] == rows[(1, "-")]["frames"] == rows[(2, "0")]["frames"]
