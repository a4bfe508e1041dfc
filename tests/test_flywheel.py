import json
import math

import pytest
import torch
import torch.nn.functional as F

from lnl_core import build_config, run_experiment
from lnl_core.errors import LNLError
from lnl_core.losses import confidence_regularizer, contrastive_loss, simclr_negatives, soft_ce
from lnl_core.trainers.flywheel import (
    clean_posterior,
    corruption_likelihood,
    cr_limit,
    empirical_transition,
    label_prior,
    refurbish_targets,
    transition_estimate,
)

# --------------------------------------------------------------------------- closed forms


def test_clean_posterior_by_hand():
    g = torch.tensor([0.9, 0.2, 0.0, 0.5])
    w = clean_posterior(g, 0.6, 0.1)
    for gi, wi in zip(g.tolist(), w.tolist()):
        gi = max(gi, 1e-12)
        assert wi == pytest.approx(0.6 * gi / (0.6 * gi + 0.4 * 0.1), rel=1e-6)
    eps = torch.tensor([0.1, 0.05, 0.3, 0.5])
    w = clean_posterior(g, 0.5, eps)
    assert w[3].item() == pytest.approx(0.5)  # equal likelihoods: the prior
    assert w[1].item() == pytest.approx(0.2 / 0.25, rel=1e-6)
    assert 0.0 <= w[2].item() < 1e-9  # g = 0: clean is (almost) impossible, no 0 / 0


def test_targets_transitions_and_corruption_likelihood_by_hand():
    w = torch.tensor([1.0, 0.5, 0.0])
    labels = torch.tensor([0, 1, 1])
    f = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    q = refurbish_targets(w, labels, f)
    assert torch.allclose(q, torch.tensor([[1.0, 0.0], [0.1, 0.9], [0.6, 0.4]]))
    t = transition_estimate(q, labels, 2)
    # row y = 0: mass 1 + 0.1 + 0.6; given label 0 carries 1.0, given label 1 carries 0.7
    assert torch.allclose(t[0], torch.tensor([1.0 / 1.7, 0.7 / 1.7]))
    assert torch.allclose(t[1], torch.tensor([0.0, 1.0]))
    empty = transition_estimate(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([0, 1]), 3)
    assert torch.allclose(empty[1], torch.full((3,), 1 / 3)) and torch.allclose(empty.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="weights"):
        transition_estimate(q, labels, 3)
    tc = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    eps = corruption_likelihood(f, tc, labels)
    assert torch.allclose(
        eps, torch.tensor([0.7 * 0.2 + 0.3 * 0.5, 0.2 * 0.8 + 0.8 * 0.5, 0.6 * 0.8 + 0.4 * 0.5])
    )


def test_one_full_cycle_computed_by_hand():
    """Eq. (4), (11), the T and T_c M-steps, Eq. (14) and Eq. (6) for N = 4, K = 2, by hand."""
    labels = torch.tensor([0, 0, 1, 1])
    g_y = torch.tensor([0.8, 0.1, 0.6, 0.3])  # main network's probability of each given label
    gamma, eps0 = 0.5, 0.5
    f_prev = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    f_new = torch.tensor([[0.95, 0.05], [0.1, 0.9], [0.2, 0.8], [0.7, 0.3]])
    # by hand
    w_hand = [gamma * g / (gamma * g + (1 - gamma) * eps0) for g in (0.8, 0.1, 0.6, 0.3)]
    q_hand = [
        [w_hand[i] * (labels[i].item() == y) + (1 - w_hand[i]) * f_prev[i, y].item() for y in range(2)]
        for i in range(4)
    ]
    c_hand = [[(1 - w_hand[i]) * f_prev[i, y].item() for y in range(2)] for i in range(4)]

    def t_hand(u):
        return [
            [
                sum(u[i][y] for i in range(4) if labels[i] == yp) / sum(u[i][y] for i in range(4))
                for yp in range(2)
            ]
            for y in range(2)
        ]

    tc_hand = t_hand(c_hand)
    eps_hand = [sum(f_new[i, y].item() * tc_hand[y][labels[i]] for y in range(2)) for i in range(4)]
    # the library
    w = clean_posterior(g_y, gamma, eps0)
    q = refurbish_targets(w, labels, f_prev)
    t = transition_estimate(q, labels, 2)
    tc = transition_estimate((1 - w)[:, None] * f_prev, labels, 2)
    eps = corruption_likelihood(f_new, tc, labels)
    assert torch.allclose(w, torch.tensor(w_hand), atol=1e-6)
    assert torch.allclose(q, torch.tensor(q_hand), atol=1e-6)
    assert torch.allclose(t, torch.tensor(t_hand(q_hand)), atol=1e-6)
    assert torch.allclose(tc, torch.tensor(tc_hand), atol=1e-6)
    assert torch.allclose(eps, torch.tensor(eps_hand), atol=1e-6)
    assert w.mean().item() == pytest.approx(sum(w_hand) / 4, rel=1e-6)  # Eq. (6)


