import math

import pytest
import torch

from lnl_core import METHODS, LNLError, build_config, losses, noise, run_experiment
from lnl_core.data import DeviceData, synthetic
from lnl_core.engine import choose_device
from lnl_core.experiment import make_run, prepare_data
from lnl_core.trainers.pmnar import prune_complementary

K = 5


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, K, generator=g) * 3
    labels = torch.randint(0, K, (8,), generator=g)
    mask = torch.rand(8, K, generator=g) < 0.6
    mask[torch.arange(8), labels] = False  # a complementary set never holds the given label
    return logits, labels, mask


def _softmax_row(row):
    """Softmax of one row of logits, written out in float64 Python arithmetic."""
    top = max(row)
    e = [math.exp(v - top) for v in row]
    return [v / sum(e) for v in e]


# --------------------------------------------------------------------------- losses


def test_nl_loss_matches_formula(batch):
    logits, labels, _ = batch
    cbar = (labels + 2) % K
    got = losses.nl_loss(logits, cbar, "none")
    for i in range(8):
        p = _softmax_row(logits[i].tolist())
        assert got[i].item() == pytest.approx(-math.log(1 - p[cbar[i]]), rel=1e-5, abs=1e-6)


def test_ml_loss_matches_formula(batch):
    logits, _, mask = batch
    got = losses.ml_loss(logits, mask, "none")
    for i in range(8):
        p = _softmax_row(logits[i].tolist())
        expected = -sum(math.log(1 - p[k]) for k in range(K) if mask[i, k])
        assert got[i].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_pm_loss_is_ce_plus_ml(batch):
    logits, labels, mask = batch
    got = losses.pm_loss(logits, labels, mask, "none")
    assert torch.allclose(got, losses.ce(logits, labels, "none") + losses.ml_loss(logits, mask, "none"))
    for i in range(8):
        p = _softmax_row(logits[i].tolist())
        expected = -math.log(p[labels[i]]) - sum(math.log(1 - p[k]) for k in range(K) if mask[i, k])
        assert got[i].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_nl_loss_is_ml_loss_with_a_one_hot_mask(batch):
    logits, labels, _ = batch
    cbar = (labels + 1) % K
    one_hot = torch.nn.functional.one_hot(cbar, K).bool()
    assert torch.allclose(losses.nl_loss(logits, cbar, "none"), losses.ml_loss(logits, one_hot, "none"))


def test_ml_loss_of_an_empty_set_is_zero(batch):
    logits, _, _ = batch
    assert torch.equal(losses.ml_loss(logits, torch.zeros(8, K, dtype=torch.bool), "none"), torch.zeros(8))
    assert losses.ml_loss(torch.zeros(3, 1), torch.zeros(3, 1, dtype=torch.bool)).item() == 0.0  # K = 1


@pytest.mark.parametrize("name", ["nl", "ml", "pm"])
def test_reductions_and_float32(name, batch):
    logits, labels, mask = batch
    fn = {
        "nl": lambda r: losses.nl_loss(logits.bfloat16(), (labels + 1) % K, r),
        "ml": lambda r: losses.ml_loss(logits.bfloat16(), mask, r),
        "pm": lambda r: losses.pm_loss(logits.bfloat16(), labels, mask, r),
    }[name]
    per = fn("none")
    assert per.shape == (8,) and per.dtype == torch.float32
    assert torch.allclose(fn("mean"), per.mean()) and torch.allclose(fn("sum"), per.sum())
    with pytest.raises(ValueError, match="reduction"):
        fn("avg")


def test_ml_loss_rejects_a_mask_of_another_shape(batch):
    logits, _, mask = batch
    with pytest.raises(ValueError, match="shape"):
        losses.ml_loss(logits, mask[:, :3])


@pytest.mark.parametrize("scale", [30.0, 200.0, 1e4])
def test_finite_values_and_gradients_when_a_probability_reaches_one(scale):
    labels = torch.tensor([0, 1, 2, 3])
    full = ~torch.nn.functional.one_hot(labels, K).bool()
    for hot in (labels, (labels + 1) % K):  # p_y -> 1, then a complementary p_cbar -> 1
        logits = (scale * torch.nn.functional.one_hot(hot, K).float()).requires_grad_(True)
        assert torch.softmax(logits, 1).max() > 1 - 1e-6
        total = (
            losses.pm_loss(logits, labels, full)
            + losses.ml_loss(logits, full)
            + losses.nl_loss(logits, (labels + 1) % K)
        )
        total.backward()
        assert torch.isfinite(total) and torch.isfinite(logits.grad).all()
    # -log(1 - p_cbar) for a confident wrong class grows like its logit margin instead of inf
    assert losses.nl_loss(torch.tensor([[0.0, 200.0]]), torch.tensor([1])).item() == pytest.approx(200.0)


