import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnl_core import build_config, run_experiment
from lnl_core.errors import LNLError
from lnl_core.losses import contrastive_loss, gradient_entanglement
from lnl_core.trainers.plremix import (
    estimate_labels,
    gradient_conflict,
    init_prototypes,
    kappa_at,
    prototype_logits,
    relaxed_negatives,
    simclr_negatives,
    update_prototypes,
)

# --------------------------------------------------------------------------- the negative sets


def _disjoint_by_hand(probs, labels, kappa, append_label):
    sets = []
    for p, y in zip(probs.tolist(), labels.tolist()):
        top = set(sorted(range(len(p)), key=lambda c: -p[c])[:kappa])
        sets.append(top | {y} if append_label else top)
    b = len(sets)
    return torch.tensor([[i != j and not (sets[i] & sets[j]) for j in range(b)] for i in range(b)])


def test_relaxed_negatives_on_a_hand_made_batch():
    # K = 5; top-1 classes 0, 0, 1, 3 and top-2 {0,1}, {0,2}, {1,4}, {3,2}
    probs = torch.tensor(
        [
            [0.50, 0.30, 0.10, 0.05, 0.05],
            [0.40, 0.05, 0.35, 0.10, 0.10],
            [0.10, 0.60, 0.05, 0.05, 0.20],
            [0.05, 0.05, 0.30, 0.55, 0.05],
        ]
    )
    labels = torch.tensor([0, 4, 1, 3])
    # kappa 1, no label: {0}, {0}, {1}, {3} -> only samples 0 and 1 overlap
    expect = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(relaxed_negatives(probs, labels, 1, append_label=False), expect)
    # with the label: {0}, {0,4}, {1}, {3} -> the same pairs
    assert torch.equal(relaxed_negatives(probs, labels, 1), expect)
    # kappa 2 with the label: {0,1}, {0,2,4}, {1,4}, {2,3} -> only the pairs 0-3 and 2-3
    expect2 = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    assert torch.equal(relaxed_negatives(probs, labels, 2), expect2)
    # the given label only (kappa 0): {0}, {4}, {1}, {3} -> every pair
    assert torch.equal(relaxed_negatives(probs, labels, 0), simclr_negatives(4))


@pytest.mark.parametrize("k,kappa", [(5, 3), (3, 2), (10, 6)])
def test_no_pair_is_disjoint_when_two_sets_must_overlap(k, kappa):
    g = torch.Generator().manual_seed(k)
    probs = torch.rand(40, k, generator=g).softmax(1)
    labels = torch.randint(0, k, (40,), generator=g)
    assert not relaxed_negatives(probs, labels, kappa, append_label=False).any()  # 2 kappa > K
    assert not relaxed_negatives(probs, labels, kappa).any()


def test_relaxed_negatives_are_symmetric_shrink_with_kappa_and_match_a_set_computation():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(30, 10, generator=g).softmax(1)
    labels = torch.randint(0, 10, (30,), generator=g)
    for append in (True, False):
        previous = None
        for kappa in range(0 if append else 1, 6):
            neg = relaxed_negatives(probs, labels, kappa, append_label=append)
            assert torch.equal(neg, neg.T) and not neg.diagonal().any()
            assert torch.equal(neg, _disjoint_by_hand(probs, labels, kappa, append))
            if previous is not None:
                assert not (neg & ~previous).any()  # a larger kappa only removes negatives
            previous = neg
    with_label, without = (
        relaxed_negatives(probs, labels, 2),
        relaxed_negatives(probs, labels, 2, append_label=False),
    )
    assert not (with_label & ~without).any()  # adding the label only removes negatives
    assert not (with_label & (labels[:, None] == labels[None, :])).any()  # never two equal given labels


def test_two_correctly_labelled_samples_are_never_negatives():
    """Sec. 3.3 made exact: with the label in both sets, equal true classes share a class."""
    g = torch.Generator().manual_seed(1)
    true = torch.randint(0, 10, (200,), generator=g)
    given = torch.where(torch.rand(200, generator=g) < 0.5, torch.randint(0, 10, (200,), generator=g), true)
    probs = torch.rand(200, 10, generator=g).softmax(1)
    neg = relaxed_negatives(probs, given, 1)
    clean = given == true
    both_clean = clean[:, None] & clean[None, :]
    assert neg.any() and not (neg & both_clean & (true[:, None] == true[None, :])).any()


