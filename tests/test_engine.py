import dataclasses
import io
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from lnl_core import METHODS, engine, run_experiment
from lnl_core.config import RunConfig
from lnl_core.data import DeviceData
from lnl_core.errors import LNLError
from lnl_core.experiment import build_config
from lnl_core.models import build_model


def _cfg(**kw):
    return dataclasses.replace(build_config("ce"), **kw)


def test_lr_schedules():
    cfg = _cfg(lr=0.02, schedule="multistep", milestones=(150,), epochs=300)
    assert engine.lr_at(149, cfg) == pytest.approx(0.02)
    assert engine.lr_at(150, cfg) == pytest.approx(0.002)
    cos = _cfg(lr=0.1, schedule="cosine", epochs=10)
    assert engine.lr_at(0, cos) == pytest.approx(0.1)
    assert engine.lr_at(5, cos) == pytest.approx(0.05)
    assert engine.lr_at(9, cos) < 0.003
    assert engine.lr_at(7, _cfg(lr=0.3, schedule="constant")) == 0.3


def test_per_sample_pass_matches_manual_forward():
    torch.manual_seed(0)
    net = build_model("small_cnn", num_classes=10, in_channels=1, image_size=28).eval()
    images = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (37,))
    data = DeviceData(images, labels, (0.3,), (0.35,), "cpu")
    out = engine.per_sample_pass(net, data, batch_size=8, features=True)
    with torch.no_grad():
        logits = net(data.normalize(images))
    assert (
        out["losses"].shape == (37,) and out["probs"].shape == (37, 10) and out["features"].shape == (37, 256)
    )
    assert torch.allclose(out["losses"], F.cross_entropy(logits, labels, reduction="none"), atol=1e-5)
    assert torch.allclose(out["probs"].sum(1), torch.ones(37))
    assert out["losses"].dtype == torch.float32


def test_accuracy_sums_logits_of_models():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, x):
            return self.logits[: x.shape[0]]

    data = DeviceData(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), (0.0,), (1.0,), "cpu")
    a = Fixed(torch.tensor([[2.0, 0.0], [2.0, 0.0]]))
    b = Fixed(torch.tensor([[0.0, 1.0], [0.0, 3.0]]))
    assert engine.accuracy([a], data) == 50.0
    assert engine.accuracy([a, b], data) == 100.0  # (2,1) -> 0 and (2,3) -> 1


def test_choose_device_errors():
    assert engine.choose_device("cpu").type == "cpu"
    with pytest.raises(LNLError):
        engine.choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(LNLError, match="no CUDA"):
            engine.choose_device("cuda")


