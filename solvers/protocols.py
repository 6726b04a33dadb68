"""What the solvers optimise under the baseline protocols ``sl`` and ``fl`` (docs/protocols.md).

``sfl`` is the problem of spec section 5 and every method in ``solvers.registry`` solves it as it is.

``fl`` (federated LoRA without a split) is that same problem with the split fixed at J and nothing on the
s-band: its Problem holds the unsplit profile (one split, S_a = 0, Phi_s = 0), so every method runs
unchanged and optimises what remains, the f-band subchannels, the powers and the rank. The s-band
allocation the methods produce on the way carries no bits and does not change the objective;
:func:`without_s_band` reports it empty.

``sl`` (vanilla split learning) has no allocation left to choose. Only one client is active at a time and
it holds every subchannel of both bands during its turn, so its rates depend on its own powers alone; the
round is the sum of the turns, each decreasing in its client's rates. Water-filling client k's budget
min(P^max_k, P_total) over all subchannels of a band maximises its rate on mean (or instantaneous) gains,
hence minimises every turn at once and their sum: for each (split, rank) it is the optimum on mean-gain
rates, and enumerating the pairs gives the global optimum. What ``sl`` optimises is therefore the split and
the rank (and the per-client power spectrum by water-filling). The methods map as follows:

* ``bcd``, ``exact``, ``gurobi``: water-filling, best pair (``exact``/``gurobi`` say "optimal" under
  mean-gain rates; under ergodic rates the water-filled allocation is scored ergodically and is not
  certified, but with average gains (equal on a client's subchannels) and equal bandwidths equal power is
  the ergodic optimum too, which is what water-filling gives there);
* ``relaxation``: the mean-gain optimum as a lower bound (ergodic rates are never above mean-gain rates);
* ``equal`` and ``max-power``: every client's budget split equally over all subchannels;
* ``random``: every client's budget split equally over a random non-empty subset of each band (``seed``).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from channel_models.ofdma import water_filling_power_w_batched
from fsllm_sim.errors import SolverError

from .problem import ACTIVE_CLIENT, Problem, Solution, evaluate, select_pairs

SL_RULES = {"bcd": "water-filling", "exact": "water-filling", "gurobi": "water-filling",
            "relaxation": "water-filling", "equal": "equal", "max-power": "equal", "random": "random"}
SL_OPTIONS = ("seed", "progress", "time_limit_s")
CERTIFIED = ("exact", "gurobi")


def sl_budget_w(p_max_w, total_cap_w: Optional[float]) -> np.ndarray:
    """Power a client may spend on a band during its turn: its cap, and the band's total cap (it is alone)."""
    p_max = np.asarray(p_max_w, dtype=float)
    return p_max if total_cap_w is None else np.minimum(p_max, float(total_cap_w))