def test_oracle_targets_recover_the_noise_transitions():
    g = torch.Generator().manual_seed(0)
    k, n = 4, 3000
    clean = torch.randint(0, k, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.4
    given = torch.where(flip, (clean + torch.randint(1, k, (n,), generator=g)) % k, clean)
    counts = torch.zeros(k, k)
    counts.index_put_((clean, given), torch.ones(n), accumulate=True)
    truth = counts / counts.sum(1, keepdim=True)
    # with the true targets, T is the noise's transition matrix
    t = transition_estimate(F.one_hot(clean, k).float(), given, k)
    assert torch.allclose(t, truth, atol=1e-6) and torch.allclose(t, empirical_transition(clean, given, k))
    # w = 1 exactly on the correct labels and f = the truth: T_c is the mislabelled part's matrix
    w = (given == clean).float()
    tc = transition_estimate((1 - w)[:, None] * F.one_hot(clean, k).float(), given, k)
    bad = given != clean
    assert torch.allclose(tc, empirical_transition(clean[bad], given[bad], k), atol=1e-6)
    assert torch.all(tc.diagonal() == 0)


def test_label_prior_counts_classes():
    assert torch.allclose(label_prior(torch.tensor([0, 2, 2, 1]), 4), torch.tensor([0.25, 0.25, 0.5, 0.0]))


# --------------------------------------------------------------------------- the regulariser


def test_confidence_regularizer_value_and_logit_gradient():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    y = torch.tensor([0, 3, 2, 1, 1])
    p = F.softmax(z, 1)
    value = confidence_regularizer(z, prior, eps=0.0, reduction="none")
    assert torch.allclose(value, (prior * torch.log(p)).sum(1))
    clamped = confidence_regularizer(z, prior, reduction="none")
    assert torch.allclose(clamped, (prior * torch.log(p + 1e-8)).sum(1))
    lam = 3.0
    loss = F.cross_entropy(z, y, reduction="sum") + lam * confidence_regularizer(
        z, prior, eps=0.0, reduction="sum"
    )
    (grad,) = torch.autograd.grad(loss, z)
    expected = (1 - lam) * p.detach() - F.one_hot(y, 4) + lam * prior  # (1 - lam) g - e_y + lam p
    assert torch.allclose(grad, expected, atol=1e-12)


def _gradient_descent(a, steps=2000, lr=2.0):
    z = torch.zeros_like(a, requires_grad=True)
    for _ in range(steps):
        loss = -(a * torch.log(F.softmax(z, 1) + 1e-8)).sum()
        (grad,) = torch.autograd.grad(loss, z)
        with torch.no_grad():
            z -= lr * grad
    return F.softmax(z, 1).detach()


@pytest.mark.parametrize("r", [0.5, 0.8])
def test_the_non_parametric_minimiser_matches_gradient_descent_on_free_logits(r):
    k = 10
    p_cond = (1 - r) * torch.eye(k, dtype=torch.float64) + r / k  # symmetric noise, one input per class
    prior = torch.full((k,), 1 / k, dtype=torch.float64)
    expected_mass = {0.0: 1 - r + r / k, r: 1.0, 1.0: 1.0, 3.0: 1.0}
    for lam, mass in expected_mass.items():
        limit = cr_limit(p_cond, prior, lam)
        assert torch.allclose(limit.diagonal(), torch.full((k,), mass, dtype=torch.float64), atol=1e-9), lam
        gd = _gradient_descent(p_cond - lam * prior)
        assert (gd - limit).abs().max().item() < 2e-3, lam


def test_lemma_1_recovers_a_soft_clean_posterior_at_lambda_star():
    k, gamma = 10, 0.5
    p_pi = torch.zeros(1, k, dtype=torch.float64)
    p_pi[0, :2] = torch.tensor([0.8, 0.2])
    prior = torch.full((k,), 1 / k, dtype=torch.float64)
    noisy = gamma * p_pi + (1 - gamma) / k
    assert torch.allclose(cr_limit(noisy, prior, 1 - gamma), p_pi)  # lambda* = 1 - gamma'
    assert torch.allclose(cr_limit(noisy, prior, 0.0), noisy)  # CE alone: the noisy posterior
    assert torch.allclose(
        cr_limit(noisy, prior, 1.0)[0, :2], torch.tensor([0.875, 0.125], dtype=torch.float64)
    )


def test_soft_ce_and_the_contrastive_term_against_independent_formulas():
    g = torch.Generator().manual_seed(2)
    z, t = torch.randn(6, 3, generator=g), F.softmax(torch.randn(6, 3, generator=g), 1)
    assert soft_ce(z, t).item() == pytest.approx(
        -(t * torch.log(F.softmax(z, 1))).sum(1).mean().item(), rel=1e-6
    )
    z1, z2 = (
        F.normalize(torch.randn(8, 5, generator=g), dim=1),
        F.normalize(torch.randn(8, 5, generator=g), dim=1),
    )
    tau = 0.05
    rows = torch.cat([z1, z2])
    terms = []
    for a in range(16):  # NT-Xent written anchor by anchor
        pos = (a + 8) % 16
        denom = sum(math.exp(rows[a] @ rows[b] / tau) for b in range(16) if b != a)
        terms.append(-math.log(math.exp(rows[a] @ rows[pos] / tau) / denom))
    loss, _ = contrastive_loss(z1, z2, simclr_negatives(8), tau=tau)
    assert loss.item() == pytest.approx(sum(terms) / 16, rel=1e-4)


# --------------------------------------------------------------------------- the trainer

_TINY = {"train_size": 400, "test_size": 200, "epochs": 3, "warmup_epochs": 1, "alpha": 0.025}


def test_flywheel_records_its_cycle_and_resumes_exactly(tmp_path):
    straight = run_experiment("flywheel", overrides=_TINY, quiet=True, out=tmp_path / "a")
    last = straight.history[-1]
    for key in ("gamma", "loglik", "selection_auc", "refurbish_acc", "refurbish_acc_mislabelled", "relabelled_fraction",
                "eps_clean", "eps_mislabelled", "transition_error", "transition_c_error", "main_test_acc", "con_loss"):  # fmt: skip
        assert math.isfinite(last[key]), key
    assert 0.0 < last["gamma"] < 1.0 and "gamma" not in straight.history[0]
    state = straight.output.state
    assert torch.allclose(state["transition"].sum(1), torch.ones(10)) and state["eps"].min() > 0
    assert last["gamma"] == pytest.approx(state["clean_prob"].mean().item(), abs=1e-6)  # Eq. (6)
    run_experiment("flywheel", overrides=_TINY, quiet=True, out=tmp_path / "b", stop_after=2)
    resumed = run_experiment("flywheel", overrides=_TINY, quiet=True, out=tmp_path / "b", resume=True)
    assert json.dumps(resumed.history) == json.dumps(straight.history)
    for key, value in state.items():
        assert torch.equal(value, resumed.output.state[key]), key
    for name in ("main", "aux"):
        a, b = straight.output.models[name].state_dict(), resumed.output.models[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def _one_cycle(**overrides):
    return run_experiment("flywheel", overrides=dict(_TINY, epochs=2, **overrides), quiet=True)


def _same(a, b):
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_each_ablation_changes_what_it_names_and_nothing_else():
    base = _one_cycle()
    # lam = 0: the auxiliary step of the cycle runs before the main one and is untouched
    no_cr = _one_cycle(lam=0.0)
    assert _same(base.output.models["aux"], no_cr.output.models["aux"])
    assert not _same(base.output.models["main"], no_cr.output.models["main"])
    # eps fixed: it enters only the next E-step, so after one cycle only eps differs
    fixed = _one_cycle(update_eps=False)
    for name in ("main", "aux"):
        assert _same(base.output.models[name], fixed.output.models[name])
    assert torch.all(fixed.output.state["eps"] == 0.1) and not torch.all(base.output.state["eps"] == 0.1)
    for key in ("transition", "transition_c", "resampled", "clean_prob", "gamma"):
        assert torch.equal(base.output.state[key], fixed.output.state[key]), key
    # alpha = 0: no projector, no contrastive term; warm-up (no contrastive term there) unchanged
    no_cl = _one_cycle(alpha=0.0)
    assert no_cl.output.models["aux"].projector is None and base.output.models["aux"].projector is not None
    assert no_cl.history[0] == base.history[0] and no_cl.history[-1]["con_loss"] == 0.0
    # no auxiliary network: the main EM alone, evaluated with the main network
    alone = _one_cycle(auxiliary=False)
    assert set(alone.output.models) == {"main"} and "refurbish_acc" in alone.history[-1]
    assert torch.equal(
        alone.output.state["resampled"], alone.output.state["resampled"].new_tensor(alone.noisy.noisy)
    )


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_full_profile_is_the_paper_protocol(dataset):
    cfg = build_config("flywheel", dataset=dataset, noise="symmetric", rate=0.5, profile="full")
    assert (cfg.epochs, cfg.lr, cfg.schedule, cfg.batch_size, cfg.weight_decay, cfg.momentum) == (
        300, 0.02, "cosine", 128, 5e-4, 0.9,
    )  # fmt: skip
    hp = cfg.hp
    assert cfg.model == "preact_resnet18" and cfg.augment == "weak"
    assert (hp.warmup_epochs, hp.lam, hp.alpha, hp.contrastive_augment, hp.estep_views) == (
        10,
        3.0,
        0.025,
        "strong",
        2,
    )
    assert hp.update_eps and hp.auxiliary and hp.cr_prior == "resampled"


def test_bad_flywheel_settings_get_one_clear_message():
    with pytest.raises(LNLError, match="cr_prior"):
        build_config("flywheel", overrides={"cr_prior": "empirical"})
    with pytest.raises(LNLError, match="temperature"):
        build_config("flywheel", overrides={"temperature": "0"})
