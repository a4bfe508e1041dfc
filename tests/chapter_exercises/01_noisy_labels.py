"""Wrong answers for chapter 01_noisy_labels's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =",)  # cells run before the answers, by a string they contain
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def sum_over_labels(loss_fn, logits):
    K = logits.shape[1]
    return sum(loss_fn(logits, torch.full((logits.shape[0],), k)) for k in range(K))  # batch means, not (B,)


def asym_T(r):
    T = np.eye(10)
    for src, dst in noise.ASYMMETRIC_MAPPINGS["fashion_mnist"].items():
        T[src, dst] = r  # forgets to take r off the diagonal: rows no longer sum to 1
    return T


def forward_ce(logits, labels, T):
    noisy_probs = torch.softmax(logits, dim=1) @ torch.as_tensor(T, dtype=logits.dtype).T  # T transposed
    return -torch.log(noisy_probs.gather(1, labels[:, None]).squeeze(1))
"""
