"""The measures of a set guess against set answers (multi-label projects), by hand."""
import numpy as np
import pytest

from annotator.modelloop.set_measures import as_matrix, set_metrics


def test_set_metrics_by_hand():
    truth = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]], bool)
    guess = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], bool)
    m = set_metrics(truth, guess)
    assert m["exact"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["hamming_loss"] == pytest.approx(2 / 9, abs=1e-4)
    # class 0: tp 2 -> 1.0; class 1: tp 0 fp 1 fn 1 -> 0; class 2: tp 1 -> 1.0
    assert m["per_class_f1"] == [1.0, 0.0, 1.0] and m["macro_f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert set_metrics(np.zeros((0, 2), bool), np.zeros((0, 2), bool))["exact"] is None


def test_names_become_a_matrix_in_class_order():
    m = as_matrix([["dog", "cat"], [], None, ["bird"]], ["cat", "dog"])
    assert m.tolist() == [[True, True], [False, False], [False, False], [False, False]]
