"""A resume continues the checkpoint's run or is refused: the data order and batching it was
trained with are recorded in every checkpoint (``aha_run.json``) and compared on resume.

The Trainer restores the step and skips ``global_step x accumulation`` batches of the *current*
data loader: resumed with another --seed (data order, item randomness), batch size, accumulation,
process count or mixture it skipped batches of another sequence, trained some items twice and
others never, and exited 0.
"""
from __future__ import annotations

import json

import pytest

import train
from tests.test_datasets import write_mixture_fixture
from tests.test_train import SMALL, _args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("same_run")
    write_mixture_fixture(r, SMALL)
    return r


def test_resume_under_another_data_order_or_batching_is_refused(root, tmp_path, shared_data, monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    out = tmp_path / "run"
    train.main(_args(root, out, shared_data, "--save_strategy", "steps", "--save_steps", "1", steps=1))
    record = json.loads((out / "checkpoint-1" / train.RUN_RECORD).read_text())
    assert record == {"seed": 0, "data_seed": 0, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                      "world_size": 1, "mixture": {"shot2story_dvc": 1, "shot2story_magqa": 1, "coin_dvc": 1, "hihd": 1}}
    assert train.RUN_RECORD in json.loads((out / "checkpoint-1" / "aha_checkpoint.json").read_text())["files"]
    # (the same command resumes: tests/test_train.py::test_resume_continues_exactly)
    with pytest.raises(ValueError, match="another data order or batching") as e:
        train.main(_args(root, out, shared_data, "--seed", "1", "--gradient_accumulation_steps", "2",
                         "--resume_from_checkpoint", "last", steps=2))
    assert "seed: checkpoint 0, now 1" in str(e.value) and "data_seed: checkpoint 0, now 1" in str(e.value)
    assert "gradient_accumulation_steps: checkpoint 1, now 2" in str(e.value)
    assert not (out / "checkpoint-2").exists()


def test_same_run_check_by_hand(tmp_path):
    rec = train.run_record(0, None, 1, 2, 4, {"a": 3})
    (tmp_path / train.RUN_RECORD).write_text(json.dumps(rec))
    train.check_same_run(tmp_path, train.run_record(0, 0, 1, 2, 4, {"a": 3}))  # data_seed None is the seed
    with pytest.raises(ValueError, match=r"mixture: checkpoint \{'a': 3\}, now \{'a': 4\}"):
        train.check_same_run(tmp_path, train.run_record(0, None, 1, 2, 4, {"a": 4}))
    with pytest.raises(ValueError, match="world_size: checkpoint 4, now 2"):
        train.check_same_run(tmp_path, train.run_record(0, None, 1, 2, 2, {"a": 3}))
    train.check_same_run(tmp_path / "old", rec)  # a checkpoint without the record: not checked
