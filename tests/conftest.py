import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny(monkeypatch):
    """Settings for a run of a few seconds on the CPU."""
    return {"train_size": 400, "test_size": 200, "epochs": 3, "batch_size": 64}
