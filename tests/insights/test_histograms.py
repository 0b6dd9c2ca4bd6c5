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


def random_counts(rng, events):
    counts = {}
    for _ in range(events):
        b = histograms.bin_of(rng.randrange(0, 30_000))
        counts[b] = counts.get(b, 0) + 1
    return counts


def added(counts, increments):
    total = dict(counts)
    for b, n in increments.items():
        total[b] = total.get(b, 0) + n
    return total


def test_row_merger_adds_increments_to_stored_text():
    rng = random.Random(3)
    stored = histograms.encode(random_counts(rng, 500))
    increments = random_counts(rng, 50)

    [(row_id, text)] = histograms.RowMerger().merge_all([(7, stored, increments)])

    assert row_id == 7
    assert text == histograms.encode(added(histograms.decode(stored), increments))


def test_row_merger_reuses_only_the_text_it_wrote():
    rng = random.Random(4)
    merger = histograms.RowMerger()
    first = histograms.encode(random_counts(rng, 300))
    increments = random_counts(rng, 40)
    [(_, written)] = merger.merge_all([(1, first, increments)])

    # Another writer added to the row after this merger wrote it.
    changed = histograms.encode(
        added(histograms.decode(written), random_counts(rng, 30))
    )
    [(_, after_change)] = merger.merge_all([(1, changed, increments)])
    # The merger's last write was rolled back, so the row has `changed` again.
    [(_, after_rollback)] = merger.merge_all([(1, changed, increments)])
    [(_, after_reuse)] = merger.merge_all([(1, after_rollback, increments)])

    expected = added(histograms.decode(changed), increments)
    assert after_change == histograms.encode(expected)
    assert after_rollback == histograms.encode(expected)
    assert after_reuse == histograms.encode(added(expected, increments))


def test_row_merger_over_its_bin_limit_stays_exact():
    rng = random.Random(5)
    merger = histograms.RowMerger()
    merger.max_bins = 10
    rows = [(i, histograms.encode(random_counts(rng, 200))) for i in range(3)]
    increments = random_counts(rng, 20)

    for _ in range(2):
        merged = merger.merge_all([(i, text, increments) for i, text in rows])
        expected = [
            (i, histograms.encode(added(histograms.decode(text), increments)))
            for i, text in rows
        ]
        assert merged == expected
        rows = merged


def test_decode_reads_unsorted_text_with_repeated_bins():
    assert histograms.decode("10 1 3 2 10 4") == {3: 2, 10: 5}