def test_random_complementary_is_never_the_label_and_uniform_over_the_others():
    g = torch.Generator().manual_seed(0)
    n = 40_000
    labels = torch.randint(0, K, (n,), generator=g)
    cbar = losses.random_complementary(labels, K, generator=g)
    assert cbar.shape == (n,) and not (cbar == labels).any()
    # given label 2: each of the 4 other classes about 1/4 of the time
    counts = torch.bincount(cbar[labels == 2], minlength=K).double()
    share = counts / counts.sum()
    assert share[2] == 0 and torch.allclose(
        share[[0, 1, 3, 4]], torch.full((4,), 0.25, dtype=torch.float64), atol=0.02
    )
    # a fresh draw differs (one label per sample per iteration)
    assert (losses.random_complementary(labels, K, generator=g) != cbar).any()
    with pytest.raises(ValueError, match="2 classes"):
        losses.random_complementary(labels[:3] * 0, 1)


def test_random_complementary_within_an_allowed_set():
    g = torch.Generator().manual_seed(1)
    n = 20_000
    labels = torch.zeros(n, dtype=torch.long)
    allowed = torch.zeros(n, K, dtype=torch.bool)
    allowed[:, [0, 1, 3]] = True  # the given label 0 is excluded even when allowed
    allowed[-100:] = False  # empty sets: the label comes back, to be masked by the caller
    cbar = losses.random_complementary(labels, K, generator=g, allowed=allowed)
    share = torch.bincount(cbar[:-100], minlength=K).double() / (n - 100)
    assert share[0] == 0 and share[2] == 0 and share[4] == 0
    assert share[1] == pytest.approx(0.5, abs=0.02) and share[3] == pytest.approx(0.5, abs=0.02)
    assert torch.equal(cbar[-100:], labels[-100:])


def test_ar_weights_is_label_probability_minus_its_minimum():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(1000, generator=g)
    w = losses.ar_weights(p)
    assert torch.allclose(w, p - p.min())  # Eq. (4)
    assert w.min() == 0 and w.max() < 1 and w.dtype == torch.float32


def test_ar_weights_fall_back_to_ones_when_all_probabilities_are_equal():
    assert torch.equal(losses.ar_weights(torch.full((7,), 0.1)), torch.ones(7))  # uniform output, K = 10
    assert torch.equal(losses.ar_weights(torch.tensor([0.3])), torch.ones(1))
    with pytest.raises(ValueError, match="non-empty"):
        losses.ar_weights(torch.zeros(0))
    with pytest.raises(ValueError):
        losses.ar_weights(torch.zeros(3, 2))


def test_consistency_kl_matches_formula(batch):
    logits, _, _ = batch
    g = torch.Generator().manual_seed(3)
    target = torch.softmax(torch.randn(8, K, generator=g), 1)
    target[0] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])  # 0 log 0 = 0
    got = losses.consistency_kl(target, logits, "none")
    for i in range(8):
        q = _softmax_row(logits[i].tolist())
        t = target[i].tolist()
        expected = sum(t[k] * (math.log(t[k]) - math.log(q[k])) for k in range(K) if t[k] > 0)
        assert got[i].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert losses.consistency_kl(torch.softmax(logits, 1), logits).abs() < 1e-6


# --------------------------------------------------------------------------- pruning


def test_pruning_only_removes_labels_and_never_adds_the_given_one():
    labels = torch.tensor([0, 1, 2, 3])
    full = ~torch.nn.functional.one_hot(labels, K).bool()  # (4, K)
    step1 = prune_complementary(full, torch.tensor([1, 1, 4, 0]))  # sample 1 predicts its own label
    expected = full.clone()
    expected[0, 1] = expected[2, 4] = expected[3, 0] = False
    assert torch.equal(step1, expected) and torch.equal(full, ~torch.nn.functional.one_hot(labels, K).bool())
    step2 = prune_complementary(step1, torch.tensor([2, 1, 4, 1]))
    assert torch.equal(step2, step1 & step2) and step2.sum() == step1.sum() - 2  # monotone
    assert not step2[torch.arange(4), labels].any()
    with pytest.raises(ValueError, match="bool"):
        prune_complementary(full.long(), labels)
    with pytest.raises(ValueError, match="predictions"):
        prune_complementary(full, labels[:2])


