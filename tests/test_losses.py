import math

import pytest
import torch

from lnl_core import losses


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 10, generator=g) * 3, torch.randint(0, 10, (32,), generator=g)


def _probs(logits):
    z = logits.double()
    e = (z - z.max(1, keepdim=True).values).exp()
    return e / e.sum(1, keepdim=True)


def test_ce_matches_formula(batch):
    logits, y = batch
    p = _probs(logits)
    expected = -p[torch.arange(32), y].log()
    assert torch.allclose(losses.ce(logits, y, "none").double(), expected, atol=1e-5)


def test_gce_matches_formula_and_limits(batch):
    logits, y = batch
    p_y = _probs(logits)[torch.arange(32), y]
    q = 0.7
    expected = (1 - p_y**q) / q
    assert torch.allclose(losses.gce(logits, y, q=q, reduction="none").double(), expected, atol=1e-5)
    # q = 1 is MAE (1 - p_y); small q approaches CE
    assert torch.allclose(losses.gce(logits, y, q=1.0, reduction="none").double(), 1 - p_y, atol=1e-5)
    ce = losses.ce(logits, y, "none")
    assert torch.allclose(losses.gce(logits, y, q=1e-3, reduction="none"), ce, rtol=0.02, atol=0.01)


def test_rce_matches_clamped_one_hot_sum(batch):
    logits, y = batch
    p = _probs(logits)
    A = -4.0
    log_q = torch.full((32, 10), A, dtype=torch.float64)
    log_q[torch.arange(32), y] = math.log(1.0)
    expected = -(p * log_q).sum(1)
    got = losses.rce(logits, y, A=A, reduction="none").double()
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got, -A * (1 - p[torch.arange(32), y]), atol=1e-5)


def test_sce_is_weighted_sum(batch):
    logits, y = batch
    got = losses.sce(logits, y, alpha=0.3, beta=2.0, A=-6.0, reduction="none")
    expected = 0.3 * losses.ce(logits, y, "none") + 2.0 * losses.rce(logits, y, A=-6.0, reduction="none")
    assert torch.allclose(got, expected)


def test_gce_gradient_matches_finite_differences(batch):
    logits, y = batch
    z = logits[:4].clone().double().requires_grad_(True)
    y = y[:4]

    def f(z):
        p = torch.softmax(z, 1)[torch.arange(4), y]
        return ((1 - p**0.7) / 0.7).sum()

    zf = z.detach().float().requires_grad_(True)
    losses.gce(zf, y, q=0.7, reduction="sum").backward()
    eps = 1e-6
    numeric = torch.zeros_like(z)
    for i in range(4):
        for k in range(10):
            d = torch.zeros_like(z)
            d[i, k] = eps
            numeric[i, k] = (f(z + d) - f(z - d)) / (2 * eps)
    assert torch.allclose(zf.grad.double(), numeric, atol=1e-4)


@pytest.mark.parametrize("fn", [losses.ce, losses.gce, losses.rce, losses.sce])
def test_reductions(fn, batch):
    logits, y = batch
    per = fn(logits, y, reduction="none")
    assert per.shape == (32,) and per.dtype == torch.float32
    assert torch.allclose(fn(logits, y, reduction="mean"), per.mean())
    assert torch.allclose(fn(logits, y, reduction="sum"), per.sum())
    with pytest.raises(ValueError, match="reduction"):
        fn(logits, y, reduction="avg")


def test_bad_parameters(batch):
    logits, y = batch
    with pytest.raises(ValueError):
        losses.gce(logits, y, q=0.0)
    with pytest.raises(ValueError):
        losses.rce(logits, y, A=1.0)


def test_losses_are_float32_under_bf16_inputs(batch):
    logits, y = batch
    assert losses.sce(logits.bfloat16(), y, reduction="none").dtype == torch.float32
