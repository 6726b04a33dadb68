"""The relaxation bound is below every feasible objective (it is certified, not a local optimum)."""
import numpy as np
import pytest

from solvers.enumeration import solve_enumeration
from solvers.exact import solve_milp
from solvers.instances import random_problem, synthetic_profile
from solvers.problem import evaluate
from solvers.relaxation import solve_relaxation

PROFILE = synthetic_profile(splits=[2, 12, 24], ranks=[1, 4, 16])
CAPS = [(None, None), (0.2, None), (None, 0.2), (0.25, 0.25), (0.12, 0.4)]


def instance(seed, k, m, n, caps):
    return random_problem(np.random.default_rng(seed), k, m, n, profile=PROFILE,
                          total_cap_s_w=caps[0], total_cap_f_w=caps[1])


def random_allocation(problem, rng):
    """A random feasible allocation: every client gets a subchannel, some are left unused, random powers."""
    k = problem.num_clients
    out = []
    for m, cap in ((problem.num_subchannels_s, problem.p_total_s_w), (problem.num_subchannels_f, problem.p_total_f_w)):
        a = rng.integers(-1, k, m)
        a[rng.permutation(m)[:k]] = np.arange(k)
        share = rng.dirichlet(np.ones(m)) * 2.0
        p = np.zeros(m)
        for kk in range(k):
            own = a == kk
            p[own] = share[own] / share[own].sum() * problem.p_max_w[kk] * rng.uniform(0.3, 1.0)
        if cap is not None and p.sum() > cap:
            p *= cap / p.sum()
        out += [a, p]
    return out


@pytest.mark.parametrize("seed", range(25))
def test_relaxation_is_below_every_feasible_objective(seed):
    rng = np.random.default_rng(1000 + seed)
    k = 2 + seed % 2
    pb = instance(seed, k, 4 + seed % 2, 3 + (seed // 2) % 2, CAPS[seed % len(CAPS)])
    bound = solve_relaxation(pb)
    assert bound.method == "relaxation" and bound.status == "lower_bound"
    assert bound.objective_s == bound.lower_bound_s and np.isfinite(bound.objective_s)
    opt = solve_enumeration(pb)
    assert bound.objective_s <= opt.objective_s * (1 + 1e-9)
    assert bound.objective_s <= opt.lower_bound_s * (1 + 1e-9)
    linked = solve_relaxation(pb, link_power=True)
    assert linked.objective_s <= opt.objective_s * (1 + 1e-9)
    for _ in range(40):
        a_s, p_s, a_f, p_f = random_allocation(pb, rng)
        split, rank = pb.candidate_pairs()[rng.integers(len(pb.candidate_pairs()))]
        assert bound.objective_s <= evaluate(pb, split, rank, a_s, p_s, a_f, p_f).objective_s * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_relaxation_is_below_the_exact_milp_and_per_pair(seed):
    pb = instance(50 + seed, 3, 6, 4, CAPS[seed])
    exact = solve_milp(pb, split=12, rank=4)
    at_pair = solve_relaxation(pb, split=12, rank=4)
    overall = solve_relaxation(pb)
    assert (at_pair.split, at_pair.rank) == (12, 4)
    assert at_pair.objective_s <= exact.objective_s * (1 + 1e-9)
    assert overall.objective_s <= at_pair.objective_s * (1 + 1e-9)  # the least over pairs
    assert at_pair.assign_s.size == 0 and at_pair.power_f_w.size == 0


def test_relaxation_is_well_above_the_single_client_bound():
    """Sharing the band is what makes the relaxation informative: it beats 'every client alone'."""
    from solvers.exact_power import pair_terms
    from solvers.milp import AllocationModel

    pb = instance(7, 3, 5, 4, (None, None))
    terms = pair_terms(pb, 12, 4)
    alone = terms.objective(AllocationModel(pb).core_lower(terms))
    bound = solve_relaxation(pb, split=12, rank=4).objective_s
    opt = solve_enumeration(pb, split=12, rank=4).objective_s
    assert alone < bound <= opt
    assert (opt - bound) / opt < 0.25


def test_relaxation_through_the_registry():
    from solvers import solve

    pb = instance(8, 2, 4, 3, (None, 0.2))
    sol = solve(pb, "relaxation", rank=16)
    assert sol.rank == 16 and sol.status == "lower_bound"
    assert sol.objective_s <= solve_enumeration(pb, rank=16).objective_s * (1 + 1e-9)
