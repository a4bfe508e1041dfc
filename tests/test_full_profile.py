"""The full-profile code path (the one Colab users run on a GPU), exercised on the CPU.

Every registered method runs its *full* profile (PreAct ResNet-18 or the paper's network, the
profile's batch sizes and augmentations) on a few hundred CIFAR-shaped synthetic images, with
bf16 autocast and channels-last memory forced on, as on a GPU. Two epochs, the first a warm-up
where the method has one, so that selection and the main training step run too. Weight decay is
set to 0 so that "every trainable parameter moves" can only come from gradients.

The profile's own network, PreAct ResNet-18, runs under one method only, DivideMix, whose trainer
every DivideMix-family method shares; every other method runs its full profile (batch sizes,
augmentations, schedules, its own settings and modules, bf16 autocast, channels-last) on the small
CNN, which exercises its own modules as well at a tenth of the time (the networks themselves are
checked in test_models). PEMM keeps its paper's 8-layer CNN, which is small. Where the CPU has no
bf16 in hardware (no AVX-512 or AMX bf16 kernels in oneDNN) bf16 autocast is emulated: on an AVX2
AMD EPYC one training step of PreAct ResNet-18 on 64 images takes 32-49 s under bf16 against
1.9-2.2 s in float32, so there DivideMix runs on the small CNN too.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from lnl_core import METHODS, build_config, noise
from lnl_core.data import synthetic
from lnl_core.engine import CHECKPOINT, Run, choose_device, per_sample_pass
from lnl_core.experiment import make_run

N_TRAIN, N_TEST = 256, 64


def _native_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


NATIVE_BF16 = _native_bf16()


def _config(method: str, **overrides):
    hp_names = {f.name for f in dataclasses.fields(METHODS[method].hparams)}
    settings = {
        "epochs": 2,
        "precision": "bf16",
        "channels_last": "on",
        "weight_decay": 0.0,
        "eval_batch_size": 256,
    }
    if "warmup_epochs" in hp_names:
        settings["warmup_epochs"] = 1
    if method not in ("dividemix", "pemm") or not NATIVE_BF16:  # the profile's network once (see above)
        settings["model"] = "small_cnn"
    settings.update(overrides)
    kind = "symmetric-exclusive" if method == "pemm" else "symmetric"
    return build_config(method, dataset="cifar10", noise=kind, rate=0.5, profile="full", overrides=settings)


def _data(cfg):
    train_set, test_set = (
        synthetic("cifar10", N_TRAIN, seed=0),
        synthetic("cifar10", N_TEST, seed=1, split="test"),
    )
    noisy = noise.make(cfg.noise, train_set.labels.numpy(), cfg.rate, 10, seed=0)
    return train_set, test_set, noisy


def _train(cfg, run_dir, **run_kw):
    run = make_run(cfg, *_data(cfg), device=choose_device("cpu"), run_dir=run_dir, **run_kw)
    assert run.amp_dtype == torch.bfloat16 and run.channels_last
    return METHODS[cfg.method].train(run, cfg.hp), run


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_full_profile_epoch_under_bf16_autocast_and_channels_last(
    method, tmp_path, initial_parameters, monkeypatch
):
    cfg = _config(method)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save = Run._save

    def keep_first(self, epochs_done):  # the checkpoint a kill after epoch 1 would have left
        save(self, epochs_done)
        if epochs_done == 1 and self.run_dir == tmp_path / "a":
            shutil.copy(tmp_path / "a" / CHECKPOINT, tmp_path / "b" / CHECKPOINT)

    monkeypatch.setattr(Run, "_save", keep_first)
    out, run = _train(cfg, tmp_path / "a")
    initial = dict(initial_parameters)  # the straight run's start (the resumed runs below refill it)
    assert len(out.history) == 2
    for record in out.history:
        losses = {k: v for k, v in record.items() if k.startswith("train_")}
        assert losses and all(np.isfinite(v) for v in losses.values()), losses
        assert 0.0 <= record["test_acc"] <= 100.0
    convs = [p for model in out.models.values() for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    for name, model in out.models.items():
        still = [
            k for k, p in model.named_parameters() if p.requires_grad and torch.equal(p, initial[name][k])
        ]
        assert not still, f"{method}: parameters of {name} that never moved: {still[:5]}"
    # the per-sample pass that feeds selection stays float32 under autocast
    net = next(iter(out.models.values()))
    passed = run.per_sample(net)
    assert passed["losses"].dtype == torch.float32
    fp32 = per_sample_pass(net, run.train, batch_size=64)
    assert torch.allclose(passed["losses"], fp32["losses"], rtol=1e-5, atol=1e-6)
    # resume after a kill at the end of the first epoch gives the same history and weights
    resumed, _ = _train(cfg, tmp_path / "b", resume=True)
    assert json.dumps(resumed.history) == json.dumps(out.history)  # NaN-safe (empty selections give NaN)
    for name, model in out.models.items():
        theirs = resumed.models[name].state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items()), name


def _fp16_supported_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2))
        torch.amp.GradScaler("cpu")
    except (RuntimeError, TypeError, AttributeError, AssertionError):
        return False
    return True


@pytest.mark.skipif(
    not _fp16_supported_on_cpu(), reason="this torch has no fp16 autocast or GradScaler on the CPU"
)
def test_fp16_with_the_gradient_scaler_steps_and_resumes(tmp_path, monkeypatch):
    """fp16 autocast + GradScaler (the T4 path). A ResNet's fp16 backward on the CPU takes
    minutes per step, so this uses the small CNN on CIFAR-shaped data, two batches an epoch."""
    cfg = build_config(
        "ce", dataset="cifar10", profile="full",
        overrides={"model": "small_cnn", "precision": "fp16", "epochs": 2, "batch_size": 128, "weight_decay": 0.0},
    )  # fmt: skip
    train_set, test_set, noisy = _data(cfg)
    (tmp_path / "a").mkdir()
    run = make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"), run_dir=tmp_path / "a")
    assert run.amp_dtype == torch.float16 and run.scaler is not None and run.scaler.is_enabled()
    before = {k: v.clone() for k, v in run.model().state_dict().items()}  # the same init as the trainer's
    run = make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"), run_dir=tmp_path / "a")
    out = METHODS["ce"].train(run, cfg.hp)
    assert all(np.isfinite(h["train_loss"]) for h in out.history)
    after = out.models["net"].state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    saved = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["scaler"]
    assert saved is not None and saved["scale"] > 0
    (tmp_path / "b").mkdir()
    stopped = make_run(
        cfg, train_set, test_set, noisy, device=choose_device("cpu"), run_dir=tmp_path / "b", stop_after=1
    )
    METHODS["ce"].train(stopped, cfg.hp)
    resumed = make_run(
        cfg, train_set, test_set, noisy, device=choose_device("cpu"), run_dir=tmp_path / "b", resume=True
    )
    assert METHODS["ce"].train(resumed, cfg.hp).history == out.history
    assert resumed.scaler.state_dict() == run.scaler.state_dict()