# --------------------------------------------------------------------------- trainer


def _tiny(**kw):
    return dict({"train_size": 400, "test_size": 200, "epochs": 3, "warmup_epochs": 1}, **kw)


def _same(a, b):
    """Histories equal, counting NaN (the precision of an empty selection) equal to NaN."""

    def marked(history):
        return [{k: "nan" if v != v else v for k, v in record.items()} for record in history]

    return marked(a) == marked(b)


def test_resume_is_exact_and_the_masks_shrink_over_epochs(tmp_path):
    straight = run_experiment("pmnar", overrides=_tiny(), quiet=True, out=tmp_path / "a")
    part = run_experiment("pmnar", overrides=_tiny(), quiet=True, out=tmp_path / "b", stop_after=2)
    mask_at_2 = part.output.state["complementary"].clone()  # pruned once (epoch 2 of 3)
    resumed = run_experiment("pmnar", overrides=_tiny(), quiet=True, out=tmp_path / "b", resume=True)
    assert _same(resumed.history, straight.history)
    for key in ("complementary", "weights", "clean_prob"):
        assert torch.equal(resumed.output.state[key], straight.output.state[key]), key
    # the masks only lose labels, and never hold the given label
    labels = torch.from_numpy(straight.noisy.noisy)
    full = ~torch.nn.functional.one_hot(labels, 10).bool().expand(2, -1, -1)
    mask_at_3 = resumed.output.state["complementary"]
    assert mask_at_2.shape == (2, 400, 10)
    assert torch.equal(mask_at_2 & full, mask_at_2) and torch.equal(mask_at_3 & mask_at_2, mask_at_3)
    assert mask_at_3.sum() < mask_at_2.sum() < full.sum()
    # each network is weighted by its peer's confidences (Eq. (8))
    state = straight.output.state
    assert torch.equal(state["weights"][0], losses.ar_weights(state["clean_prob"][1]))
    assert torch.equal(state["weights"][1], losses.ar_weights(state["clean_prob"][0]))


def test_records_noise_detection_per_network():
    res = run_experiment("pmnar", overrides=_tiny(epochs=2), quiet=True)
    first, last = res.history
    assert "f1" not in first and "train_consistency" in first  # warm-up: no pass yet
    for key in ("selection_auc", "precision", "recall", "f1", "labeled_fraction"):
        assert last[key] == pytest.approx((last[key + "_net1"] + last[key + "_net2"]) / 2, nan_ok=True)
    assert 0 <= last["ar_weight_mislabelled"] < 1 and 0 <= last["ar_weight_clean"] < 1
    assert 0 < last["complementary_size"] <= 9 and 0 <= last["true_label_in_complementary"] <= 1


@pytest.mark.parametrize("loss", ["ce", "nl", "ml"])
def test_single_network_ablations(loss):
    ov = _tiny(epochs=2, loss=loss, dual=False, beta=0.0, reweight=loss != "ce")
    res = run_experiment("pmnar", overrides=ov, quiet=True)
    state = res.output.state
    assert list(res.output.models) == ["net"] and state["complementary"].shape == (1, 400, 10)
    assert res.history[-1]["train_consistency"] == 0.0 and "f1_net1" not in res.history[-1]
    if loss == "ce":
        assert torch.equal(state["weights"], torch.ones(1, 400))  # AR off
    else:
        assert torch.equal(state["weights"][0], losses.ar_weights(state["clean_prob"][0]))  # own weights


def test_bad_hyperparameters_are_clear_errors():
    with pytest.raises(LNLError, match="unknown PMNAR loss 'mae'"):
        build_config("pmnar", overrides={"loss": "mae"})
    with pytest.raises(LNLError, match="consistency_augment"):
        build_config("pmnar", overrides={"consistency_augment": "mixup"})
    with pytest.raises(LNLError, match="beta"):
        build_config("pmnar", overrides={"beta": -1.0})


