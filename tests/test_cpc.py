import json
import math

import pytest
import torch

from lnl_core import build_config, noise, run_experiment
from lnl_core.data import synthetic
from lnl_core.engine import choose_device
from lnl_core.errors import LNLError
from lnl_core.experiment import make_run
from lnl_core.trainers.cpc import (
    CPCExtension,
    PrototypeHead,
    clean_score,
    confident_set,
    cpc_loss,
    prototype_logits,
)
from lnl_core.trainers.dividemix import draw_batch, mixmatch_batch


def _sig(s):
    return 1.0 / (1.0 + math.exp(-s))


def test_prototype_logits_and_clean_score_by_hand():
    g = torch.Generator().manual_seed(0)
    emb, protos = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, 3, 1, 1, 2])
    logits = prototype_logits(emb, protos)
    for i in range(5):
        for k in range(4):
            assert logits[i, k].item() == pytest.approx(
                sum(emb[i, j].item() * protos[k, j].item() for j in range(3)), abs=1e-5
            )
    q = clean_score(logits, labels)
    for i in range(5):
        assert q[i].item() == pytest.approx(_sig(logits[i, labels[i]].item()), abs=1e-6)


def test_the_three_loss_terms_by_hand():
    """Eq. (2)-(5) written out with log(sigmoid) in float64, sample by sample."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, generator=g, dtype=torch.float64) * 2
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    in_x = torch.tensor([True, True, False, True, False, False])
    in_p = torch.tensor([False, False, True, False, False, True])
    p_class = torch.tensor([1, 1, 0, 2, 2, 1])
    lam, alpha = 1 / 3, 0.7
    total, parts = cpc_loss(logits, labels, in_x, in_p, p_class, lambda_neg=lam, alpha=alpha)
    log_sig = lambda s: math.log(_sig(s))  # noqa: E731
    lx = -sum(
        log_sig(logits[i, labels[i]].item())
        + lam * sum(math.log(1 - _sig(logits[i, k].item())) for k in range(3) if k != labels[i])
        for i in range(6) if in_x[i]
    ) / 3  # fmt: skip
    lu = -sum(math.log(1 - _sig(logits[i, labels[i]].item())) for i in range(6) if not in_x[i]) / 3
    lp = -sum(log_sig(logits[i, p_class[i]].item()) for i in range(6) if in_p[i]) / 2
    assert parts["lx"].item() == pytest.approx(lx, rel=1e-5)
    assert parts["lu"].item() == pytest.approx(lu, rel=1e-5)
    assert parts["lp"].item() == pytest.approx(lp, rel=1e-5)
    assert total.item() == pytest.approx(lx + lu + alpha * lp, rel=1e-5)


def test_empty_sets_give_zero_terms_and_no_nan():
    logits = torch.randn(4, 3) * 50  # large logits: softplus stays finite where log(sigmoid) would not
    labels = torch.tensor([0, 1, 2, 0])
    none = torch.zeros(4, dtype=torch.bool)
    total, parts = cpc_loss(logits, labels, ~none, none, labels, lambda_neg=0.1, alpha=1.0)
    assert parts["lu"].item() == 0.0 and parts["lp"].item() == 0.0 and torch.isfinite(total)
    total, parts = cpc_loss(logits, labels, none, none, labels, lambda_neg=0.1, alpha=1.0)
    assert parts["lx"].item() == 0.0 and torch.isfinite(total)


def test_confident_set_on_a_hand_made_case():
    # dyadic probabilities, so that the tie below is exact. Thresholds from X^GMM by *given*
    # label: class 0 -> mean(0.75, 0.25) = 0.5, class 1 -> mean(0.875, 0.9375) = 0.90625,
    # class 2 -> no clean sample -> +inf
    probs = torch.tensor(
        [
            [0.75, 0.125, 0.125],  # X^GMM, label 0
            [0.25, 0.5, 0.25],  # X^GMM, label 0
            [0.0625, 0.875, 0.0625],  # X^GMM, label 1
            [0.5, 0.25, 0.25],  # U, predicts 0 at exactly 0.5: strict ">" keeps it out
            [0.625, 0.25, 0.125],  # U, predicts 0 above 0.5: in X^P
            [0.03125, 0.96875, 0.0],  # U, predicts 1 above 0.90625: in X^P
            [0.0, 0.0, 1.0],  # U, predicts 2: no clean sample of class 2, threshold +inf
            [0.0625, 0.9375, 0.0],  # X^GMM (label 1) with a confident prediction: never in X^P
        ]
    )
    labels = torch.tensor([0, 0, 1, 2, 1, 0, 2, 1])
    in_x = torch.tensor([True, True, True, False, False, False, False, True])
    in_p, p_class = confident_set(probs, labels, in_x, 3)
    assert in_p.tolist() == [False, False, False, False, True, True, False, False]
    assert p_class.tolist() == [0, 1, 1, 0, 0, 1, 2, 1]
    assert not (in_p & in_x).any()
    with pytest.raises(ValueError):
        confident_set(probs, labels, in_x.long(), 3)


def test_scores_are_invariant_to_a_common_rotation():
    g = torch.Generator().manual_seed(2)
    emb, protos = (
        torch.randn(7, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 4, generator=g, dtype=torch.float64),
    )
    rot, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    a = clean_score(prototype_logits(emb, protos), labels)
    b = clean_score(prototype_logits(emb @ rot, protos @ rot), labels)
    assert torch.allclose(a, b, atol=1e-6)


def _run(**overrides):
    cfg = build_config(
        "cpc",
        overrides=dict({"train_size": 400, "test_size": 200, "epochs": 3, "warmup_epochs": 1}, **overrides),
    )
    train_set, test_set = synthetic("fashion_mnist", 128, seed=0), synthetic("fashion_mnist", 32, seed=1)
    noisy = noise.symmetric(train_set.labels.numpy(), 0.4, 10, seed=0)
    return cfg, make_run(cfg, train_set, test_set, noisy, device=choose_device("cpu"))


def test_no_gradient_reaches_the_backbone_and_mixmatch_never_moves_the_prototypes():
    cfg, run = _run()
    ext = CPCExtension(cfg.hp)
    nets = [run.model(), run.model()]
    ext.setup(run, nets)
    head = ext.heads[0]
    feats = nets[0].backbone(run.inputs(torch.arange(16)))  # carries the backbone's graph
    loss, _ = cpc_loss(head(feats), run.labels[:16], torch.ones(16, dtype=torch.bool), torch.zeros(16, dtype=torch.bool),
                       run.labels[:16], lambda_neg=0.1, alpha=1.0)  # fmt: skip
    loss.backward()
    assert all(p.grad is None for p in nets[0].parameters())  # the projector's input is detached
    assert head.prototypes.grad is not None and head.projector[0].weight.grad is not None
    head.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    opt = run.optimizer(nets[0].parameters())
    batch = draw_batch(run, cfg.hp, torch.arange(16), torch.arange(16, 32))
    out = mixmatch_batch(
        run, nets[0], nets[1], batch, torch.full((128,), 0.8), cfg.hp, lambda_u=1.0, extension=ext
    )
    assert out["terms"] == {}  # CPC adds nothing to the DNN loss
    run.step(out["loss"], opt)
    assert all(torch.equal(v, head.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in head.parameters())


def test_division_gmm_reproduces_dividemix_bit_for_bit():
    """With division="gmm" the prototypes are learned and recorded but every division is the
    GMM's: the DivideMix history and state must be exactly dividemix's."""
    tiny = {"train_size": 400, "test_size": 200, "epochs": 4, "warmup_epochs": 1, "class_aware": True}
    dm = run_experiment("dividemix", overrides=tiny, quiet=True)
    cpc = run_experiment("cpc", overrides=dict(tiny, division="gmm"), quiet=True)
    for a, b in zip(dm.history, cpc.history):
        assert json.dumps(a, sort_keys=True) == json.dumps({k: b[k] for k in a}, sort_keys=True)
    assert cpc.history[-1]["division"] == "gmm" and "cpc_selection_auc" in cpc.history[-1]
    for key in ("clean_prob", "loss_history"):
        assert torch.equal(dm.output.state[key], cpc.output.state[key])
    for name in ("net1", "net2"):
        a, b = dm.output.models[name].state_dict(), cpc.output.models[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_cpc_switches_to_its_own_division_and_resumes_exactly(tmp_path):
    tiny = {"train_size": 400, "test_size": 200, "epochs": 4, "warmup_epochs": 1, "cpc_warmup_epochs": 1}
    straight = run_experiment("cpc", overrides=tiny, quiet=True, out=tmp_path / "a")
    assert [h.get("division") for h in straight.history] == [None, "gmm", "cpc", "cpc"]
    last = straight.history[-1]
    assert last["labeled_fraction"] == pytest.approx(
        float((straight.output.state["clean_prob"] > 0.5).double().mean()), abs=1e-12
    )
    for key in ("gmm_selection_auc", "cpc_selection_auc", "gmm_other_selection_auc", "q_kl", "q_agreement",
                "x_gmm_fraction", "xp_fraction", "cpc_lx", "cpc_lu", "cpc_lp"):  # fmt: skip
        assert math.isfinite(last[key]), key
    run_experiment("cpc", overrides=tiny, quiet=True, out=tmp_path / "b", stop_after=2)
    resumed = run_experiment("cpc", overrides=tiny, quiet=True, out=tmp_path / "b", resume=True)
    assert json.dumps(resumed.history) == json.dumps(straight.history)
    for name in ("cpc1", "cpc2", "net1"):
        a, b = straight.output.models[name].state_dict(), resumed.output.models[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(straight.output.state["cpc_gen"], resumed.output.state["cpc_gen"])
    ckpt_a, ckpt_b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True) for r in ("a", "b"))
    for name in ("cpc_opt1", "cpc_opt2"):  # the heads' momentum buffers
        moments_a = [s["momentum_buffer"] for s in ckpt_a["optimizers"][name]["state"].values()]
        moments_b = [s["momentum_buffer"] for s in ckpt_b["optimizers"][name]["state"].values()]
        assert moments_a and all(torch.equal(a, b) for a, b in zip(moments_a, moments_b, strict=True)), name


def test_prototype_head_draws_nothing_from_the_global_generator():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    PrototypeHead(16, 8, 4, device="cpu", generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.rand(3), expected)


# Every CIFAR setting of Table 2, by value. A.2.2's transfer rule: the values tuned at CIFAR-100
# sym 50% (e 5%, tau 0.5, alpha 0) for CIFAR-10 and CIFAR-100 up to 50%, those tuned at sym 80%
# (e 10%, tau 0.5, alpha 0) for sym 80% and 90%; the GMM division thresholded at tau (Alg. 1).
_FULL = [
    ("cifar10", "symmetric", 0.2, dict(class_aware=True, cpc_warmup_epochs=23, lambda_u=0.0)),
    ("cifar10", "symmetric", 0.5, dict(class_aware=True, cpc_warmup_epochs=23, lambda_u=25.0)),
    ("cifar10", "symmetric", 0.8, dict(class_aware=True, cpc_warmup_epochs=23, lambda_u=25.0)),
    ("cifar10", "symmetric", 0.9, dict(class_aware=True, cpc_warmup_epochs=23, lambda_u=50.0, loss_average=5)),
    ("cifar10", "asymmetric", 0.4, dict(class_aware=False, cpc_warmup_epochs=23, lambda_u=0.0)),
    ("cifar100", "symmetric", 0.2, dict(class_aware=True, cpc_warmup_epochs=23, lambda_u=25.0)),
    ("cifar100", "symmetric", 0.5, dict(class_aware=True, cpc_warmup_epochs=23, lambda_u=150.0)),
    ("cifar100", "symmetric", 0.8, dict(class_aware=True, cpc_warmup_epochs=45, lambda_u=150.0)),
    ("cifar100", "symmetric", 0.9, dict(class_aware=True, cpc_warmup_epochs=45, lambda_u=150.0, loss_average=5)),
]  # fmt: skip


@pytest.mark.parametrize("dataset,kind,rate,expect", _FULL)
def test_full_profile_is_the_paper_protocol(dataset, kind, rate, expect):
    cfg = build_config("cpc", dataset=dataset, noise=kind, rate=rate, profile="full")
    assert (cfg.epochs, cfg.milestones, cfg.lr, cfg.batch_size, cfg.weight_decay) == (
        450,
        (225,),
        0.02,
        128,
        5e-4,
    )
    assert cfg.model == "preact_resnet18" and cfg.hp.warmup_epochs == 10 and cfg.hp.tau == 0.5
    assert cfg.hp.lambda_neg_scale == 1.0 and cfg.hp.mix_augment == "autoaugment" and cfg.hp.division == "cpc"
    assert cfg.hp.proto_alpha == 0.0 and cfg.hp.gmm_threshold == "tau" and cfg.hp.gmm_cut == 0.5
    assert cfg.hp.warmup_batch_factor == 1  # warm-up batches of 128, the paper's batch size
    for key, value in expect.items():
        assert getattr(cfg.hp, key) == value, key


def test_gmm_threshold_p_threshold_is_dividemixs_and_tau_is_the_default():
    cfg = build_config("cpc", dataset="cifar10", noise="symmetric", rate=0.9, profile="full")
    assert cfg.hp.p_threshold == 0.6 and cfg.hp.gmm_cut == 0.5  # Alg. 1 thresholds the GMM at tau
    old = build_config(
        "cpc", dataset="cifar10", noise="symmetric", rate=0.9, profile="full", overrides={"gmm_threshold": "p_threshold"}
    )  # fmt: skip
    assert old.hp.gmm_cut == 0.6


def test_bad_cpc_settings_get_one_clear_message():
    with pytest.raises(LNLError, match="tau"):
        build_config("cpc", overrides={"tau": "1.5"})
    with pytest.raises(LNLError, match="division"):
        build_config("cpc", overrides={"division": "oracle"})


def test_the_other_gmm_curve_sees_the_same_averaged_losses_as_the_training_gmm(monkeypatch):
    """Fig. 3's second GMM: at 90% noise the training GMM averages 5 epochs of normalised losses,
    and the curve it is compared with must average the same epochs (here 2), normalised its own way."""
    from lnl_core.cleaners import gmm_clean_probability, normalize_losses, selection_metrics

    seen = []
    original = CPCExtension._other_gmm

    def spy(self, run, passes):
        seen.append([p["losses"].clone() for p in passes])
        return original(self, run, passes)

    monkeypatch.setattr(CPCExtension, "_other_gmm", spy)
    tiny = {"train_size": 400, "test_size": 200, "epochs": 4, "warmup_epochs": 1, "loss_average": 2}
    res = run_experiment("cpc", overrides=tiny, quiet=True)  # class-aware training GMM: the other is agnostic
    assert res.config.hp.class_aware and len(seen) == 3
    clean = torch.from_numpy(res.noisy.clean == res.noisy.noisy)
    aucs = []
    for i in range(2):
        averaged = sum(normalize_losses(seen[e][i], class_labels=None, num_classes=10) for e in (1, 2)) / 2
        prob = gmm_clean_probability(averaged, class_labels=None, num_classes=10, normalize=False)
        aucs.append(selection_metrics(prob, clean, 0.5)["selection_auc"])
    assert res.history[-1]["gmm_other_selection_auc"] == pytest.approx(sum(aucs) / 2, abs=1e-6)
    # and it is not the current epoch's losses alone
    alone = [
        selection_metrics(
            gmm_clean_probability(
                normalize_losses(seen[2][i], class_labels=None, num_classes=10),
                class_labels=None, num_classes=10, normalize=False,
            ), clean, 0.5,
        )["selection_auc"]
        for i in range(2)
    ]  # fmt: skip
    assert sum(alone) / 2 != pytest.approx(sum(aucs) / 2, abs=1e-9)


def test_prototype_classifier_accuracy_and_the_ablation_without_gmm_supervision():
    tiny = {"train_size": 400, "test_size": 200, "epochs": 3, "warmup_epochs": 1}
    gmm = run_experiment("cpc", overrides=tiny, quiet=True)
    self_sup = run_experiment("cpc", overrides=dict(tiny, proto_supervision="self"), quiet=True)
    for res in (gmm, self_sup):
        last = res.history[-1]
        assert 0.0 <= last["proto_test_acc"] <= 100.0 and 0.0 <= last["proto_label_acc"] <= 100.0
    # the DNNs train on the same GMM divisions until e, so only the heads' supervision differs
    assert gmm.history[1]["x_gmm_fraction"] != self_sup.history[1]["x_gmm_fraction"]
    a, b = gmm.output.models["cpc1"].state_dict(), self_sup.output.models["cpc1"].state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(LNLError, match="proto_supervision"):
        build_config("cpc", overrides={"proto_supervision": "oracle"})
