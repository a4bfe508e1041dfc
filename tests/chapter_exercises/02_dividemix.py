"""Wrong answers for chapter 02_dividemix's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =", "def em_two_gaussians")  # cells run before the answers, by a string they contain
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def m_step(x, gamma):
    n_c = gamma.sum(0)
    mu = (gamma * x[:, None]).sum(0) / n_c
    var = ((x[:, None] - mu) ** 2).mean(0)  # forgets to weight the variance by the responsibilities
    return n_c / x.size, mu, var


def boundary(pi, mu, var):
    return (mu[0] + mu[1]) / 2  # the midpoint: right only for equal weights and equal variances


def refine(onehot, p, w, tau_sh):
    return w * onehot + (1 - w) * p  # forgets to sharpen
"""
