"""my-greedy: hand every subchannel to the client that currently finishes its round last.

A plug-in allocation method for fsllm-sim (tutorial 03, docs/plugins.md). For each allowed (split, rank) pair:

1. every client gets its best free subchannel on each band (weakest client first), so none is left without one;
2. while a subchannel is free, the straggler (the client with the longest round time T_k) takes its best free
   subchannel on the band that shortens T_k more;
3. each client water-fills its full power cap over its own subchannels (full power, per band).

Planning uses mean-gain Shannon rates (fast); the pairs are visited in the order of a cheap lower bound and
skipped once the bound cannot beat the best allocation found; every finished allocation is scored with the
project's own objective, solvers.evaluate (ergodic rates when the scenario asks for them), and the best wins.
"""
import numpy as np

import solvers
from fsllm_sim.errors import SolverError
from solvers.problem import select_pairs


def water_fill_w(snr_per_w, bandwidth_hz, budget_w):
    """Powers p_i >= 0 with sum p_i = budget maximising sum B_i log2(1 + p_i snr_i) (snr_i per watt)."""
    floor = 1.0 / snr_per_w                      # p_i = max(0, B_i * w - 1/snr_i) for a water level w
    lo, hi = 0.0, (budget_w + floor.sum()) / bandwidth_hz.min()
    for _ in range(100):                         # bisection on the level w
        w = 0.5 * (lo + hi)
        if np.maximum(0.0, bandwidth_hz * w - floor).sum() > budget_w:
            hi = w
        else:
            lo = w
    return np.maximum(0.0, bandwidth_hz * lo - floor)


def band_rate_bps(snr_per_w, bandwidth_hz, budget_w):
    power = water_fill_w(snr_per_w, bandwidth_hz, budget_w)
    return float(np.sum(bandwidth_hz * np.log2(1.0 + power * snr_per_w)))


def greedy_allocation(problem, split, rank):
    """(assign_s, power_s_w, assign_f, power_f_w) for one (split, rank) pair."""
    k = problem.num_clients
    inf = np.full(k, np.inf)
    base_s = problem.breakdown(split, rank, inf, inf).client_round_s   # T_k without the two uplinks
    costs = problem.costs(split, rank)
    bits = {"s": problem.local_iterations * costs["activation_bits"], "f": costs["adapter_bits"]}
    gain = {"s": problem.gain_s, "f": problem.gain_f}
    bw = {"s": problem.bandwidth_s_hz, "f": problem.bandwidth_f_hz}
    snr = {b: gain[b] / (problem.noise_psd_w_per_hz * bw[b][None, :]) for b in "sf"}   # per watt
    assign = {b: np.full(gain[b].shape[1], -1) for b in "sf"}

    def rate(band, client, extra=None):
        mine = np.flatnonzero(assign[band] == client)
        if extra is not None:
            mine = np.append(mine, extra)
        if mine.size == 0:
            return 0.0
        return band_rate_bps(snr[band][client, mine], bw[band][mine], problem.p_max_w[client])

    def best_free(band, client):
        free = np.flatnonzero(assign[band] < 0)
        return None if free.size == 0 else int(free[np.argmax(gain[band][client, free])])

    # 1. one subchannel per client and band, weakest client (lowest mean gain) first
    for client in np.argsort(problem.gain_s.mean(axis=1)):
        for band in "sf":
            assign[band][best_free(band, client)] = client
    rates = {b: np.array([rate(b, c) for c in range(k)]) for b in "sf"}

    # 2. the straggler takes the free subchannel that shortens its round the most
    while (assign["s"] < 0).any() or (assign["f"] < 0).any():
        times = base_s + bits["s"] / rates["s"] + bits["f"] / rates["f"]
        client = int(np.argmax(times))
        options = []
        for band in "sf":
            sub = best_free(band, client)
            if sub is not None:
                new = rate(band, client, extra=sub)
                saved_s = bits[band] / rates[band][client] - bits[band] / new
                options.append((saved_s, band, sub, new))
        _, band, sub, new = max(options)
        assign[band][sub] = client
        rates[band][client] = new

    # 3. full power, water-filled over each client's own subchannels (scaled down under a band's total cap)
    power = {}
    for band, cap in (("s", problem.p_total_s_w), ("f", problem.p_total_f_w)):
        p = np.zeros(assign[band].size)
        for client in range(k):
            mine = np.flatnonzero(assign[band] == client)
            p[mine] = water_fill_w(snr[band][client, mine], bw[band][mine], problem.p_max_w[client])
        if cap is not None and p.sum() > cap:
            p *= cap / p.sum() * (1 - 1e-12)
        power[band] = p
    return assign["s"], power["s"], assign["f"], power["f"]


def full_band_rates_bps(problem):
    """Each client's rates with both whole bands to itself at full power (no allocation gives it more)."""
    rates = []
    for gain, bw in ((problem.gain_s, problem.bandwidth_s_hz), (problem.gain_f, problem.bandwidth_f_hz)):
        snr = gain / (problem.noise_psd_w_per_hz * bw[None, :])
        rates.append(np.array([band_rate_bps(snr[c], bw, problem.p_max_w[c]) for c in range(problem.num_clients)]))
    return rates


def lower_bound_s(problem, split, rank, full_rates):
    """N(r) T_round at the full-band rates: a bound no allocation of this (split, rank) can beat."""
    inf = np.full(problem.num_clients, np.inf)
    bd = problem.breakdown(split, rank, inf, inf)
    costs = problem.costs(split, rank)
    times = (bd.client_round_s + problem.local_iterations * costs["activation_bits"] / full_rates[0]
             + costs["adapter_bits"] / full_rates[1])
    return float(problem.convergence.rounds(rank)) * (times.max() + bd.aggregation_s + bd.broadcast_s)


def solve_my_greedy(problem, split=None, rank=None, **options):
    """The best straggler-greedy allocation over the allowed (split, rank) pairs (or the fixed ones)."""
    if problem.protocol == "fl":
        raise SolverError("my-greedy: protocol fl is not supported (it plans both uplink bands)")
    pairs = select_pairs(problem, split, rank)          # respects a fixed split / rank, min_split, memory
    full_rates = full_band_rates_bps(problem)
    bounds = sorted((lower_bound_s(problem, s, r, full_rates), s, r) for s, r in pairs)
    best = None
    for bound, s, r in bounds:
        if best is not None and bound >= best.objective_s:
            break                                        # no later pair can win: stop searching
        sol = solvers.evaluate(problem, s, r, *greedy_allocation(problem, s, r), method="my-greedy")
        if best is None or sol.objective_s < best.objective_s:
            best = sol
    best.notes.append(f"straggler-greedy subchannels, water-filled full power; {len(pairs)} pairs allowed")
    return best


# solver.plugins imports this file and registers what it declares here
FSLLM_SIM_METHODS = {"my-greedy": solve_my_greedy}
