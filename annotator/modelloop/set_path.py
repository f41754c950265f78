"""The fast path of a multi-label project (`Project.multi_label`): one-vs-rest propagation
(`mlcore.multilabel`) instead of the single-label softmax path of `modelloop.results`.

The arrays (`modelloop.arrays.set_arrays`): `answered` (N,) int, 0 for an item with a live
answer and -1 otherwise (the shape the loop counts labels with), and `targets` (N, C), the
share of an item's annotators who said each class applies. The served probabilities are
per class, each in [0, 1] on its own, calibrated per class (Platt scaling on the held-out
folds) once a class has enough answers on both sides; the suggested set is the classes at
or above 0.5. The pixel baseline, zero-shot guesses and fine-tuning are single-label
machinery and take no part here (docs/model-loop.md)."""
import time

import numpy as np

from annotator.modelloop.set_measures import SUGGEST_AT, set_metrics
from mlcore.multilabel import apply_calibration, calibrate_classes, set_uncertainty

UNCERTAINTY_BINS = 20
# Calibrate a class from this many held-out positives and as many negatives on. Measured on
# synthetic blobs (6 sets of 4 classes, 1,800 items, 5 seeds; docs/model-loop.md): with a
# floor of 5, 12 answers made calibrated guesses worse (exact-set 0.81 -> 0.62); with 8 they
# never were, and from 30 answers calibration raised the exact-set match (noisy blobs:
# 0.19 -> 0.51 at 60 answers, 0.17 -> 0.65 at 120).
CALIBRATION_MIN_EACH = 8


def fast_path_sets(model, answered, targets, strategy, batch, rerank=True, held=()):
    """(probs, queue, durations, metrics, heldout) as `results.fast_path` returns them;
    heldout is (rows, probs (L, C)) and the truths it is checked against are targets[rows]."""
    learner = model.learner
    labeled = answered >= 0
    n_labels = int(labeled.sum())
    num_classes = learner.num_classes
    durations, metrics = {}, {"multi_label": True, "served_by": model.encoder_name}
    t = time.perf_counter()
    probs = learner.fast_update_sets(targets, labeled) if n_labels else None
    durations["propagate_s"] = round(time.perf_counter() - t, 4)
    truth = targets >= SUGGEST_AT
    metrics["classes_labeled"] = int(truth[labeled].any(0).sum())
    heldout = None
    if n_labels >= max(10, 2 * num_classes):
        t = time.perf_counter()
        rows, heldout_probs = learner.heldout_sets(targets, labeled)
        params = calibrate_classes(heldout_probs, truth[rows], CALIBRATION_MIN_EACH)
        calibrated = ~np.all(params == [1.0, 0.0], axis=1)
        if calibrated.any():
            metrics["calibrated_classes"] = int(calibrated.sum())
            heldout_probs = apply_calibration(heldout_probs, params)
            probs = probs.copy()
            probs[~labeled] = apply_calibration(probs[~labeled], params)
        scores = set_metrics(truth[rows], heldout_probs >= SUGGEST_AT)
        # cv_accuracy is the exact-set match: the curve the dashboard draws beside the audit's
        metrics.update(cv_accuracy=scores["exact"], cv_hamming_loss=scores["hamming_loss"],
                       cv_macro_f1=scores["macro_f1"])
        heldout = (rows, heldout_probs)
        durations["cv_s"] = round(time.perf_counter() - t, 4)
    t = time.perf_counter()
    queue = None
    if rerank:
        asked = labeled.copy()
        if len(held):
            asked[np.asarray(held)] = True  # held items are not asked twice
        queue = learner.rank_sets(batch, targets, asked, strategy=strategy) if (~asked).any() else np.zeros(0, np.int64)
    durations["rank_s"] = round(time.perf_counter() - t, 4)
    if probs is not None:
        metrics.update(pool_summary_sets(probs, labeled))
    return probs, queue, durations, metrics, heldout


def pool_summary_sets(probs, labeled):
    """The dashboard's pool summary for a multi-label pool: the histogram of the uncertainty
    (mean binary entropy over classes / log 2) of the unanswered items, and how many of them
    each class's guess includes (a set guess counts once per class in it)."""
    open_rows = ~labeled
    p = probs[open_rows]
    uncertainty = set_uncertainty(p) if len(p) else np.zeros(0, np.float32)
    counts, _edges = np.histogram(uncertainty, bins=UNCERTAINTY_BINS, range=(0.0, 1.0))
    return {
        "mean_confidence": round(float(1.0 - uncertainty.mean()), 4) if len(p) else None,
        "predicted_counts": (probs >= SUGGEST_AT).sum(0).tolist(),
        "unlabeled": int(open_rows.sum()),
        "uncertainty_hist": counts.tolist(),
        "uncertainty_mean": round(float(uncertainty.mean()), 4) if len(p) else None,
        "predicted_unlabeled": (p >= SUGGEST_AT).sum(0).tolist(),
    }
