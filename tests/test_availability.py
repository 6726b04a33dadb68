"""Availability timelines: the Markov on/off process has its on-fraction, its stationary start and its
sojourn means; answers do not depend on the order of the questions; interval timelines answer exactly."""
import math

import numpy as np
import pytest

from fsllm_sim.availability import (AlwaysAvailable, IntervalAvailability, MarkovAvailability, make_availability,
                                    markov_on_fraction, on_fraction)
from fsllm_sim.errors import ConfigError


@pytest.mark.parametrize("mean_on, mean_off", [(60.0, 20.0), (5.0, 45.0), (1.0, 1.0)])
def test_markov_on_fraction_over_a_long_run(mean_on, mean_off):
    """Rule: within 2 % of mean_on / (mean_on + mean_off) over 20,000 on/off cycles."""
    m = MarkovAvailability(np.random.default_rng(4), mean_on, mean_off)
    frac = on_fraction(m, 20_000 * (mean_on + mean_off))
    assert frac == pytest.approx(markov_on_fraction(mean_on, mean_off), rel=0.02)


def test_markov_starts_stationary_and_sojourns_have_their_means():
    p = markov_on_fraction(30.0, 10.0)
    ss = np.random.SeedSequence(8)
    models = make_availability("markov", 20_000, seed_sequence=ss, mean_on_s=30.0, mean_off_s=10.0)
    on0 = np.mean([m.is_available(0.0) for m in models])
    assert on0 == pytest.approx(p, abs=3 * math.sqrt(p * (1 - p) / 20_000))
    m = MarkovAvailability(np.random.default_rng(1), 30.0, 10.0, initial="on")
    t, on_times = 0.0, []
    for _ in range(4000):
        end = m.available_until_s(t)
        on_times.append(end - t)
        t = m.next_available_s(end)
    assert np.mean(on_times) == pytest.approx(30.0, rel=4 / math.sqrt(4000))


def test_answers_do_not_depend_on_the_order_of_the_questions():
    times = [1000.0, 5.0, 300.0, 0.0, 77.7]
    a = MarkovAvailability(np.random.default_rng(2), 10.0, 5.0)
    b = MarkovAvailability(np.random.default_rng(2), 10.0, 5.0)
    first = [(a.is_available(t), a.next_change_s(t)) for t in times]
    second = [(b.is_available(t), b.next_change_s(t)) for t in reversed(times)][::-1]
    assert first == second


def test_interval_availability_answers_exactly():
    m = IntervalAvailability([(0.0, 10.0), (10.0, 20.0), (30.0, 40.0)])  # the first two touch: one interval
    assert m.is_available(0.0) and m.is_available(19.99) and not m.is_available(20.0)
    assert m.next_change_s(0.0) == 20.0 and m.available_until_s(5.0) == 20.0
    assert m.next_available_s(25.0) == 30.0 and m.next_available_s(45.0) == math.inf
    assert on_fraction(m, 50.0) == pytest.approx(0.6)
    assert AlwaysAvailable().next_change_s(1e9) == math.inf
    with pytest.raises(ConfigError):
        IntervalAvailability([(5.0, 4.0)])


def test_share_and_per_client_streams():
    """Rule: clients 0..round(share K)-1 churn; client k's timeline is the same whatever K."""
    ss = np.random.SeedSequence(3)
    small = make_availability("markov", 5, seed_sequence=ss, mean_on_s=10.0, mean_off_s=10.0, share=1.0)
    large = make_availability("markov", 50, seed_sequence=ss, mean_on_s=10.0, mean_off_s=10.0, share=0.5)
    assert [small[3].next_change_s(t) for t in (0.0, 50.0)] == [large[3].next_change_s(t) for t in (0.0, 50.0)]
    assert all(isinstance(m, AlwaysAvailable) for m in large[25:])
    assert all(isinstance(m, MarkovAvailability) for m in large[:25])