def test_kappa_schedule():
    assert [kappa_at(e, 3, (40, 70)) for e in (0, 39, 40, 69, 70, 399)] == [3, 3, 2, 2, 1, 1]
    assert [kappa_at(e, 3, (1, 2, 3, 4)) for e in range(6)] == [3, 2, 1, 1, 1, 1]  # never below 1
    assert kappa_at(100, 0, (40, 70)) == 0 and kappa_at(100, 2, ()) == 2


def test_bad_kappa_gets_a_clear_message():
    probs, labels = torch.rand(3, 4).softmax(1), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="kappa"):
        relaxed_negatives(probs, labels, 5)
    with pytest.raises(ValueError, match="empty"):
        relaxed_negatives(probs, labels, 0, append_label=False)


# --------------------------------------------------------------------------- the loss


def _unit(b, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=1)


def _nt_xent(z1, z2, tau):
    """SimCLR's NT-Xent as usually written: cross-entropy over each row of the similarity
    matrix with the self-similarity removed, the other view as the target."""
    z = torch.cat([z1, z2])
    b = z1.shape[0]
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(sim, target)


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_all_negatives_is_nt_xent(tau):
    z1, z2 = _unit(9, 5, 0), _unit(9, 5, 1)
    loss, info = contrastive_loss(z1, z2, simclr_negatives(9), tau=tau)
    assert loss.item() == pytest.approx(_nt_xent(z1, z2, tau).item(), rel=1e-10)
    assert info["anchors"].item() == 18 and info["info_nce"].item() == pytest.approx(loss.item())


