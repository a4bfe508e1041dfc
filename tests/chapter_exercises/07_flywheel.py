"""Wrong answers for chapter 07_flywheel's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =", "def gradient_descent")  # cells run before the answers, by a string they contain
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def fixed_point_w(gamma, K):
    return gamma  # forgets the corrupted draws that land on the true class


def cr_minimiser(p_cond, prior, lam):
    return (p_cond - lam * prior) / (1 - lam)  # the all-positive formula, used where it does not hold


def transition_m_step(q, labels, K):
    counts = q.T @ F.one_hot(labels, K).to(q)
    return counts / counts.sum(0, keepdim=True)  # normalises columns instead of rows
"""
