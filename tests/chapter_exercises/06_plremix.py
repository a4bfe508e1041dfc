"""Wrong answers for chapter 06_plremix's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =",)  # cells run before the answers, by a string they contain
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def anchor_gradient(q_a, q_pos, q_neg, tau):
    P = (torch.cat([(q_a @ q_pos)[None], q_neg @ q_a]) / tau).softmax(0)
    return (-q_pos + (P[1:, None] * q_neg).sum(0)) / tau  # forgets the factor 1 - P_aa+


def disjoint_share(K, kappa):
    return ((K - kappa) / K) ** kappa  # draws the second set's classes with replacement


def auc_one_and_two(delta, sigma):
    return norm.cdf(delta / sigma), norm.cdf(delta / sigma)  # forgets the sqrt(2) of a difference
"""
