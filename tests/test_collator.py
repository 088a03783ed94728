"""StreamCollator: padding, frame order, pixel normalisation, and batch losses equal to per-sample ones."""
from __future__ import annotations

import pytest
import torch

from data.collator import StreamCollator
from data.dvc import DenseVideoCaptioningDataset
from data.hihd import HIHDDataset
from data.magqa import MAGQADataset
from models.build import build_model
from models.chat import ChatTemplate
from models.frames import to_pixel_values
from tests.test_datasets import write_mixture_fixture

PAD = 151643


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("coll")
    write_mixture_fixture(r)
    return r


@pytest.fixture(scope="module")
def template(qwen2_tokenizer):
    return ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)


@pytest.fixture(scope="module")
def model():
    m = build_model("aha-tiny", seed=0)
    m.eval()
    return m


def _ds(cls, root, folder, anno, template, fps, max_frames):
    return cls(root / folder / "annotations" / anno, root / folder / "videos", root / folder / "videos_metadata.json",
               template, fps=fps, max_frames=max_frames)


@pytest.fixture(scope="module")
def text_items(root, template):
    """A dense-captioning item (3 frames) and a MAGQA item (4 frames): LM + informative labels."""
    a = _ds(DenseVideoCaptioningDataset, root, "shot2story", "dvc.json", template, 1, 3)[0]
    b = _ds(MAGQADataset, root, "shot2story", "magqa.json", template, 1, 4)[0]
    assert a["input_ids"].shape[0] != b["input_ids"].shape[0]
    return [a, b]


@pytest.fixture(scope="module")
def relevance_items(root, template):
    """Two HIHD items of 4 and 2 frames: relevance labels only."""
    return [_ds(HIHDDataset, root, "HIHD", "HIHD_metadata.csv", template, 1, n)[0] for n in (4, 2)]


def test_padding_masks_labels_and_frame_order(text_items):
    a, b = text_items
    batch = StreamCollator(PAD, frame_size=384)(text_items)
    la, lb = a["input_ids"].shape[0], b["input_ids"].shape[0]
    width = max(la, lb)
    short, n_short = (0, la) if la < lb else (1, lb)
    assert batch["input_ids"].shape == (2, width)
    assert batch["attention_mask"][short].tolist() == [1] * n_short + [0] * (width - n_short)
    assert batch["input_ids"][short, n_short:].eq(PAD).all()
    for key, pad in (("labels", -100), ("informative_labels", -100), ("relevance_labels", -100.0)):
        assert batch[key][short, n_short:].eq(pad).all(), key
        assert torch.equal(batch[key][0, :la], a[key]) and torch.equal(batch[key][1, :lb], b[key])
    assert batch["labels"].dtype == torch.long and batch["relevance_labels"].dtype == torch.float
    assert "position_ids" not in batch  # right padding needs none
    # frames of sample 0 then sample 1, SigLIP-normalised
    px = batch["pixel_values"]
    assert px.shape == (7, 3, 384, 384) and px.dtype == torch.float32
    torch.testing.assert_close(px[:3], to_pixel_values(a["frames"], 384), rtol=0, atol=0)
    torch.testing.assert_close(px[3:], to_pixel_values(b["frames"], 384), rtol=0, atol=0)
    assert float(px.min()) == -1.0 and float(px.max()) == 1.0  # black letterbox bars and white stripes
    assert batch["sample_ids"] == [a["sample_id"], b["sample_id"]]


def test_left_padding_counts_positions_from_the_first_real_token(text_items):
    batch = StreamCollator(PAD, padding_side="left")(text_items)
    for row in range(2):
        n = int(batch["attention_mask"][row].sum())
        width = batch["input_ids"].shape[1]
        assert batch["attention_mask"][row, width - n:].all()
        assert batch["position_ids"][row, width - n:].tolist() == list(range(n))


def test_bad_batches_are_rejected(text_items):
    c = StreamCollator(PAD)
    with pytest.raises(ValueError, match="empty"):
        c([])
    mixed = [dict(text_items[0]), {k: v for k, v in text_items[1].items() if k != "frames"}]
    mixed[1]["vision_features"] = torch.zeros(4, 729, 32)
    with pytest.raises(ValueError, match="mixes frame kinds"):
        c(mixed)
    with pytest.raises(ValueError, match="padding_side"):
        StreamCollator(PAD, padding_side="middle")


def _forward(model, batch):
    inputs = {k: v for k, v in batch.items() if k != "sample_ids"}
    with torch.no_grad():
        return model(**inputs)


def _count(item, key):
    return int((item[key] != -100).sum())


@pytest.mark.parametrize("side", ["right", "left"])
def test_batch_of_two_equals_per_sample_forward_and_losses(model, text_items, side):
    collate = StreamCollator(PAD, padding_side=side)
    batch = collate(text_items)
    out = _forward(model, batch)
    singles = [_forward(model, collate([it])) for it in text_items]
    width = batch["input_ids"].shape[1]
    for row, (it, single) in enumerate(zip(text_items, singles)):
        n = it["input_ids"].shape[0]
        sl = slice(0, n) if side == "right" else slice(width - n, width)
        for name in ("relevance", "log_variance", "informative_logits"):
            torch.testing.assert_close(getattr(out, name)[row, sl], getattr(single, name)[0], rtol=1e-4, atol=1e-5)
    # documented reduction: every term is a mean over the labelled positions of the whole batch
    for part, key in (("lm_loss", "labels"), ("informative_loss", "informative_labels")):
        counts = [_count(it, key) for it in text_items]
        want = sum(c * getattr(s, part) for c, s in zip(counts, singles)) / sum(counts)
        assert getattr(out, part).item() == pytest.approx(want.item(), rel=1e-5), part
    w = model.config.loss_weights
    assert out.relevance_loss is None
    want_total = w["lm"] * out.lm_loss + w["informative"] * out.informative_loss
    assert out.loss.item() == pytest.approx(want_total.item(), rel=1e-6)
    # and the per-sample totals average to the batch total when both carry the same label counts
    n_lm = [_count(it, "labels") for it in text_items]
    n_inf = [_count(it, "informative_labels") for it in text_items]
    want = (w["lm"] * sum(n * s.lm_loss for n, s in zip(n_lm, singles)) / sum(n_lm)
            + w["informative"] * sum(n * s.informative_loss for n, s in zip(n_inf, singles)) / sum(n_inf))
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_relevance_terms_of_a_padded_batch(model, relevance_items):
    collate = StreamCollator(PAD)
    out = _forward(model, collate(relevance_items))
    singles = [_forward(model, collate([it])) for it in relevance_items]
    frames = [_count(it, "relevance_labels") for it in relevance_items]
    assert frames == [4, 2]
    want_rel = sum(n * s.relevance_loss for n, s in zip(frames, singles)) / sum(frames)
    assert out.relevance_loss.item() == pytest.approx(want_rel.item(), rel=1e-5)
    pairs = [n - 1 for n in frames]  # TV never pairs frames of different samples
    want_tv = sum(p * s.tv_loss for p, s in zip(pairs, singles)) / sum(pairs)
    assert out.tv_loss.item() == pytest.approx(want_tv.item(), rel=1e-5)
    assert out.lm_loss is None and out.informative_loss is None
