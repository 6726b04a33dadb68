"""Subchannel allocation for fixed per-client power budgets (step 1 of the reference algorithm).

All functions work on the structure of one (split, rank) pair, ``RoundTerms``:
T_k = base_k + s_bits / R^s_k + f_bits / R^f_k, and try to make max_k T_k small. With budgets fixed,
R^beta_k is the water-filling rate of client k's budget over its subchannels on band beta, which is
exactly what power control returns when only per-client caps exist, so under per-client caps these
functions score allocations with the true objective.

* ``initial_matching``: one subchannel per client on each band, a bottleneck assignment (the
  largest single-subchannel time as small as possible, then the sum as small as possible among
  those), so every client has >= 1 subchannel and nobody starts on a hopeless one.
* ``greedy_allocation``: then each remaining subchannel, on either band, goes to the current
  bottleneck client (largest T_k), choosing the band and subchannel that cut its time most. The two
  bands interact only through T_k, so one queue over both bands handles the coupling: a client
  whose f-band upload dominates asks for f-band subchannels, and vice versa.
* ``local_search``: single-subchannel moves to the bottleneck, and (when no move helps) swaps and
  whole-set exchanges between the bottleneck and any other client, on both bands, best improvement
  first, accepted only when max_k T_k drops.
* ``power_local_search``: under a binding total cap, the allocation block of the alternation: at
  the current round time, moves and swaps on either band that lower the least total power the
  capped band needs (the power step then turns that saving into a shorter round).
* ``price_local_search``: under two binding total caps, moves and swaps on either band screened by
  their effect on the priced power sum at the current round time (each client re-splitting its
  deadline between its bands), then verified exactly (see its docstring).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from channel_models.ofdma import (min_power_for_rate_w_batched, subchannel_rate_bps,
                                  water_filling_power_w_batched)

from .power import BandSpec, PackedBand, PowerResult, RoundTerms, _TotalCapSolver, _transfer, optimal_power

# A move must cut the bottleneck time by this relative amount to count (guards against cycling on ties).
IMPROVEMENT_RTOL = 1e-12
# Swaps consider at most this many of the bottleneck's subchannels (its weakest).
SWAP_WIDTH = 8


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------

def bottleneck_matching(cost: np.ndarray) -> np.ndarray:
    """Distinct column per row minimising the largest cost, then the sum among those. cost: (K, S), K <= S.

    The bottleneck value is found by bisection on the sorted distinct costs with a maximum bipartite
    matching (Hopcroft-Karp) on the edges at or below it; the tie-break is a linear assignment on those
    edges. Infinite costs are edges of last resort.
    """
    k, s = cost.shape
    finite = np.isfinite(cost)
    vals = np.unique(cost[finite])

    def perfect(threshold):
        graph = csr_matrix((cost <= threshold).astype(np.int8))
        return np.all(maximum_bipartite_matching(graph, perm_type="column") >= 0)

    if vals.size == 0 or not perfect(vals[-1]):
        big = (np.max(vals) + 1.0) * (k + 1) if vals.size else 1.0
        rows, cols = linear_sum_assignment(np.where(finite, cost, big))
        out = np.empty(k, dtype=int)
        out[rows] = cols
        return out
    lo, hi = 0, vals.size - 1  # invariant: perfect(vals[hi]) holds
    while lo < hi:
        mid = (lo + hi) // 2
        if perfect(vals[mid]):
            hi = mid
        else:
            lo = mid + 1
    threshold = vals[hi]
    rows, cols = linear_sum_assignment(np.where(cost <= threshold, cost, np.inf))
    out = np.empty(k, dtype=int)
    out[rows] = cols
    return out


def single_rates(band: BandSpec, budget_w) -> np.ndarray:
    """(K, S) rate of each client on each subchannel alone, with its whole budget on it."""
    return subchannel_rate_bps(band.bandwidth_hz[None, :], np.asarray(budget_w, dtype=float)[:, None],
                               band.gain, band.noise_psd_w_per_hz)


def initial_matching(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, budget_s, budget_f):
    """One subchannel per client per band (s-band matched against the best f-band rate, then f against s)."""
    k = band_s.num_clients
    cs, cf = single_rates(band_s, budget_s), single_rates(band_f, budget_f)
    f_guess = _transfer(terms.f_bits, cf.max(axis=1))
    match_s = bottleneck_matching(terms.base_s[:, None] + _transfer(terms.s_bits, cs) + f_guess[:, None])
    s_time = _transfer(terms.s_bits, cs[np.arange(k), match_s])
    match_f = bottleneck_matching(terms.base_s[:, None] + s_time[:, None] + _transfer(terms.f_bits, cf))
    assign_s = np.full(band_s.num_subchannels, -1, dtype=int)
    assign_f = np.full(band_f.num_subchannels, -1, dtype=int)
    assign_s[match_s] = np.arange(k)
    assign_f[match_f] = np.arange(k)
    return assign_s, assign_f


# --------------------------------------------------------------------------------------------
# Helpers on one band
# --------------------------------------------------------------------------------------------

def _wf_rates(gain, bw, n0, budget):
    """Water-filling rate of each row (rows are candidate subchannel sets; zero gain = not in the set)."""
    p = water_filling_power_w_batched(gain, bw, n0, budget)
    return subchannel_rate_bps(bw, p, gain, n0).sum(axis=1)


def band_rates(band: BandSpec, assign, budget_w) -> np.ndarray:
    pb = PackedBand(band, assign)
    return pb.rates(pb.water_fill(budget_w))


class _BandState:
    """Mutable per-band view for the greedy: each client's subchannel list, its rate, free subchannels."""

    def __init__(self, band: BandSpec, assign, budget, bits):
        self.band, self.bits = band, bits
        self.assign = np.array(assign, dtype=int)
        self.budget = np.asarray(budget, dtype=float)
        self.sets = [list(np.flatnonzero(self.assign == c)) for c in range(band.num_clients)]
        self.rate = band_rates(band, self.assign, self.budget)

    def free(self) -> np.ndarray:
        return np.flatnonzero(self.assign < 0)

    def candidate_rates(self, client: int, free: np.ndarray) -> np.ndarray:
        """Rate of ``client`` after adding each free subchannel (one water-filling batch)."""
        cur = np.asarray(self.sets[client], dtype=int)
        g = self.band.gain[client]
        n = free.size
        gain = np.concatenate([np.broadcast_to(g[cur], (n, cur.size)), g[free][:, None]], axis=1)
        bw = np.concatenate([np.broadcast_to(self.band.bandwidth_hz[cur], (n, cur.size)),
                             self.band.bandwidth_hz[free][:, None]], axis=1)
        return _wf_rates(gain, bw, self.band.noise_psd_w_per_hz, np.full(n, self.budget[client]))

    def give(self, client: int, sub: int, new_rate: float):
        self.assign[sub] = client
        self.sets[client].append(int(sub))
        self.rate[client] = new_rate


