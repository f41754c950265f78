"""How a guessed set of classes compares with the human answer (multi-label projects), NumPy
only, for the trainer's held-out scores and the web's audit accuracy. Exact-set match is the
strict measure (every class of the image right); the Hamming loss (share of item-class
decisions wrong) and per-class F1 say how far off the rest is."""
import numpy as np

SUGGEST_AT = 0.5  # a class belongs to the suggested set when its probability is at least this


def set_metrics(truth, guess):
    """truth, guess bool (L, C) -> {"exact", "hamming_loss", "per_class_f1" (C,; None for a
    class in neither), "macro_f1" (their mean)}; every value None when L = 0."""
    truth, guess = np.asarray(truth, bool), np.asarray(guess, bool)
    if len(truth) == 0:
        return {"exact": None, "hamming_loss": None, "per_class_f1": [None] * truth.shape[1], "macro_f1": None}
    tp = (truth & guess).sum(0)
    fp = (~truth & guess).sum(0)
    fn = (truth & ~guess).sum(0)
    f1 = [None if t + p + q == 0 else round(float(2 * t / (2 * t + p + q)), 4) for t, p, q in zip(tp, fp, fn)]
    scored = [f for f in f1 if f is not None]
    return {
        "exact": round(float((truth == guess).all(1).mean()), 4),
        "hamming_loss": round(float((truth != guess).mean()), 4) if truth.shape[1] else 0.0,
        "per_class_f1": f1,
        "macro_f1": round(float(np.mean(scored)), 4) if scored else None,
    }


def as_matrix(sets, classes):
    """Lists of class names -> bool (L, C) in `classes` order (unknown names ignored)."""
    column = {name: j for j, name in enumerate(classes)}
    out = np.zeros((len(sets), len(classes)), bool)
    for i, names in enumerate(sets):
        for name in names or ():
            if name in column:
                out[i, column[name]] = True
    return out
