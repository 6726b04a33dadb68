"""Partition schemes over document indices: coverage, group integrity, balance, skew, seeds."""

import numpy as np
import pytest

from fsllm_sim.errors import DataError
from fsllm_sim.training.data.partition import (
    DIRICHLET_MAX_DRAWS,
    check_nonempty,
    label_entropy_bits,
    partition_by_group,
    partition_dirichlet,
    partition_iid,
)

# 12 "plays" of uneven length, 600 documents in corpus order.
PLAY_LENGTHS = [20, 30, 40, 45, 50, 50, 55, 60, 60, 60, 60, 70]
LABELS = [f"play{p:02d}" for p, n in enumerate(PLAY_LENGTHS) for _ in range(n)]
SIZES = np.random.default_rng(0).integers(5, 200, size=len(LABELS))


def assert_exact_cover(parts, n):
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(n))  # every document once, no duplicates
    assert all(np.all(np.diff(p) > 0) for p in parts)  # ascending: corpus order kept


@pytest.mark.parametrize("n, k", [(600, 7), (10, 10), (11, 3)])
def test_iid_sizes_equal_within_one(n, k):
    parts = partition_iid(n, k, np.random.default_rng(1))
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert_exact_cover(parts, n)


def test_iid_depends_on_seed_only():
    a = partition_iid(600, 5, np.random.default_rng(1))
    b = partition_iid(600, 5, np.random.default_rng(1))
    c = partition_iid(600, 5, np.random.default_rng(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("k", [1, 4, 12])
def test_by_group_never_splits_a_group_and_balances(k):
    parts = partition_by_group(LABELS, SIZES, k, np.random.default_rng(3))
    assert_exact_cover(parts, len(LABELS))
    labels = np.array(LABELS)
    owners = {}
    for client, part in enumerate(parts):
        for label in set(labels[part]):
            assert owners.setdefault(label, client) == client  # no group on two clients
    loads = [int(SIZES[p].sum()) for p in parts]
    largest_group = max(int(SIZES[labels == g].sum()) for g in set(LABELS))
    assert max(loads) - min(loads) <= largest_group  # greedy list-scheduling bound


def test_by_group_seeded():
    a = partition_by_group(LABELS, SIZES, 4, np.random.default_rng(5))
    b = partition_by_group(LABELS, SIZES, 4, np.random.default_rng(5))
    c = partition_by_group(LABELS, SIZES, 4, np.random.default_rng(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_by_group_more_clients_than_groups_reports_empty_client():
    parts = partition_by_group(LABELS, SIZES, 14, np.random.default_rng(0))
    assert sum(p.size == 0 for p in parts) == 2
    with pytest.raises(DataError) as err:
        check_nonempty(parts, "by_play", 12, "plays")
    assert "has an empty partition (partition=by_play, 12 plays over 14 clients)" in str(err.value)
    assert str(err.value).startswith("client 12 ") and "\n" not in str(err.value)


def test_dirichlet_covers_and_is_seeded():
    a = partition_dirichlet(LABELS, 5, 0.5, np.random.default_rng(7))
    b = partition_dirichlet(LABELS, 5, 0.5, np.random.default_rng(7))
    c = partition_dirichlet(LABELS, 5, 0.5, np.random.default_rng(8))
    assert_exact_cover(a, len(LABELS))
    assert all(p.size > 0 for p in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def mean_entropy(alpha: float, seeds=range(5)) -> float:
    values = [
        label_entropy_bits(partition_dirichlet(LABELS, 6, alpha, np.random.default_rng(s)), LABELS).mean()
        for s in seeds
    ]
    return float(np.mean(values))


def test_dirichlet_smaller_alpha_gives_more_skew():
    skewed, mid, flat = mean_entropy(0.05), mean_entropy(1.0), mean_entropy(100.0)
    assert skewed < mid < flat
    assert flat > 0.9 * np.log2(len(PLAY_LENGTHS))  # alpha -> inf approaches IID mixing
    assert skewed < 0.5 * np.log2(len(PLAY_LENGTHS))


def test_dirichlet_gives_up_with_a_clear_error():
    labels = ["a"] * 3 + ["b"] * 3
    with pytest.raises(DataError) as err:
        partition_dirichlet(labels, 50, 0.1, np.random.default_rng(0))
    message = str(err.value)
    assert f"empty partition in all {DIRICHLET_MAX_DRAWS} draws" in message
    assert "6 documents in 2 groups over 50 clients" in message and "larger dirichlet_alpha" in message


def test_label_entropy_values():
    parts = [np.array([0, 1]), np.array([2, 3])]
    assert label_entropy_bits(parts, ["x", "x", "x", "y"]).tolist() == [0.0, 1.0]
