"""Wrong answers for chapter 03_pemm's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =", "def simplex_layout", "def max_confidence_numeric")  # cells run before the answers
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def equilibrium(u, v, xi):
    return (u / (xi * v)) ** (1 / (u + v))  # u + v in the exponent


def pair_curvature(u, v, xi):
    r0 = (u / (xi * v)) ** (1 / (u - v))
    return u * (u + 1) / r0 ** (u + 2)  # the repulsive term only: forgets the attraction's curvature


def max_confidence(k, h, a=0.45):
    return 1 / (1 + (k - 1) * math.exp(-2 * a / h**2))  # z along c_1: misses the factor sqrt(K / (2 (K - 1)))
"""
