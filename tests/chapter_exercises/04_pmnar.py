"""Wrong answers for chapter 04_pmnar's self-check (plausible mistakes; each must fail it)."""

SETUP = ("PROFILE =",)  # cells run before the answers, by a string they contain
CHECKED = (1, 2)  # the exercises that have a self-check
WRONG = """
def pm_push(logits, given, true, mask):
    p = torch.softmax(logits.double(), 1)
    rows = torch.arange(len(true))
    odds = (p / (1 - p)) * mask
    others = odds.sum(1) - odds[rows, true]
    return p[rows, true] * (mask[rows, true].double() - others)  # forgets the positive term's push


def my_consistency(logits_f, logits_f2, logits_aug):
    t = torch.softmax((logits_f.double() + logits_f2.double()) / 2, 1)  # averages the logits, not the probabilities
    log_q = torch.log_softmax(logits_aug.double(), 1)
    return (t * (t.log() - log_q)).sum(1).mean()
"""