def _closed_form_gradient(q, neg_views, tau):
    """Sec. 4.1 of the notes: d l_a / d q_a = (-(1 - P_ap) q_p + sum_b P_ab q_b) / tau,
    d l_a / d q_p = -(1 - P_ap) q_a / tau, d l_a / d q_b = P_ab q_a / tau, summed over anchors
    and divided by M, then projected through q = u / ||u|| (here ||u|| = 1)."""
    m = q.shape[0]
    grad = torch.zeros_like(q)
    for a in range(m):
        p = (a + m // 2) % m
        members = [b for b in range(m) if neg_views[a, b]]
        if not members:
            continue
        logits = torch.stack([q[a] @ q[p]] + [q[a] @ q[b] for b in members]) / tau
        probs = torch.softmax(logits, 0)
        grad[a] += (-(1 - probs[0]) * q[p] + sum(probs[1 + n] * q[b] for n, b in enumerate(members))) / tau
        grad[p] += -(1 - probs[0]) * q[a] / tau
        for n, b in enumerate(members):
            grad[b] += probs[1 + n] * q[a] / tau
    grad /= m
    return grad - (grad * q).sum(1, keepdim=True) * q  # the tangent part: d q / d u at ||u|| = 1


def test_closed_form_gradient_matches_autograd_with_a_relaxed_mask():
    b, tau = 6, 0.5
    u = torch.cat([_unit(b, 4, 2), _unit(b, 4, 3)]).requires_grad_(True)  # unit rows: ||u|| = 1
    g = torch.Generator().manual_seed(4)
    neg = torch.rand(b, b, generator=g) < 0.5
    neg = (neg | neg.T) & ~torch.eye(b, dtype=torch.bool)
    neg[0] = neg[:, 0] = False  # sample 0 has no negative: its anchors add 0
    q = F.normalize(u, dim=1)
    loss, info = contrastive_loss(q[:b], q[b:], neg, tau=tau)
    (auto,) = torch.autograd.grad(loss, u)
    expected = _closed_form_gradient(u.detach(), neg.repeat(2, 2), tau)
    assert torch.allclose(auto, expected, atol=1e-10)
    assert info["anchors"].item() == 2 * b - 2


def test_flat_form_value_is_one_and_its_gradient_that_of_mean_v():
    b, tau = 7, 1.0
    z = torch.cat([_unit(b, 3, 5), _unit(b, 3, 6)]).requires_grad_(True)
    neg = simclr_negatives(b)
    neg[1, 2] = neg[2, 1] = neg[1, 3] = neg[3, 1] = False
    flat, info = contrastive_loss(z[:b], z[b:], neg, tau=tau, flat=True)
    assert flat.item() == pytest.approx(1.0, abs=1e-12)
    (g_flat,) = torch.autograd.grad(flat, z)
    # v_a written out anchor by anchor
    views = neg.repeat(2, 2)
    vs, per_anchor = [], []
    for a in range(2 * b):
        p = (a + b) % (2 * b)
        diffs = torch.stack([(z[a] @ z[c] - z[a] @ z[p]) / tau for c in range(2 * b) if views[a, c]])
        vs.append(torch.logsumexp(diffs, 0))
        per_anchor.append(F.softplus(vs[-1]))
    (g_v,) = torch.autograd.grad(torch.stack(vs).mean(), z, retain_graph=True)
    assert torch.allclose(g_flat, g_v, atol=1e-12)
    # InfoNCE's gradient is the same per-anchor gradients, each scaled by sigmoid(v_a)
    info_nce, _ = contrastive_loss(z[:b], z[b:], neg, tau=tau)
    assert info_nce.item() == pytest.approx(torch.stack(per_anchor).mean().item(), rel=1e-12)
    assert info["info_nce"].item() == pytest.approx(info_nce.item(), rel=1e-12)
    (g_info,) = torch.autograd.grad(info_nce, z)
    scaled = sum(torch.sigmoid(v.detach()) * torch.autograd.grad(v, z, retain_graph=True)[0] for v in vs) / (
        2 * b
    )
    assert torch.allclose(g_info, scaled, atol=1e-12)


def test_no_negative_at_all_gives_zero_and_finite_gradients():
    z1, z2 = _unit(4, 3, 7).requires_grad_(True), _unit(4, 3, 8)
    none = torch.zeros(4, 4, dtype=torch.bool)
    for flat in (False, True):
        loss, info = contrastive_loss(z1, z2, none, flat=flat)
        (g,) = torch.autograd.grad(loss, z1)
        assert loss.item() == 0.0 and info["anchors"].item() == 0 and torch.isfinite(g).all()


def test_contrastive_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="bool mask"):
        contrastive_loss(_unit(3, 2, 0), _unit(3, 2, 1), torch.ones(3, 3))
    with pytest.raises(ValueError, match="one shape"):
        contrastive_loss(_unit(3, 2, 0), _unit(4, 2, 1), simclr_negatives(3))


def test_the_one_parameter_conflict_toy():
    """Two samples of one class, two identical views each, q = (cos t, +-sin t); the supervised
    surrogate -cos t wants t -> 0, SimCLR pushes the two apart, PLR leaves them alone."""
    theta0 = math.pi / 8

    def losses(theta, neg, tau, flat):
        q = torch.stack([torch.stack([theta.cos(), theta.sin()]), torch.stack([theta.cos(), -theta.sin()])])
        return contrastive_loss(q, q, neg, tau=tau, flat=flat)[0]

    def derivative(neg, tau, flat):
        theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
        value = losses(theta, neg, tau, flat)
        return value.item(), torch.autograd.grad(value, theta, allow_unused=True)[0]

    sup_grad = math.sin(theta0)  # d(-cos t)/dt
    value, grad = derivative(simclr_negatives(2), 1.0, False)
    assert value == pytest.approx(0.913167, abs=1e-6) and grad.item() == pytest.approx(-0.846758, abs=1e-6)
    assert gradient_entanglement(grad.reshape(1), torch.tensor([sup_grad]))[0] == pytest.approx(
        -2.21269, abs=1e-5
    )
    assert derivative(simclr_negatives(2), 0.1, False)[1].item() == pytest.approx(-1.365886, abs=1e-6)
    _, flat_grad = derivative(simclr_negatives(2), 1.0, True)
    assert flat_grad.item() == pytest.approx(-2 * math.sin(2 * theta0), abs=1e-9)  # v' = -2 sin 2t / tau
    # PLR: both samples share the class, so neither is a negative of the other
    probs, labels = torch.tensor([[0.9, 0.1], [0.8, 0.2]]), torch.tensor([0, 0])
    value, grad = derivative(relaxed_negatives(probs, labels, 1), 1.0, True)
    assert value == 0.0 and (grad is None or grad.item() == 0.0)