def test_corrupt_checkpoint_is_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"\x00garbage")
    with pytest.raises(LNLError, match="corrupt"):
        engine.load_checkpoint(tmp_path / "checkpoint.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(LNLError, match="not an lnl_core checkpoint"):
        engine.load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_refuses_arbitrary_objects(tmp_path):
    # weights_only=True: a pickled object that would run code is refused
    torch.save({"format": 1, "obj": RunConfig}, tmp_path / "evil.pt")
    with pytest.raises(LNLError, match="corrupt"):
        engine.load_checkpoint(tmp_path / "evil.pt")


def _weights(result):
    return {k: v.clone() for k, v in result.output.models["net"].state_dict().items()}


def test_resume_is_exact(tmp_path, tiny):
    # 3 epochs straight vs 2 epochs, "killed", then resumed for the third
    straight = run_experiment("ce", out=tmp_path / "a", overrides=tiny, quiet=True, device="cpu")
    part = run_experiment("ce", out=tmp_path / "b", overrides=tiny, quiet=True, device="cpu", stop_after=2)
    assert len(part.history) == 2 and not (tmp_path / "b" / "result.json").exists()
    resumed = run_experiment("ce", out=tmp_path / "b", overrides=tiny, quiet=True, device="cpu", resume=True)
    assert resumed.history == straight.history
    wa, wb = _weights(straight), _weights(resumed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    for key in ("final_test_acc", "mean_last10_test_acc", "best_test_acc", "actual_noise_rate"):
        assert resumed.summary[key] == straight.summary[key]


def test_resume_auto_starts_then_continues_a_run(tmp_path, tiny):
    # a notebook cell run again after a disconnect: the first call starts, the second continues
    from lnl_core import build_config, run_config

    cfg = build_config("ce", overrides=dict(tiny, epochs=2))
    straight = run_config(cfg, quiet=True)
    first = run_config(cfg, out=tmp_path / "r", resume="auto", quiet=True, stop_after=1)
    assert len(first.history) == 1 and not (tmp_path / "r" / "result.json").exists()
    again = run_config(cfg, out=tmp_path / "r", resume="auto", quiet=True)
    assert again.history == straight.history and (tmp_path / "r" / "result.json").is_file()
    with pytest.raises(LNLError, match="resume must be True, False or 'auto'"):
        run_config(cfg, resume="yes")


def test_resume_with_augmentation_is_exact(tmp_path, tiny):
    # the crop/flip generator state must be restored too
    ov = dict(tiny, augment="strong", epochs=2)
    straight = run_experiment("ce", out=tmp_path / "a", overrides=ov, quiet=True)
    run_experiment("ce", out=tmp_path / "b", overrides=ov, quiet=True, stop_after=1)
    resumed = run_experiment("ce", out=tmp_path / "b", overrides=ov, quiet=True, resume=True)
    assert resumed.history == straight.history


def test_resume_with_other_config_refused(tmp_path, tiny):
    run_experiment("ce", out=tmp_path / "r", overrides=tiny, quiet=True, stop_after=1)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(LNLError, match="differs from the checkpoint's in lr"):
        run_experiment("ce", out=tmp_path / "r", overrides=dict(tiny, lr=0.01), quiet=True, resume=True)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


_SMOKE = {"plremix": {"kappa": 0}}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_one_epoch(method, tiny, initial_parameters):
    """Registry-wide smoke test: finite loss, every parameter moved (got a gradient). A method
    with a warm-up skips it, so that the one epoch runs its own selection and training step."""
    overrides = dict(tiny, epochs=1)
    if "warmup_epochs" in {f.name for f in dataclasses.fields(METHODS[method].hparams)}:
        overrides["warmup_epochs"] = 0
    # untrained networks put (nearly) every sample's top classes in one place, so PLReMix's
    # relaxed sets all overlap and no pair is a negative: its given-label-only variant has some
    overrides.update(_SMOKE.get(method, {}))
    result = run_experiment(method, overrides=overrides, quiet=True)
    record = result.history[-1]
    assert torch.isfinite(torch.tensor(record["train_loss"]))
    assert 0.0 <= record["test_acc"] <= 100.0
    assert set(initial_parameters) == set(result.output.models)
    for name, net in result.output.models.items():
        start = initial_parameters[name]
        for pname, p in net.named_parameters():
            assert not torch.equal(p.detach(), start[pname]), f"{method}/{name}: {pname} did not move"


def test_run_is_deterministic_on_cpu(tiny):
    a = run_experiment("sce", overrides=dict(tiny, epochs=2), quiet=True)
    b = run_experiment("sce", overrides=dict(tiny, epochs=2), quiet=True)
    assert a.history == b.history


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_bars_only_in_a_terminal_or_a_notebook(monkeypatch, tiny, capsys):
    fake = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", fake)
    fake.get_ipython = lambda: None  # plain Python
    monkeypatch.setattr(sys, "stderr", _Stream(True))
    assert engine.show_progress() and not engine.show_progress(quiet=True)
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    assert not engine.show_progress()
    fake.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # a Jupyter kernel's shell
    assert engine.show_progress()  # tqdm's widget in a notebook, as before
    monkeypatch.undo()
    # a run that is not quiet, its stderr captured (not a terminal): no bar, no carriage return
    run_experiment("ce", overrides=dict(tiny, epochs=1), quiet=False)
    assert "\r" not in capsys.readouterr().err
