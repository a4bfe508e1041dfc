import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnl_core import METHODS, build_config, noise, run_experiment
from lnl_core.data import synthetic
from lnl_core.engine import choose_device
from lnl_core.experiment import make_run
from lnl_core.trainers.dividemix import mixmatch_losses, neg_entropy, sharpen


@pytest.mark.parametrize(
    "dataset,kind,rate,expect",
    [
        ("cifar10", "symmetric", 0.2, dict(lambda_u=0.0, p_threshold=0.5, loss_average=1, warmup_epochs=10)),
        ("cifar10", "symmetric", 0.5, dict(lambda_u=25.0, p_threshold=0.5, loss_average=1)),
        ("cifar10", "symmetric", 0.8, dict(lambda_u=25.0)),
        ("cifar10", "symmetric", 0.9, dict(lambda_u=50.0, p_threshold=0.6, loss_average=5)),
        ("cifar10", "asymmetric", 0.4, dict(lambda_u=0.0, entropy_penalty=True)),
        ("cifar100", "symmetric", 0.2, dict(lambda_u=0.0, warmup_epochs=30)),
        ("cifar100", "symmetric", 0.5, dict(lambda_u=150.0, warmup_epochs=30, entropy_penalty=False)),
        ("cifar100", "symmetric", 0.9, dict(lambda_u=150.0, p_threshold=0.6, loss_average=5)),
    ],
)
def test_full_profile_is_the_paper_configuration(dataset, kind, rate, expect):
    cfg = build_config("dividemix", dataset=dataset, noise=kind, rate=rate, profile="full")
    assert cfg.model == "preact_resnet18" and cfg.train_size is None and cfg.augment == "weak"
    assert cfg.epochs == 300 and cfg.lr == 0.02 and cfg.milestones == (150,) and cfg.lr_gamma == 0.1
    assert cfg.momentum == 0.9 and cfg.weight_decay == 5e-4 and cfg.batch_size == 64
    assert cfg.hp.T == 0.5 and cfg.hp.alpha == 4.0 and cfg.hp.rampup_epochs == 16
    for key, value in expect.items():
        assert getattr(cfg.hp, key) == value, key


def test_sharpen_and_mixmatch_losses_by_hand():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    expected = p**2 / (p**2).sum()
    assert torch.allclose(sharpen(p, 0.5), expected)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=g)
    targets = torch.softmax(torch.randn(6, 3, generator=g), 1)
    lx, lu, pen = mixmatch_losses(logits, targets, 4)
    logp = torch.log_softmax(logits, 1)
    assert torch.allclose(lx, -(targets[:4] * logp[:4]).sum(1).mean())
    assert torch.allclose(lu, ((logp[4:].exp() - targets[4:]) ** 2).mean())
    mean_pred = logp.exp().mean(0)
    assert torch.allclose(pen, (torch.full((3,), 1 / 3) * torch.log((1 / 3) / mean_pred)).sum())
    assert torch.allclose(neg_entropy(logits), (logp.exp() * logp).sum(1).mean())
    assert pen >= 0  # a KL divergence


def test_penalty_vanishes_for_uniform_mean_prediction():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]]))
    _, _, pen = mixmatch_losses(logits, F.softmax(logits, 1), 3)
    assert abs(pen.item()) < 1e-6


def _tiny(**kw):
    return dict({"train_size": 400, "test_size": 200, "epochs": 3, "warmup_epochs": 1}, **kw)


def test_dividemix_records_selection_metrics_for_both_networks(tmp_path):
    res = run_experiment("dividemix", overrides=_tiny(), quiet=True, out=tmp_path / "r")
    first, last = res.history[0], res.history[-1]
    assert "selection_auc" not in first  # warm-up: no division yet
    for key in ("selection_auc", "precision", "recall", "f1", "labeled_fraction"):
        for suffix in ("", "_net1", "_net2"):
            assert key + suffix in last
    assert 0.0 <= last["labeled_fraction"] <= 1.0
    assert res.output.state["clean_prob"].shape == (2, 400)


def test_dividemix_resume_is_exact(tmp_path):
    straight = run_experiment("dividemix", overrides=_tiny(), quiet=True, out=tmp_path / "a")
    run_experiment("dividemix", overrides=_tiny(), quiet=True, out=tmp_path / "b", stop_after=2)
    resumed = run_experiment("dividemix", overrides=_tiny(), quiet=True, out=tmp_path / "b", resume=True)
    assert resumed.history == straight.history
    for key in ("clean_prob", "loss_history", "loss_count"):
        assert torch.equal(resumed.output.state[key], straight.output.state[key])


@pytest.mark.slow
def test_full_profile_smoke_two_iterations_on_cifar_shaped_data():
    """The full-profile pipeline (PreAct ResNet-18, 32x32x3, weak augmentation, co-divide,
    MixMatch) on random CIFAR-shaped data, with a batch of 8 so that each network takes
    only a couple of MixMatch iterations on the CPU."""
    cfg = build_config(
        "dividemix", dataset="cifar10", profile="full",
        overrides={"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "eval_batch_size": 64},
    )  # fmt: skip
    train_set, test_set = synthetic("cifar10", 24, seed=0), synthetic("cifar10", 16, seed=1, split="test")
    noisy = noise.symmetric(train_set.labels.numpy(), 0.5, 10, seed=0)
    run = make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"))
    out = METHODS["dividemix"].train(run, cfg.hp)
    record = out.history[-1]
    assert np.isfinite(record["train_loss"]) and 0 <= record["test_acc"] <= 100
    assert out.state["clean_prob"].shape == (2, 24)
