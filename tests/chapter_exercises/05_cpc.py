"""Wrong answers for chapter 05_cpc's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =", "def m_step")  # cells run before the answers, by a string they contain
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def posterior_with_prior(v, c, pi):
    return torch.sigmoid((v * c).sum(1))  # forgets the prior's log-odds


def eq2_gradient(s, y, lambda_neg):
    grad = torch.sigmoid(s)  # forgets lambda_neg on the negatives
    grad[y] = torch.sigmoid(s[y]) - 1
    return grad


def plugin_step(C, q):
    C_new = m_step(q)
    return C_new, log_lik(C_new) - log_lik(C), 0.0  # claims EM's guarantee for any guess
"""
