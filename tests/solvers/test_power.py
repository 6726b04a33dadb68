"""Power control for a fixed assignment (solvers/power.py) against a general-purpose NLP solver."""
import numpy as np
import pytest
from scipy.optimize import minimize

from channel_models.ofdma import water_filling_power_w
from solvers.instances import random_problem, synthetic_profile
from solvers.power import RoundTerms, bands_of, optimal_power, pack_assignment
from solvers.problem import check_allocation, evaluate

PROFILE = synthetic_profile(splits=[4, 12], ranks=[2, 8])


def instance(seed, caps=(None, None), k=3, m=6, n=5):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=PROFILE,
                          total_cap_s_w=caps[0], total_cap_f_w=caps[1])


def assignment(seed, k, m, n):
    rng = np.random.default_rng(100 + seed)
    a_s = np.concatenate([np.arange(k), rng.integers(0, k, m - k)])
    a_f = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    return rng.permutation(a_s), rng.permutation(a_f)


def nlp_reference(pb, terms, a_s, a_f):
    """min tau s.t. T_k(p) <= tau and every cap, by SLSQP from a few feasible starts (best of them).

    Variables are scaled (powers in units of 10 mW, tau in units of a feasible start's value) so
    that the solver's tolerances mean the same thing on every row.
    """
    k, m, n = pb.num_clients, pb.num_subchannels_s, pb.num_subchannels_f
    g_s, g_f = pb.gain_s[a_s, np.arange(m)], pb.gain_f[a_f, np.arange(n)]
    n0 = pb.noise_psd_w_per_hz
    unit = 0.01

    def times(x):
        p_s, p_f = np.maximum(x[:m], 0) * unit, np.maximum(x[m:m + n], 0) * unit
        c_s = pb.bandwidth_s_hz * np.log2(1 + p_s * g_s / (n0 * pb.bandwidth_s_hz))
        c_f = pb.bandwidth_f_hz * np.log2(1 + p_f * g_f / (n0 * pb.bandwidth_f_hz))
        return terms.base_s + terms.s_bits / np.bincount(a_s, c_s, k) + terms.f_bits / np.bincount(a_f, c_f, k)

    best = np.inf
    for start in range(3):
        rng = np.random.default_rng(start)
        # Feasible start: each client spreads (a random part of) an equal share of the caps.
        x0 = np.zeros(m + n + 1)
        for lo, band, assign, cap in ((0, m, a_s, pb.p_total_s_w), (m, n, a_f, pb.p_total_f_w)):
            budget = 0.99 * np.minimum(pb.p_max_w, (cap if cap is not None else np.inf) / k)
            share = rng.uniform(0.5, 1.0, band) if start else np.ones(band)
            per = np.bincount(assign, share, k)
            x0[lo:lo + band] = budget[assign] * share / per[assign] / unit
        tau0 = times(x0).max()
        x0[-1] = 1.01
        cons = [{"type": "ineq", "fun": lambda x: x[-1] - times(x) / tau0}]
        for c in range(k):
            cons.append({"type": "ineq", "fun": lambda x, c=c: pb.p_max_w[c] / unit - x[:m][a_s == c].sum()})
            cons.append({"type": "ineq", "fun": lambda x, c=c: pb.p_max_w[c] / unit - x[m:m + n][a_f == c].sum()})
        if pb.p_total_s_w is not None:
            cons.append({"type": "ineq", "fun": lambda x: pb.p_total_s_w / unit - x[:m].sum()})
        if pb.p_total_f_w is not None:
            cons.append({"type": "ineq", "fun": lambda x: pb.p_total_f_w / unit - x[m:m + n].sum()})
        res = minimize(lambda x: x[-1], x0, method="SLSQP", constraints=cons,
                       bounds=[(1e-10, None)] * (m + n) + [(0, None)], options={"maxiter": 1000, "ftol": 1e-14})
        if all(np.min(c["fun"](res.x)) >= -1e-7 for c in cons[1:]):
            best = min(best, times(res.x).max())
    return best


@pytest.mark.parametrize("seed,caps", [(0, (None, None)), (1, (None, None)), (2, (0.15, None)),
                                       (3, (None, 0.1)), (4, (0.15, 0.1)), (5, (0.3, 0.05)), (6, (0.05, 0.3))])
def test_power_control_matches_nlp_solver(seed, caps):
    pb = instance(seed, caps)
    terms = RoundTerms.from_problem(pb, 12, 2)
    a_s, a_f = assignment(seed, 3, 6, 5)
    res = optimal_power(*bands_of(pb), terms, a_s, a_f)
    check_allocation(pb, a_s, res.power_s_w, a_f, res.power_f_w)
    ref = nlp_reference(pb, terms, a_s, a_f)
    # Never worse than the NLP solver (up to rounding), and it is no looser than its tolerance.
    assert res.max_time_s <= ref * (1 + 1e-8)
    assert res.max_time_s == pytest.approx(ref, rel=1e-6)
    sol = evaluate(pb, 12, 2, a_s, res.power_s_w, a_f, res.power_f_w)
    assert sol.objective_s == pytest.approx(terms.rounds * (res.max_time_s + terms.tail_s), rel=1e-12)


def test_per_client_caps_give_water_filling_at_each_cap():
    pb = instance(7)
    a_s, a_f = assignment(7, 3, 6, 5)
    res = optimal_power(*bands_of(pb), RoundTerms.from_problem(pb, 4, 8), a_s, a_f)
    assert res.method == "water-filling"
    for c in range(3):
        own = a_s == c
        expected = water_filling_power_w(pb.gain_s[c, own], pb.bandwidth_s_hz[own], pb.noise_psd_w_per_hz,
                                         pb.p_max_w[c])
        assert res.power_s_w[own] == pytest.approx(expected, rel=1e-12)
    assert res.budget_s_w == pytest.approx(pb.p_max_w, rel=1e-12)


def test_binding_total_caps_are_used_in_full_and_never_exceeded():
    pb = instance(8, caps=(0.12, 0.09))
    a_s, a_f = assignment(8, 3, 6, 5)
    res = optimal_power(*bands_of(pb), RoundTerms.from_problem(pb, 12, 8), a_s, a_f)
    assert res.power_s_w.sum() <= 0.12 and res.power_f_w.sum() <= 0.09
    assert res.power_s_w.sum() == pytest.approx(0.12, rel=1e-6)
    assert res.power_f_w.sum() == pytest.approx(0.09, rel=1e-6)
    # At the optimum every client that is not at both of its caps finishes together.
    assert np.ptp(res.client_time_s) <= 1e-6 * res.max_time_s


def test_a_non_binding_total_cap_changes_nothing():
    free = instance(9)
    loose = instance(9, caps=(10.0, 10.0))
    a_s, a_f = assignment(9, 3, 6, 5)
    t = RoundTerms.from_problem(free, 4, 2)
    r1 = optimal_power(*bands_of(free), t, a_s, a_f)
    r2 = optimal_power(*bands_of(loose), t, a_s, a_f)
    assert r2.method == "water-filling"
    assert r1.power_s_w == pytest.approx(r2.power_s_w) and r1.power_f_w == pytest.approx(r2.power_f_w)


def test_pack_assignment_lists_each_clients_subchannels():
    idx = pack_assignment(np.array([2, 0, -1, 2, 1, 2]), 3)
    assert idx.tolist() == [[1, -1, -1], [4, -1, -1], [0, 3, 5]]