def test_gradient_entanglement_by_hand():
    e, r = gradient_entanglement(torch.tensor([1.0, -2.0]), torch.tensor([3.0, 4.0]))
    assert e == pytest.approx((3 - 8) / 25) and r == pytest.approx(math.sqrt(5) / 5)
    with pytest.raises(ValueError, match="zero"):
        gradient_entanglement(torch.ones(2), torch.zeros(2))


# --------------------------------------------------------------------------- prototypes


def test_prototypes_start_at_normalised_class_means():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    protos = init_prototypes(emb, labels, 3)
    assert torch.allclose(protos[0], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert torch.allclose(protos[1], F.normalize(torch.tensor([-0.4, 0.8]), dim=0))
    assert torch.equal(protos[2], torch.zeros(2))  # no sample: a zero prototype
    logits = prototype_logits(emb, protos, 0.1)
    assert torch.allclose(logits, emb @ protos.T / 0.1) and torch.all(logits[:, 2] == 0)


def test_eq3_branches():
    t = torch.tensor([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    s = torch.tensor([[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
    given = torch.tensor([1, 1, 0, 0])
    # delta = 0.5 t + 0.5 s: [.9,.05,.05] -> relabel to 0; [.4,.5,.1] -> keep 1 (0.5 > 1/3);
    # [.2,.3,.5] -> given 0 at 0.2 < 1/3: unknown; [.1,.45,.45] -> given 0 at 0.1: unknown
    out = estimate_labels(t, s, given, alpha=0.5, correct_threshold=0.8, keep_threshold=1 / 3)
    assert out.tolist() == [0, 1, -1, -1]
    # alpha = 1, the classifier alone: [.5,.4,.1] keeps 1 (0.4 > 1/3); [.1,.1,.8] is not
    # relabelled (0.8 is not above 0.8) and its given label has 0.1: unknown
    out = estimate_labels(t, s, given, alpha=1.0, correct_threshold=0.8, keep_threshold=1 / 3)
    assert out.tolist() == [0, 1, -1, -1]
    # the thresholds as printed in Table 8 (tau1 = 0.5 relabels, tau2 = 0.8 keeps): the second
    # branch can never fire, since delta_y <= max delta <= 0.5 < 0.8 whenever the first did not
    g = torch.Generator().manual_seed(0)
    t, s = torch.rand(2000, 4, generator=g).softmax(1), torch.rand(2000, 4, generator=g).softmax(1)
    given = torch.randint(0, 4, (2000,), generator=g)
    printed = estimate_labels(t, s, given, alpha=0.5, correct_threshold=0.5, keep_threshold=0.8)
    never_keep = estimate_labels(t, s, given, alpha=0.5, correct_threshold=0.5, keep_threshold=2.0)
    assert torch.equal(printed, never_keep)


def test_eq3_fallback_to_the_classifiers_argmax():
    """The authors' first public code: relabel to argmax delta above 0.8, else take the
    classifier's argmax; nothing is unknown, and a given label enters only where the
    classifier or delta picks it."""
    t = torch.tensor([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    s = torch.tensor([[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
    given = torch.tensor([1, 1, 0, 0])
    out = estimate_labels(
        t, s, given, alpha=0.5, correct_threshold=0.8, keep_threshold=1 / 3, fallback="pred"
    )
    # delta rows: [.9,.05,.05] -> 0 (above 0.8); the others fall back to argmax t: 0, 2, 2
    assert out.tolist() == [0, 0, 2, 2]
    with pytest.raises(ValueError, match="fallback"):
        estimate_labels(t, s, given, alpha=0.5, correct_threshold=0.8, keep_threshold=0.1, fallback="x")


def test_eq4_update_by_hand():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    emb = torch.tensor([[0.0, 2.0], [0.0, 1.0], [3.0, 4.0], [1.0, 0.0]])
    estimated = torch.tensor([0, 0, 1, -1])
    out = update_prototypes(protos, emb, estimated, 0.9)
    # class 0: qbar = (0, 1); 0.9 (1, 0) + 0.1 (0, 1) normalised
    assert torch.allclose(out[0], F.normalize(torch.tensor([0.9, 0.1]), dim=0))
    # class 1: qbar = Normalize((3, 4)) = (0.6, 0.8); 0.9 (0, 1) + 0.1 (0.6, 0.8)
    assert torch.allclose(out[1], F.normalize(torch.tensor([0.06, 0.98]), dim=0))
    assert torch.equal(out[2], protos[2])  # no confident sample: unchanged
    # a zero (empty-class) prototype becomes its first class mean
    start = torch.zeros(1, 2)
    assert torch.allclose(
        update_prototypes(start, emb[2:3], torch.tensor([0]), 0.99), torch.tensor([[0.6, 0.8]])
    )


# --------------------------------------------------------------------------- the trainer

_TINY = {"train_size": 400, "test_size": 200, "epochs": 4, "warmup_epochs": 1}
_OFF = {"crl": "none", "warmup_crl": False, "proj_dim": 0, "selection": "1d"}


def test_every_addition_off_is_dividemix_bit_for_bit():
    dm = run_experiment("dividemix", overrides=_TINY, quiet=True)
    plr = run_experiment(
        "plremix", overrides=dict(_TINY, **_OFF, kappa_milestones=(), keep_threshold=-1.0), quiet=True
    )
    for a, b in zip(dm.history, plr.history, strict=True):
        assert json.dumps(a, sort_keys=True) == json.dumps({k: b[k] for k in a}, sort_keys=True)
    for name in ("net1", "net2"):
        a, b = dm.output.models[name].state_dict(), plr.output.models[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_plremix_records_its_statistics_and_resumes_exactly(tmp_path):
    tiny = dict(_TINY, kappa_milestones=(2, 3))
    straight = run_experiment("plremix", overrides=tiny, quiet=True, out=tmp_path / "a")
    assert [h.get("kappa") for h in straight.history] == [None, 3, 2, 1]
    warm, last = straight.history[0], straight.history[-1]
    assert warm["neg_select_ratio"] == 1.0 and 0.0 < warm["neg_precision"] < 1.0  # SimCLR: every pair
    for key in ("train_crl", "selection_auc_1d", "selection_auc_2d", "proto_acc", "confident_fraction",
                "neg_select_ratio", "neg_precision"):  # fmt: skip
        assert math.isfinite(last[key]), key
    assert last["neg_select_ratio"] < 1.0 and last["train_crl"] > 0
    assert straight.history[1]["neg_select_ratio"] < last["neg_select_ratio"]  # kappa 3 selects fewer than 1
    protos = straight.output.state["prototypes"]
    assert torch.allclose(protos.norm(dim=-1), torch.ones(2, 10), atol=1e-5)
    run_experiment("plremix", overrides=tiny, quiet=True, out=tmp_path / "b", stop_after=2)
    resumed = run_experiment("plremix", overrides=tiny, quiet=True, out=tmp_path / "b", resume=True)
    assert json.dumps(resumed.history) == json.dumps(straight.history)
    for key in ("prototypes", "proto_ready", "clean_prob"):
        assert torch.equal(straight.output.state[key], resumed.output.state[key]), key
    for name in ("net1", "net2"):
        a, b = straight.output.models[name].state_dict(), resumed.output.models[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_the_selection_setting_picks_the_division():
    """selection=1d trains on the 1-D GMM but still records the 2-D one (and vice versa)."""
    tiny = dict(_TINY, epochs=2)
    one = run_experiment("plremix", overrides=dict(tiny, selection="1d"), quiet=True).history[-1]
    two = run_experiment("plremix", overrides=tiny, quiet=True).history[-1]
    for record, used in ((one, "_1d"), (two, "_2d")):
        assert record["selection_auc"] == pytest.approx(record["selection_auc" + used], abs=1e-12)
    assert two["selection_auc_1d"] == pytest.approx(one["selection_auc_1d"], abs=1e-12)  # same pass


def test_gradient_probe_leaves_the_trained_state_alone():
    from lnl_core.engine import choose_device
    from lnl_core.experiment import make_run, prepare_data

    res = run_experiment("plremix", overrides=dict(_TINY, epochs=2), quiet=True)
    before = {k: v.clone() for k, v in res.output.models["net1"].state_dict().items()}
    protos = res.output.state["prototypes"].clone()
    run = make_run(res.config, *prepare_data(res.config), device=choose_device("cpu"))
    out = gradient_conflict(
        run, res.output, res.config.hp, 2, variants={"SimCLR": ("flat_simclr", 1), "PLR": ("flat_plr", 3)},
        num_batches=3,
    )  # fmt: skip
    assert set(out) == {"SimCLR", "PLR"}
    for values in out.values():
        assert values.shape == (3, 2) and np.isfinite(values).all() and (values[:, 1] > 0).all()
    after = res.output.models["net1"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert torch.equal(res.output.state["prototypes"], protos)


@pytest.mark.parametrize(
    "dataset,kind,rate,expect",
    [
        ("cifar10", "symmetric", 0.2, dict(lambda_u=0.0, warmup_epochs=10, keep_threshold=-1.0)),
        ("cifar10", "symmetric", 0.9, dict(lambda_u=50.0, p_threshold=0.5, loss_average=1)),
        ("cifar10", "asymmetric", 0.4, dict(lambda_u=0.0, entropy_penalty=True, keep_threshold=0.5)),
        ("cifar100", "symmetric", 0.2, dict(lambda_u=25.0, warmup_epochs=15)),  # Table 9
        ("cifar100", "symmetric", 0.9, dict(lambda_u=150.0, p_threshold=0.5, loss_average=1)),
    ],
)
def test_full_profile_is_the_paper_protocol(dataset, kind, rate, expect):
    cfg = build_config("plremix", dataset=dataset, noise=kind, rate=rate, profile="full")
    assert (cfg.epochs, cfg.milestones, cfg.lr, cfg.batch_size, cfg.weight_decay, cfg.momentum) == (
        400, (200,), 0.02, 64, 5e-4, 0.9,
    )  # fmt: skip
    hp = cfg.hp
    assert cfg.model == "preact_resnet18" and hp.mix_augment == "autoaugment" and hp.crl == "flat_plr"
    assert (hp.kappa, hp.kappa_milestones, hp.tau, hp.warmup_tau, hp.lambda_c) == (3, (40, 70), 1.0, 0.1, 1.0)
    assert (hp.proj_dim, hp.proto_tau, hp.proto_momentum, hp.delta_alpha) == (128, 0.1, 0.99, 0.5)
    assert (hp.T, hp.alpha, hp.selection, hp.correct_threshold) == (0.5, 4.0, "2d", 0.8)
    assert hp.label_fallback == "pred"  # Eq. (3) as the authors' code computes it
    for key, value in expect.items():
        assert getattr(hp, key) == value, key


def test_class_aware_is_refused_with_the_2d_gmm():
    with pytest.raises(LNLError, match="class_aware"):
        build_config("plremix", overrides={"class_aware": "true"})
    assert build_config("plremix", overrides={"class_aware": "true", "selection": "1d"}).hp.class_aware


def test_bad_plremix_settings_get_one_clear_message():
    with pytest.raises(LNLError, match="crl"):
        build_config("plremix", overrides={"crl": "byol"})
    with pytest.raises(LNLError, match="proj_dim"):
        build_config("plremix", overrides={"proj_dim": "0"})
    with pytest.raises(LNLError, match="selection"):
        build_config("plremix", overrides={"selection": "3d"})


def test_the_reduced_schedule_keeps_the_papers_proportions():
    from lnl_core.trainers.plremix import reduced_schedule

    assert reduced_schedule(400, 10) == ((40, 70), 0.99)  # the paper's own run
    milestones, momentum = reduced_schedule(30, 10)
    assert milestones == (12, 13) and momentum == pytest.approx(1 - 1 / (100 * 20 / 390), abs=1e-4)
    cfg = build_config("plremix")
    assert (cfg.hp.kappa_milestones, cfg.hp.proto_momentum, cfg.hp.crl_augment) == (
        milestones,
        momentum,
        "weak",
    )
