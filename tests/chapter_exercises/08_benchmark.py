"""Wrong answers for chapter 08_benchmark's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =",)  # cells run before the answers
CHECKED = (1, 2, 3)  # the exercises that have a self-check
WRONG = """
def seed_summary(values):
    return float(np.mean(values)), float(np.std(values))  # population sd (ddof 0): too small for 3 seeds


def paired_interval(a, b, level=0.95):
    d = np.asarray(a) - np.asarray(b)
    z = stats.norm.ppf(0.5 + level / 2)  # a normal quantile: ignores that the sd itself is estimated
    return float(d.mean()), float(z * d.std(ddof=1) / math.sqrt(len(d)))


def seeds_needed(sd_diff, gap, level=0.95):
    n = 2
    while 1.96 * sd_diff / math.sqrt(n) >= gap:  # the same mistake: 1.96 for every n
        n += 1
    return n
"""