@pytest.mark.parametrize("dataset,warmup,beta", [("cifar10", 10, 1.0), ("cifar100", 30, 0.5)])
@pytest.mark.parametrize("kind,rate", [("symmetric", 0.5), ("asymmetric", 0.3)])
def test_full_profile_is_the_paper_configuration(dataset, warmup, beta, kind, rate):
    cfg = build_config("pmnar", dataset=dataset, noise=kind, rate=rate, profile="full")
    assert cfg.model == "preact_resnet18" and cfg.train_size is None
    assert cfg.epochs == 300 and cfg.lr == 0.02 and cfg.schedule == "multistep"
    assert cfg.milestones == (120, 240) and cfg.lr_gamma == 0.1
    assert cfg.momentum == 0.9 and cfg.weight_decay == 5e-4 and cfg.batch_size == 128
    assert cfg.augment == "weak" and cfg.hp.consistency_augment == "strong"
    assert cfg.hp.warmup_epochs == warmup and cfg.hp.beta == beta
    assert cfg.hp.loss == "pm" and cfg.hp.reweight and cfg.hp.dual and cfg.hp.threshold == 0.5


def test_reduced_profile():
    cfg = build_config("pmnar")  # the profile's budget, DivideMix's calibrated warm-up, its views
    assert (
        cfg.epochs == 30 and cfg.schedule == "cosine" and cfg.hp.warmup_epochs == 10 and cfg.augment == "flip"
    )
    assert cfg.hp.consistency_augment == "weak"  # RandAugment costs ~15x a CPU epoch here


@pytest.mark.slow
def test_full_profile_smoke_on_cifar_shaped_data():
    """The full-profile pipeline (PreAct ResNet-18, 32x32x3, crop + flip for x, RandAugment
    for Aug(x), pass + pruning + AR from the first epoch) on random CIFAR-shaped data."""
    cfg = build_config(
        "pmnar", dataset="cifar10", profile="full",
        overrides={"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "eval_batch_size": 64},
    )  # fmt: skip
    train_set, test_set = synthetic("cifar10", 16, seed=0), synthetic("cifar10", 8, seed=1, split="test")
    noisy = noise.symmetric(train_set.labels.numpy(), 0.5, 10, seed=0)
    run = make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"))
    out = METHODS["pmnar"].train(run, cfg.hp)
    record = out.history[-1]
    assert math.isfinite(record["train_loss"]) and record["train_consistency"] > 0
    assert out.state["complementary"].shape == (2, 16, 10) and "f1" in record


def test_headline_is_network_f_and_the_ensemble_is_recorded_beside_it():
    """Algorithm 1 outputs theta (network f): test_acc is f alone, test_acc_ensemble the two
    networks' summed logits, both every epoch; a single-network run records no ensemble."""
    from lnl_core.engine import accuracy

    res = run_experiment("pmnar", overrides={"train_size": 400, "test_size": 200, "epochs": 2, "warmup_epochs": 1},
                         quiet=True)  # fmt: skip
    nets = res.output.models
    _, test_set, _ = prepare_data(res.config)
    dev = choose_device("cpu")
    test = DeviceData(test_set.images, test_set.labels, test_set.mean, test_set.std, dev)
    last = res.history[-1]
    assert last["test_acc"] == accuracy([nets["net1"]], test, batch_size=1000)
    assert last["test_acc_ensemble"] == accuracy([nets["net1"], nets["net2"]], test, batch_size=1000)
    assert all("test_acc_ensemble" in h for h in res.history)
    single = run_experiment("pmnar", overrides={"train_size": 400, "test_size": 200, "epochs": 1, "dual": False},
                            quiet=True)  # fmt: skip
    assert "test_acc_ensemble" not in single.history[-1]


def test_without_pruning_the_complementary_sets_stay_whole():
    """prune=False (an ablation): the sets of Alg. 1 line 3 are never touched; the default prunes."""
    pruned = run_experiment("pmnar", overrides=_tiny(), quiet=True)
    whole = run_experiment("pmnar", overrides=_tiny(prune=False), quiet=True)
    labels = torch.from_numpy(whole.noisy.noisy)
    full = ~torch.nn.functional.one_hot(labels, 10).bool().expand(2, -1, -1)
    assert torch.equal(whole.output.state["complementary"], full)
    assert whole.history[-1]["complementary_size"] == 9.0
    assert pruned.output.state["complementary"].sum() < full.sum()
    assert build_config("pmnar").hp.prune and not whole.config.hp.prune
