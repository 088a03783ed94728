import os

import pytest

from utils.paths import shared_data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def shared_data():
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent (set AHA_SHARED_DATA to the shared data folder)")
    return d


@pytest.fixture(scope="session")
def qwen2_tokenizer(shared_data):
    from models.chat import load_tokenizer

    return load_tokenizer(str(shared_data / "tokenizers" / "qwen2"))


@pytest.fixture()
def tiny_model():
    from models.build import build_model

    m = build_model("aha-tiny", seed=0)
    m.eval()
    return m


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices: one intra-op thread is several times faster than two on a busy 2-core runner."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