# --------------------------------------------------------------------------------------------
# Greedy
# --------------------------------------------------------------------------------------------

def greedy_allocation(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, budget_s, budget_f,
                      start=None):
    """Initial matching, then every remaining subchannel to the current bottleneck (see module doc).

    ``start``: optional (assign_s, assign_f) in which every client already has >= 1 subchannel per band;
    only its unassigned subchannels are handed out.
    Returns (assign_s, assign_f), with every subchannel of both bands assigned.
    """
    if start is None:
        start = initial_matching(band_s, band_f, terms, budget_s, budget_f)
    st = [_BandState(band_s, start[0], budget_s, terms.s_bits),
          _BandState(band_f, start[1], budget_f, terms.f_bits)]
    times = terms.client_times(st[0].rate, st[1].rate)
    while True:
        frees = [b.free() for b in st]
        if frees[0].size == 0 and frees[1].size == 0:
            break
        placed = False
        for client in np.argsort(-times, kind="stable"):
            best = (0.0, None, None, None)  # (gain in time, band, subchannel, new rate)
            for bi, (b, free) in enumerate(zip(st, frees)):
                if free.size == 0 or b.bits == 0:
                    continue
                new = b.candidate_rates(int(client), free)
                with np.errstate(invalid="ignore"):  # inf - inf: a dead client stays dead, no gain
                    cut = np.nan_to_num(_transfer(b.bits, b.rate[client]) - _transfer(b.bits, new), nan=0.0)
                j = int(np.argmax(cut))
                if cut[j] > best[0]:
                    best = (float(cut[j]), bi, int(free[j]), float(new[j]))
            if best[1] is not None:
                st[best[1]].give(int(client), best[2], best[3])
                times[client] = terms.base_s[client] + _transfer(terms.s_bits, st[0].rate[client]) \
                    + _transfer(terms.f_bits, st[1].rate[client])
                placed = True
                break
        if not placed:
            # No client gains from any free subchannel (all deep-faded, or nothing to send): hand each
            # to the client with the strongest gain on it, which cannot hurt anybody.
            for b, free in zip(st, frees):
                for sub in free:
                    b.assign[sub] = int(np.argmax(b.band.gain[:, sub]))
            break
    return st[0].assign.copy(), st[1].assign.copy()


