import random

from insights import histograms


def test_percentiles_in_one_pass_match_single_percentiles():
    rng = random.Random(7)
    counts = {}
    for _ in range(2000):
        b = histograms.bin_of(rng.lognormvariate(6, 1))
        counts[b] = counts.get(b, 0) + 1

    together = histograms.percentiles(counts, (0.5, 0.95, 0.99))

    assert together == [histograms.percentile(counts, q) for q in (0.5, 0.95, 0.99)]
    assert together[0] < together[1] < together[2]


def test_percentiles_of_an_empty_histogram_are_none():
    assert histograms.percentiles({}, (0.5, 0.95)) == [None, None]


def test_merge_text_adds_counts_per_bin():
    counts = {3: 1}

    histograms.merge_text(counts, "3 2 10 5")

    assert counts == {3: 3, 10: 5}