def sl_band_powers_w(gain, bandwidth_hz, noise_psd_w_per_hz: float, budget_w, rule: str = "water-filling",
                     rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """K x S powers of each client over every subchannel of one band during its turn.

    ``water-filling``: the rate-maximising spectrum of each client's budget; ``equal``: the budget split
    equally; ``random``: split equally over a random non-empty subset (``rng``)."""
    gain = np.asarray(gain, dtype=float)
    k, s = gain.shape
    budget = np.broadcast_to(np.asarray(budget_w, dtype=float), (k,))
    if rule == "water-filling":
        return water_filling_power_w_batched(gain, np.broadcast_to(bandwidth_hz, gain.shape), noise_psd_w_per_hz,
                                             budget)
    if rule == "equal":
        mask = np.ones((k, s), dtype=bool)
    elif rule == "random":
        if rng is None:
            raise SolverError("sl: the random rule needs a random generator")
        mask = rng.random((k, s)) < 0.5
        mask[np.arange(k), rng.integers(0, s, k)] = True  # at least one subchannel each
    else:
        raise SolverError(f"sl: power rule {rule!r} is not one of water-filling, equal, random")
    return np.where(mask, (budget / mask.sum(axis=1))[:, None], 0.0)


def sl_allocation(problem: Problem, rule: str = "water-filling", seed: int = 0) -> tuple:
    """(assign_s, power_s_w, assign_f, power_f_w) of an sl problem: every subchannel the active client's."""
    if problem.protocol != "sl":
        raise SolverError(f"sl_allocation needs protocol sl, the problem has {problem.protocol!r}")
    rng = np.random.default_rng(seed) if rule == "random" else None
    out = []
    for gain, bw, cap in ((problem.gain_s, problem.bandwidth_s_hz, problem.p_total_s_w),
                          (problem.gain_f, problem.bandwidth_f_hz, problem.p_total_f_w)):
        power = sl_band_powers_w(gain, bw, problem.noise_psd_w_per_hz, sl_budget_w(problem.p_max_w, cap), rule, rng)
        out += [np.full(gain.shape[1], ACTIVE_CLIENT, dtype=int), power]
    return tuple(out)


def _best_pair(problem: Problem, pairs, alloc, method: str) -> Solution:
    scored = [evaluate(problem, s, r, *alloc, method=method) for s, r in pairs]
    return min(scored, key=lambda sol: sol.objective_s)  # first minimum: the earlier pair on ties


def sl_lower_bound(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None) -> float:
    """A certified lower bound for sl: the water-filled optimum on mean-gain rates (exact there; below any
    ergodic score, since the ergodic rate of a power spectrum never exceeds its mean-gain rate)."""
    mean_gain = dataclasses.replace(problem, rate_model="mean-gain", rician_k_linear=None)
    alloc = sl_allocation(mean_gain)
    return float(_best_pair(mean_gain, select_pairs(mean_gain, split, rank), alloc, "sl bound").objective_s)


def solve_sl(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None, *, method: str = "bcd",
             **options) -> Solution:
    """Solve an sl problem with ``method``'s rule (module docstring); options: ``seed`` (random), and the
    ``progress`` / ``time_limit_s`` the exact methods take elsewhere (nothing here runs long: ignored)."""
    if method not in SL_RULES:
        raise SolverError(f"protocol sl: method {method!r} is not one of {', '.join(SL_RULES)}")
    unknown = sorted(set(options) - set(SL_OPTIONS))
    if unknown:
        raise SolverError(f"protocol sl, {method}: unknown option(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(SL_OPTIONS)}")
    rule = SL_RULES[method]
    seed = int(options.get("seed", 0))
    pairs = select_pairs(problem, split, rank)
    bound = sl_lower_bound(problem, split, rank)
    if method == "relaxation":
        sol = _best_pair(dataclasses.replace(problem, rate_model="mean-gain", rician_k_linear=None), pairs,
                         sl_allocation(problem), "relaxation")
        sol.status, sol.lower_bound_s = "lower_bound", bound
        sol.notes.append("protocol sl: the water-filled optimum on mean-gain rates bounds every allocation")
        return sol
    sol = _best_pair(problem, pairs, sl_allocation(problem, rule, seed), method)
    sol.lower_bound_s = bound
    certified = method in CERTIFIED and problem.rate_model == "mean-gain"
    sol.status = "optimal" if certified else "feasible"
    sol.notes.append(f"protocol sl: one client at a time on every subchannel, {rule} power per client"
                     + (f" (seed {seed})" if rule == "random" else "")
                     + ("; water-filling is the optimum for each (split, rank)" if rule == "water-filling" else ""))
    return sol


def without_s_band(problem: Problem, sol: Solution) -> Solution:
    """fl: the s-band carries nothing, so a solution reports it empty (its objective does not change)."""
    sol.assign_s = np.full(problem.num_subchannels_s, -1, dtype=int)
    sol.power_s_w = np.zeros(problem.num_subchannels_s)
    return sol