# --------------------------------------------------------------------------------------------
# Local search: moves and swaps that cut the bottleneck
# --------------------------------------------------------------------------------------------

def _max_excluding(times: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max_k times[k] over k not in {a_c, b_c}, for each candidate c (-inf when nothing is left)."""
    top = np.argsort(-times, kind="stable")[:3]
    out = np.full(a.shape, -np.inf)
    for t in top[::-1]:
        ok = (a != t) & (b != t)
        out = np.where(ok, times[t], out)
    return out


class _RowBatch:
    """Candidate subchannel sets (rows, any widths) water-filled in one call: the ofdma functions cost
    mostly per call, so a local-search step evaluates every candidate of both bands at once."""

    def __init__(self, n0: float):
        self.n0 = n0
        self.blocks = []

    def add(self, gain, bw, budget) -> int:
        gain = np.asarray(gain, dtype=float)
        self.blocks.append((gain, np.asarray(bw, dtype=float), np.broadcast_to(budget, (gain.shape[0],))))
        return len(self.blocks) - 1

    def run(self) -> list:
        """Rates of every queued row, per block. Blocks of similar width share one call; a block much
        wider than the others gets its own, so narrow rows are not padded to the widest set."""
        out = [None] * len(self.blocks)
        order = sorted(range(len(self.blocks)), key=lambda b: self.blocks[b][0].shape[1])
        groups, current = [], []
        for b in order:
            width = self.blocks[b][0].shape[1]
            if current and width > 2 * self.blocks[current[0]][0].shape[1] + 4:
                groups.append(current)
                current = []
            current.append(b)
        if current:
            groups.append(current)
        for group in groups:
            width = max(self.blocks[b][0].shape[1] for b in group)
            rows = sum(self.blocks[b][0].shape[0] for b in group)
            gain = np.zeros((rows, width))
            bw = np.ones((rows, width))
            budget = np.empty(rows)
            r0 = 0
            for b in group:
                g, w, p = self.blocks[b]
                gain[r0:r0 + g.shape[0], :g.shape[1]] = g
                bw[r0:r0 + g.shape[0], :g.shape[1]] = w
                budget[r0:r0 + g.shape[0]] = p
                r0 += g.shape[0]
            rates = _wf_rates(gain, bw, self.n0, budget) if rows else np.empty(0)
            r0 = 0
            for b in group:
                n = self.blocks[b][0].shape[0]
                out[b] = rates[r0:r0 + n]
                r0 += n
        return out


def _band_candidates(pb: PackedBand, budget, client: int, swaps: bool, batch: _RowBatch) -> list:
    """Queue the moves (or swaps) on one band that involve ``client``; returns pending descriptions.

    A move (kind 0) gives subchannel i (whose owner keeps >= 1, or which is unassigned) to ``client``;
    a swap (kind 1) exchanges one of the client's subchannels (i2) with another client's (i); a set
    exchange (kind 2, offered with the swaps) trades the client's whole set with client i's. Each
    pending entry is (kind, i, i2, owner, handle of the client's new rates, handle of the owner's).
    """
    band = pb.band
    assign = pb.assign
    counts = np.bincount(assign[assign >= 0], minlength=band.num_clients)
    slot = np.full(band.num_subchannels, -1, dtype=int)
    slot[pb.idx[pb.valid]] = np.nonzero(pb.valid)[1]
    mine = pb.idx[client][pb.valid[client]]
    g_k = band.gain[client]
    bw_all = band.bandwidth_hz
    pending = []
    if not swaps:
        cand = np.flatnonzero((assign != client) & ((assign < 0) | (counts[np.maximum(assign, 0)] >= 2)))
        if cand.size:
            n = cand.size
            gain = np.concatenate([np.broadcast_to(g_k[mine], (n, mine.size)), g_k[cand][:, None]], axis=1)
            bw = np.concatenate([np.broadcast_to(bw_all[mine], (n, mine.size)), bw_all[cand][:, None]], axis=1)
            hk = batch.add(gain, bw, budget[client])
            owner = assign[cand]
            own = np.maximum(owner, 0)
            width = max(1, int(counts[own].max()))  # rows are left-aligned: trim the padding
            g_j = pb.gain[own, :width].copy()
            rows = np.flatnonzero(owner >= 0)
            g_j[rows, slot[cand[rows]]] = 0.0
            hj = batch.add(g_j, pb.bw[own, :width], budget[own])
            pending.append((0, cand, np.full(n, -1), owner, hk, hj))
        return pending
    # Set exchanges: the client and another client trade their whole sets on this band.
    others_c = np.array([c for c in range(band.num_clients) if c != client and counts[c] > 0], dtype=int)
    if others_c.size and mine.size:
        idx_o, valid_o = pb.idx[others_c], pb.valid[others_c]
        safe = np.where(valid_o, idx_o, 0)
        gk = np.where(valid_o, g_k[safe], 0.0)
        bk = np.where(valid_o, bw_all[safe], 1.0)
        hk = batch.add(gk, bk, budget[client])
        gj = band.gain[others_c][:, mine]
        bj = np.broadcast_to(bw_all[mine], gj.shape)
        hj = batch.add(gj, bj, budget[others_c])
        pending.append((2, others_c, np.full(others_c.size, -1), others_c, hk, hj))
    others = np.flatnonzero((assign >= 0) & (assign != client))
    if mine.size > SWAP_WIDTH:
        # A client with many subchannels only offers its weakest few (a work limit: for a given incoming
        # subchannel, giving away the weakest is what helps the client itself most).
        mine = mine[np.argsort(g_k[mine], kind="stable")[:SWAP_WIDTH]]
    if others.size and mine.size:
        i2 = np.repeat(mine, others.size)
        i = np.tile(others, mine.size)
        n = i.size
        pos_k = np.repeat(np.arange(mine.size), others.size)
        held = pb.idx[client][pb.valid[client]]
        where = np.searchsorted(held, mine)  # held is ascending (pack_assignment)
        pos_k = where[pos_k]
        gk = np.broadcast_to(g_k[held], (n, held.size)).copy()
        bk = np.broadcast_to(bw_all[held], (n, held.size)).copy()
        gk[np.arange(n), pos_k] = g_k[i]
        bk[np.arange(n), pos_k] = bw_all[i]
        hk = batch.add(gk, bk, budget[client])
        own = assign[i]
        width = max(1, int(counts[own].max()))
        gj = pb.gain[own, :width].copy()
        bj = pb.bw[own, :width].copy()
        gj[np.arange(n), slot[i]] = band.gain[own, i2]
        bj[np.arange(n), slot[i]] = bw_all[i2]
        hj = batch.add(gj, bj, budget[own])
        pending.append((1, i, i2, own, hk, hj))
    return pending


def local_search(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, budget_s, budget_f,
                 assign_s, assign_f, max_moves: int = 1000):
    """Best-improvement moves/swaps around the bottleneck client until none cuts max_k T_k.

    Moves are tried first (one candidate per subchannel) and swaps only when no move helps. Every
    accepted step strictly lowers max_k T_k (by a relative 1e-12 at least), so it terminates;
    ``max_moves`` bounds the work on very large instances.
    Returns (assign_s, assign_f, steps made, final max_k T_k under the budgets).
    """
    assigns = [np.array(assign_s, dtype=int), np.array(assign_f, dtype=int)]
    bands = (band_s, band_f)
    budgets = (np.asarray(budget_s, dtype=float), np.asarray(budget_f, dtype=float))
    bits = (terms.s_bits, terms.f_bits)
    n0 = band_s.noise_psd_w_per_hz
    if band_f.noise_psd_w_per_hz != n0:
        raise ValueError("local_search: both bands must share one noise PSD (as in a Problem)")
    moves = 0
    current = np.inf
    while True:
        packed = [PackedBand(b, a) for b, a in zip(bands, assigns)]
        batch = _RowBatch(n0)
        for p, bud in zip(packed, budgets):
            batch.add(p.gain, p.bw, bud)
        rates = batch.run()
        transfer = [_transfer(bits[0], rates[0]), _transfer(bits[1], rates[1])]
        times = terms.base_s + transfer[0] + transfer[1]
        current = float(np.max(times))
        if not np.isfinite(current) or moves >= max_moves:
            break
        client = int(np.argmax(times))
        best = (current * (1.0 - IMPROVEMENT_RTOL), None)
        for want_swaps in (False, True):
            batch = _RowBatch(n0)
            pend = [(bi, item) for bi in range(2) if bits[bi] != 0
                    for item in _band_candidates(packed[bi], budgets[bi], client, want_swaps, batch)]
            results = batch.run()
            for bi, (kind, i, i2, owner, hk, hj) in pend:
                other = times - transfer[bi]
                has_owner = owner >= 0
                own = np.maximum(owner, 0)
                tk = other[client] + _transfer(bits[bi], results[hk])
                tj = np.where(has_owner, other[own] + _transfer(bits[bi], results[hj]), -np.inf)
                rest = _max_excluding(times, np.full(i.size, client), np.where(has_owner, own, client))
                new_max = np.maximum(np.maximum(tk, tj), rest)
                c = int(np.argmin(new_max))
                if new_max[c] < best[0]:
                    best = (float(new_max[c]), (bi, kind, int(i[c]), int(i2[c])))
            if best[1] is not None:
                break
        if best[1] is None:
            break
        bi, kind, i, i2 = best[1]
        a = assigns[bi]
        if kind == 0:
            a[i] = client
        elif kind == 1:
            a[i2], a[i] = a[i], client
        else:  # set exchange with client i
            mine = a == client
            a[a == i] = client
            a[mine] = i
        moves += 1
    return assigns[0], assigns[1], moves, current


# --------------------------------------------------------------------------------------------
# Under a binding total cap: save power at the current deadlines
# --------------------------------------------------------------------------------------------

def _all_moves(pb: PackedBand):
    """Every move of a subchannel i from its owner j (who keeps >= 1) to another client k.

    Returns (k, j, i, rows_k, bw_k, rows_j, bw_j): the receiving and giving clients' new subchannel
    sets as padded rows (gain 0 = not in the set)."""
    band = pb.band
    k_num = band.num_clients
    assign = pb.assign
    counts = np.bincount(assign[assign >= 0], minlength=k_num)
    slot = np.full(band.num_subchannels, -1, dtype=int)
    slot[pb.idx[pb.valid]] = np.nonzero(pb.valid)[1]
    movable = np.flatnonzero((assign >= 0) & (counts[np.maximum(assign, 0)] >= 2))
    i = np.repeat(movable, k_num)
    k = np.tile(np.arange(k_num), movable.size)
    keep = assign[i] != k
    i, k = i[keep], k[keep]
    j = assign[i]
    n = i.size
    gk = np.concatenate([pb.gain[k], band.gain[k, i][:, None]], axis=1)
    bk = np.concatenate([pb.bw[k], band.bandwidth_hz[i][:, None]], axis=1)
    gj = pb.gain[j].copy()
    gj[np.arange(n), slot[i]] = 0.0
    return k, j, i, np.full(n, -1), gk, bk, gj, pb.bw[j]


def _all_swaps(pb: PackedBand):
    """Every exchange of subchannels i (owner j) and i2 (owner k != j), each unordered pair once."""
    band = pb.band
    assign = pb.assign
    slot = np.full(band.num_subchannels, -1, dtype=int)
    slot[pb.idx[pb.valid]] = np.nonzero(pb.valid)[1]
    used = np.flatnonzero(assign >= 0)
    a, b = np.triu_indices(used.size, 1)
    i, i2 = used[a], used[b]
    keep = assign[i] != assign[i2]
    i, i2 = i[keep], i2[keep]
    j, k = assign[i], assign[i2]
    n = i.size
    rows = np.arange(n)
    gk, bk = pb.gain[k].copy(), pb.bw[k].copy()
    gk[rows, slot[i2]] = band.gain[k, i]
    bk[rows, slot[i2]] = band.bandwidth_hz[i]
    gj, bj = pb.gain[j].copy(), pb.bw[j].copy()
    gj[rows, slot[i]] = band.gain[j, i2]
    bj[rows, slot[i]] = band.bandwidth_hz[i2]
    return k, j, i, i2, gk, bk, gj, bj


def _least_power(gain, bw, n0, rate, p_max):
    """Least total power per row for ``rate`` (inf where the rate is unreachable or above the cap)."""
    ok = np.isfinite(rate) & (rate >= 0)
    with np.errstate(over="ignore", invalid="ignore"):  # absurd rates overflow to inf/nan: over the cap
        _, total = min_power_for_rate_w_batched(gain, bw, n0, np.where(ok, rate, 0.0))
    return np.where(ok & (total <= p_max * (1 + 1e-9)), total, np.inf)


def power_local_search(band_cap: BandSpec, bits_cap: float, slack_s, assign_cap, band_free=None,
                       bits_free: float = 0.0, budget_free=None, assign_free=None, max_moves: int = 200):
    """Moves and swaps that lower the least total power the capped band needs (the allocation step of
    the alternation under a binding total cap).

    Client k must finish both transfers within ``slack_s[k]`` (= tau - base_k at the current round time
    tau). When ``band_free`` is given (its total cap does not bind), it transmits at ``budget_free``
    (water-filling), taking bits_free / R^free_k, and the capped band gets the rest of the slack;
    otherwise ``slack_s`` is the capped band's own deadline. The objective is sum_k P_k, the least
    powers meeting those deadlines (``min_power_for_rate_w_batched``), with every client within its
    cap. At the optimal tau of the current allocation this sum equals the total cap, so any step that
    lowers it lets the power step shorten the round: the search is exact in sign, not a proxy. Both
    bands' moves count (a free-band subchannel shortens one client's upload and so its deadline on the
    capped band). Moves are tried first, swaps when no move helps; best improvement first.
    Returns (assign_cap, assign_free, steps made, final sum of powers).
    """
    n0 = band_cap.noise_psd_w_per_hz
    slack = np.asarray(slack_s, dtype=float)
    a_cap = np.array(assign_cap, dtype=int)
    a_free = None if band_free is None else np.array(assign_free, dtype=int)
    p_cap = band_cap.p_max_w

    def deadlines(rate_free):
        return slack - _transfer(bits_free, rate_free) if band_free is not None else slack

    def need_rate(deadline):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(deadline > 0, bits_cap / np.where(deadline > 0, deadline, 1.0), np.inf)

    steps = 0
    total = np.inf
    while True:
        pc = PackedBand(band_cap, a_cap)
        r_free = None
        if band_free is not None:
            pf = PackedBand(band_free, a_free)
            r_free = pf.rates(pf.water_fill(budget_free))
        rate = need_rate(deadlines(r_free))
        need = _least_power(pc.gain, pc.bw, n0, rate, p_cap)
        total = float(need.sum())
        if not np.isfinite(total) or steps >= max_moves or bits_cap == 0:
            break
        best = (-IMPROVEMENT_RTOL * total, None)
        for kind in (0, 1):
            gens = [("cap", (_all_moves if kind == 0 else _all_swaps)(pc))]
            if band_free is not None and bits_free > 0:
                gens.append(("free", (_all_moves if kind == 0 else _all_swaps)(pf)))
            for which, (k, j, i, i2, gk, bk, gj, bj) in gens:
                if k.size == 0:
                    continue
                if which == "cap":
                    pk = _least_power(gk, bk, n0, rate[k], p_cap[k])
                    pj = _least_power(gj, bj, n0, rate[j], p_cap[j])
                else:
                    rk = _wf_rates(gk, bk, n0, budget_free[k])
                    rj = _wf_rates(gj, bj, n0, budget_free[j])
                    rate_k = need_rate(slack[k] - _transfer(bits_free, rk))
                    rate_j = need_rate(slack[j] - _transfer(bits_free, rj))
                    pk = _least_power(pc.gain[k], pc.bw[k], n0, rate_k, p_cap[k])
                    pj = _least_power(pc.gain[j], pc.bw[j], n0, rate_j, p_cap[j])
                with np.errstate(invalid="ignore"):
                    delta = np.where(np.isfinite(pk) & np.isfinite(pj), pk + pj - need[k] - need[j], np.inf)
                c = int(np.argmin(delta))
                if delta[c] < best[0]:
                    best = (float(delta[c]), (which, int(k[c]), int(i[c]), int(i2[c])))
            if best[1] is not None:
                break
        if best[1] is None:
            break
        which, k, i, i2 = best[1]
        a = a_cap if which == "cap" else a_free
        if i2 < 0:
            a[i] = k
        else:
            a[i], a[i2] = a[i2], a[i]
        steps += 1
    return a_cap, a_free, steps, total


# --------------------------------------------------------------------------------------------
# Under two binding total caps: trade subchannels at the power step's price
# --------------------------------------------------------------------------------------------

def _pad_rows(blocks, fill: float) -> np.ndarray:
    width = max(b.shape[1] for b in blocks)
    return np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=fill) for b in blocks])


def _priced_values(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, client, gs, bs, gf, bf, tau: float,
                   price: float, guess=None, xtol: float = 1e-7):
    """Per row (client[row] holding the sets gs/bs on s and gf/bf on f): the least
    P^s / cap_s + price P^f / cap_f (P^f / cap_f alone when price is inf) with which the client meets
    the round time ``tau``, its deadline split optimally between its bands; inf when it cannot meet
    tau even at its per-client caps. Returns (values, s-band times): the times are a good start
    (``guess``) for rows of the same clients with slightly different sets. ``xtol``: relative
    tolerance on the split (the value is flat at the optimum, so 1e-7 leaves ~1e-14 on it)."""
    rs, rf = PackedBand.from_rows(band_s, gs, bs), PackedBand.from_rows(band_f, gf, bf)
    full_s, full_f = rs.water_fill(band_s.p_max_w[client]), rf.water_fill(band_f.p_max_w[client])
    solver = _TotalCapSolver(terms, rs, rf, full_s, full_f, True, True, 1e-10, 200)
    solver._t_guess = guess
    deadline = tau - terms.base_s[client]
    lo, hi = solver.ts_min, deadline - solver.tf_min
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lo) & np.isfinite(hi) & (hi >= lo)
    lam = price if np.isfinite(price) else 1e12
    x, _, _, tot_s, tot_f = solver.pareto_rows(lam, np.where(ok, deadline, 2.0), np.where(ok, lo, 1.0),
                                               np.where(ok, hi, 1.0), xtol=xtol)
    if np.isfinite(price):
        value = tot_s / band_s.total_cap_w + price * tot_f / band_f.total_cap_w
    else:
        value = tot_f / band_f.total_cap_w
    return np.where(ok & np.isfinite(value), value, np.inf), x


def price_at(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, assign_s, assign_f, tau: float):
    """(price lambda, feasibility margin) of the allocation at round time ``tau`` under two binding caps
    (margin < 0: a shorter round exists; the power step's optimum has margin 0)."""
    ps, pf = PackedBand(band_s, assign_s), PackedBand(band_f, assign_f)
    solver = _TotalCapSolver(terms, ps, pf, ps.water_fill(band_s.p_max_w), pf.water_fill(band_f.p_max_w),
                             True, True, 1e-10, 200)
    margin, _, _ = solver._margin(tau)
    return solver.price, margin


def priced_sum(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, assign_s, assign_f, tau: float,
               price: float) -> float:
    """Sum over clients of the least priced power meeting ``tau`` (see ``_priced_values``)."""
    ps, pf = PackedBand(band_s, assign_s), PackedBand(band_f, assign_f)
    return float(np.sum(_priced_values(band_s, band_f, terms, np.arange(band_s.num_clients), ps.gain, ps.bw,
                                       pf.gain, pf.bw, tau, price)[0]))


def _priced_moves(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, a, tau: float, price: float):
    """Every move and swap on either band, with the change of the priced sum it makes at (tau, price).

    Returns (priced value of each client now, delta, band, receiving client, i, i2) (i2 = -1 for a
    move), or None when no move or swap exists."""
    bands = (band_s, band_f)
    packed = [PackedBand(b, x) for b, x in zip(bands, a)]
    clients = np.arange(band_s.num_clients)
    now, split = _priced_values(band_s, band_f, terms, clients, packed[0].gain, packed[0].bw, packed[1].gain,
                                packed[1].bw, tau, price)
    rows, moves = [], []
    for bi in (0, 1):
        other = packed[1 - bi]
        for gen in (_all_moves, _all_swaps):
            k, j, i, i2, gk, bk, gj, bj = gen(packed[bi])
            if k.size == 0:
                continue
            for who, g, b in ((k, gk, bk), (j, gj, bj)):
                rows.append((who, g, b, other.gain[who], other.bw[who]) if bi == 0
                            else (who, other.gain[who], other.bw[who], g, b))
            moves.append((np.full(k.size, bi), k, i, i2))
    if not moves:
        return None
    # One batch: per generator, the receiving clients' rows then the giving clients'.
    who = np.concatenate([r[0] for r in rows])
    gs, bs = _pad_rows([r[1] for r in rows], 0.0), _pad_rows([r[2] for r in rows], 1.0)
    gf, bf = _pad_rows([r[3] for r in rows], 0.0), _pad_rows([r[4] for r in rows], 1.0)
    v, _ = _priced_values(band_s, band_f, terms, who, gs, bs, gf, bf, tau, price, guess=split[who])
    sizes = [r[0].size for r in rows]
    parts = np.split(v, np.cumsum(sizes)[:-1])
    v_k, v_j = np.concatenate(parts[0::2]), np.concatenate(parts[1::2])
    k_all = np.concatenate([r[0] for r in rows[0::2]])
    j_all = np.concatenate([r[0] for r in rows[1::2]])
    with np.errstate(invalid="ignore"):
        delta = v_k + v_j - now[k_all] - now[j_all]
    delta = np.where(np.isnan(delta), np.inf, delta)
    return (now, delta, np.concatenate([m[0] for m in moves]), k_all, np.concatenate([m[2] for m in moves]),
            np.concatenate([m[3] for m in moves]))


def _apply(a, bi: int, k: int, i: int, i2: int):
    out = [a[0].copy(), a[1].copy()]
    t = out[bi]
    if i2 < 0:
        t[i] = k
    else:
        t[i], t[i2] = t[i2], t[i]
    return out


def priced_descent(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, assign_s, assign_f, tau: float,
                   price: float, max_moves: int = 200):
    """Best-improvement moves and swaps on the priced sum at a fixed (tau, price), without power steps.

    Returns (assign_s, assign_f, priced sum at the end). At the power step's optimum of an allocation
    the priced sum is 1 + price (both caps met exactly); an allocation that meets tau with room to
    spare has a priced sum below that (weak duality), so a value not below it rules a candidate out,
    and a value below it is worth an exact check."""
    a = [np.array(assign_s, dtype=int), np.array(assign_f, dtype=int)]
    total = np.inf
    for _ in range(max_moves + 1):
        found = _priced_moves(band_s, band_f, terms, a, tau, price)
        if found is None:
            break
        now, delta, band_of, k_all, sub_i, sub_i2 = found
        total = float(np.sum(now))
        if not np.isfinite(total) and not np.any(np.isneginf(delta)):
            break
        c = int(np.argmin(delta))
        if not delta[c] < -1e-9 * (abs(total) if np.isfinite(total) else 1.0):
            break
        a = _apply(a, int(band_of[c]), int(k_all[c]), int(sub_i[c]), int(sub_i2[c]))
    return a[0], a[1], total


def price_local_search(band_s: BandSpec, band_f: BandSpec, terms: RoundTerms, assign_s, assign_f,
                       power: PowerResult, max_moves: int = 200, verify: int = 3):
    """Moves and swaps on either band under two binding total caps, each client re-splitting its time.

    At the current round time tau (the power step's optimum) the allocation meets both caps exactly:
    at the price lambda of the power step, the Pareto point of the two power sums is (cap_s, cap_f),
    and the priced sum P^s / cap_s + lambda P^f / cap_f is 1 + lambda. A move or swap changes two
    clients' subchannel sets; the screen is the change of the priced sum of those two clients, each
    re-optimising how it splits its deadline between the bands (``power_local_search`` keeps that
    split fixed and looks at one band at a time, which misses trades that pay only once a client
    shifts time from one band to the other). A move that shortens the round must lower the priced
    sum (weak duality: it meets tau with both sums below their caps), so the screen never discards
    an improving move; it does not prove one either, so the ``verify`` most promising candidates are
    checked exactly: the new allocation's feasibility margin at tau (< 0: a shorter round exists),
    then the exact power step; a candidate is accepted only when the round time drops. Best screened
    candidate first; stops when no verified candidate improves or after ``max_moves`` steps.
    Returns (assign_s, assign_f, PowerResult of the result, steps made).
    """
    a = [np.array(assign_s, dtype=int), np.array(assign_f, dtype=int)]
    pr = power
    steps = 0
    while steps < max_moves:
        tau = pr.max_time_s
        if not np.isfinite(tau):
            break
        price, margin = price_at(band_s, band_f, terms, a[0], a[1], tau)
        if price is None or not np.isfinite(margin):
            break
        found = _priced_moves(band_s, band_f, terms, a, tau, price)
        if found is None:
            break
        now, delta, band_of, k_all, sub_i, sub_i2 = found
        threshold = -1e-9 * float(np.sum(now[np.isfinite(now)]))
        accepted = False
        for c in np.argsort(delta, kind="stable")[:verify]:
            if not delta[c] < threshold:
                break
            trial = _apply(a, int(band_of[c]), int(k_all[c]), int(sub_i[c]), int(sub_i2[c]))
            if not price_at(band_s, band_f, terms, trial[0], trial[1], tau)[1] < -1e-10:
                continue
            new = optimal_power(band_s, band_f, terms, trial[0], trial[1])
            if new.max_time_s < tau * (1 - 1e-12):
                a, pr = trial, new
                steps += 1
                accepted = True
                break
        if not accepted:
            break
    return a[0], a[1], pr, steps
