"""Decision points: the threshold that balances a group, and the one for a source-balanced pool."""
import numpy as np

from facegender.evaluate import source_balanced_threshold, worst_groups
from facegender.manifest import Row
from facegender.metrics import best_threshold


def test_best_threshold_balances_the_recalls_and_prefers_the_point_nearest_half():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert best_threshold(y, np.array([.1, .2, .3, .4, .6, .9])) == (0.35, 1.0)
    t, acc = best_threshold(y, np.array([.1, .2, .3, .25, .6, .9]))  # one female below a male: two cuts tie
    assert abs(t - 0.45) < 1e-9 and abs(acc - 5 / 6) < 1e-9
    assert np.isnan(best_threshold(np.array([1, 1]), np.array([.2, .7]))[0])


def test_a_small_source_counts_as_much_as_a_large_one():
    """A large source whose sexes overlap wants ~0.4; a small one whose women all score 0.3
    wants below 0.3: the pool weighted by source serves the small one, the plain pool not."""
    rng = np.random.default_rng(0)
    big_y = np.repeat([0, 1], 1000)
    big_p = np.where(big_y == 1, rng.uniform(0.35, 1, 2000), rng.uniform(0, 0.45, 2000))
    small_y = np.repeat([0, 1], 20)
    small_p = np.where(small_y == 1, 0.3, 0.1)
    rows = [Row(path="", label=int(v), source="big") for v in big_y]
    rows += [Row(path="", label=int(v), source="small") for v in small_y]
    y, p = np.concatenate([big_y, small_y]), np.concatenate([big_p, small_p])
    t, acc = source_balanced_threshold(rows, y, p)
    assert 0.1 < t < 0.3 and acc > 0.85
    assert best_threshold(y, p)[0] > 0.35  # unweighted, the small source barely moves it


def test_the_worst_group_is_the_one_with_the_lowest_recall():
    groups = {"source and sex": {"a male": {"count": 50, "accuracy": 0.9}, "a female": {"count": 50, "accuracy": 0.8},
                                 "b female": {"count": 5, "accuracy": 0.1}}}
    assert worst_groups(groups) == {"source and sex": {"group": "a female", "count": 50, "recall": 0.8}}
