import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
# A unit test trains what it asserts about: the CI script's run cache (LNL_RUN_CACHE, shared by
# the store check and the notebooks) must not serve a test's run, nor a Ray worker's (the
# workers inherit this environment). tests/test_cache.py sets its own directory.
os.environ.pop("LNL_RUN_CACHE", None)


@pytest.fixture
def tiny(monkeypatch):
    """Settings for a run of a few seconds on the CPU."""
    return {"train_size": 400, "test_size": 200, "epochs": 3, "batch_size": 64}


@pytest.fixture
def initial_parameters(monkeypatch):
    """Filled when training starts: {model name: {parameter name: copy}} of every module that
    ``Run.epochs`` tracks (the networks and any extension's own modules)."""
    from lnl_core.engine import Run

    initial: dict = {}
    original = Run.epochs

    def spy(self, models, optimizers, state=None):
        for name, m in models.items():
            initial[name] = {k: p.detach().clone() for k, p in m.named_parameters() if p.requires_grad}
        return original(self, models, optimizers, state)

    monkeypatch.setattr(Run, "epochs", spy)
    return initial
