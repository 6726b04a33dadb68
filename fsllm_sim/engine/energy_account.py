"""The clients' energy in a simulation (docs/energy.md): of every trace row, of every round, of the whole run.

Computed once, vectorised, when the outputs are written (the event loop records times only; a run with batteries
also follows each client's energy online, :class:`fsllm_sim.engine.processes.Batteries`, by the same rules):

* a trace row of client k costs its phase power (:func:`fsllm_sim.energy.phase_power_w`) times its length:
  kappa_k f_k^3 computing (f_k: its clock in the round's allocation), its total power on the band sending
  (uplink: the s-band, adapter upload: the f-band; stalls included, the transmitter stays on), p_rx receiving
  (downlink, adapter_download), p_idle at the main server (server_wait, server); marks (drop, abort, cancel,
  stall, battery) and the federated server's rows cost 0. A row that runs past the instant its client left the
  round (a request served to its end after a drop) counts up to that instant only;
* the broadcast costs each client that receives it p_rx times its own reception;
* a client taking part in a round (an attempt) spends p_idle in the rest of its time in it: from the round's start
  to its end (aggregation and broadcast included) or to the instant it left (drop, cancel, battery), less its
  own rows and its reception of the broadcast.

On a static channel a round's total is the closed form's :class:`fsllm_sim.energy.EnergyBreakdown` total.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..energy import COMPUTE_PHASES, RECEIVE_PHASES, TRANSMIT_PHASES, compute_power_w
from .trace import FS_CLIENT, MARKS

# power source of a trace phase: 0 compute, 1 s-band, 2 f-band, 3 receive, 4 idle, 5 nothing
_COMPUTE, _BAND_S, _BAND_F, _RECEIVE, _IDLE, _NONE = range(6)


def _category(phase: str) -> int:
    if phase in COMPUTE_PHASES:
        return _COMPUTE
    band = TRANSMIT_PHASES.get(phase)
    if band is not None:
        return _BAND_S if band == "s" else _BAND_F
    if phase in RECEIVE_PHASES:
        return _RECEIVE
    if phase in MARKS or phase == "aggregation":
        return _NONE
    return _IDLE  # the client's own time at the main server (server_wait, server)


def band_powers_w(assign, power_w, num_clients: int) -> np.ndarray:
    """Each client's total transmit power on a band: the sum of its subchannels' powers (sl: row k, client k's
    powers during its turn)."""
    power = np.asarray(power_w, dtype=float)
    if power.ndim == 2:
        return power.sum(axis=1)
    a = np.asarray(assign, dtype=int)
    used = a >= 0
    return np.bincount(a[used], weights=power[used], minlength=num_clients).astype(float)[:num_clients]


def allocation_powers(alloc, energy, num_clients: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(compute kappa f^3, s-band total, f-band total) per client [W] under ``alloc`` (clock None or NaN: f_max)."""
    f = energy.frequency_or_max(alloc.frequency_hz)
    return (compute_power_w(energy.kappa, f), band_powers_w(alloc.assign_s, alloc.power_s_w, num_clients),
            band_powers_w(alloc.assign_f, alloc.power_f_w, num_clients))


@dataclass
class EnergyAccount:
    """What :func:`account` computed. ``records``: the round records (kept and discarded attempts) in time order;
    ``round_client_j[i]``: client energy of ``records[i]`` per problem client; ``client_j``: over the run."""

    row_j: np.ndarray
    records: list
    round_client_j: np.ndarray  # (len(records), K)
    client_j: np.ndarray
    client_ids: np.ndarray

    def of_record(self, record) -> np.ndarray:
        return self.round_client_j[self._index[id(record)]]

    def __post_init__(self):
        self._index = {id(r): i for i, r in enumerate(self.records)}

    def round_j(self, record) -> float:
        return float(np.sum(self.of_record(record)))

    def worst_client_round_j(self, record) -> float:
        e = self.of_record(record)
        return float(np.max(e)) if e.size else 0.0


def account(rows, records, problem, battery_out_s=None) -> EnergyAccount:
    """Energy of every trace row (aligned with ``rows``), of every round and client, and per client over the run;
    ``battery_out_s`` (scenario client id -> when its battery ran out) ends a reception of the broadcast there."""
    k = problem.num_clients
    ids = np.asarray(problem.client_ids if problem.client_ids is not None else np.arange(k), dtype=int)
    recs = sorted(records, key=lambda r: (r.start_s, r.round, r.attempt))
    n = len(rows)
    en = problem.energy
    per_round = np.zeros((len(recs), k))
    if en is None or not recs:
        return EnergyAccount(np.zeros(n), recs, per_round, per_round.sum(axis=0), ids)
    rx, idle = en.rx_power_w, en.idle_power_w
    pos = np.full(int(ids.max()) + 2, -1, dtype=int)  # scenario client id -> problem index; FS_CLIENT -> -1
    pos[ids] = np.arange(k)
    empty_at = np.full(k, math.inf)
    for c, t in (battery_out_s or {}).items():
        empty_at[pos[c]] = t

    # the allocation of each record, each distinct one once (a static policy: one for the whole run)
    alloc_of, powers = {}, []
    rec_alloc = np.empty(len(recs), dtype=int)
    for i, r in enumerate(recs):
        key = id(r.allocation)
        if key not in alloc_of:
            alloc_of[key] = len(powers)
            powers.append(allocation_powers(r.allocation, en, k))
        rec_alloc[i] = alloc_of[key]
    table = np.stack([np.stack(p) for p in powers])  # (allocations, 3, K)
    rec_start = np.array([r.start_s for r in recs])
    rec_end = np.array([r.end_s for r in recs])
    rec_round = np.array([r.round for r in recs])
    # the instant each (record, client) left its round (inf: it stayed to the end)
    left = {}
    for i, r in enumerate(recs):
        for c, t in r.left_s.items():
            left[i * k + int(pos[c])] = t
    left_keys = np.array(sorted(left), dtype=np.int64)
    left_at = np.array([left[x] for x in left_keys.tolist()], dtype=float)

    row_j = np.zeros(n)
    if n:
        rnd, _, client, phase, start, end, _, _ = zip(*rows)
        rnd = np.asarray(rnd, dtype=int)
        start = np.asarray(start, dtype=float)
        end = np.asarray(end, dtype=float)
        cats = {ph: _category(ph) for ph in set(phase)}
        cat = np.array([cats[ph] for ph in phase], dtype=int)
        client = np.asarray(client, dtype=int)
        kk = np.where(client == FS_CLIENT, -1, pos[np.clip(client, -1, None)])
        # each row's attempt: the last of its round started by the row's start
        lo = np.searchsorted(rec_round, rnd, side="left")
        hi = np.searchsorted(rec_round, rnd, side="right") - 1
        ri = np.clip(np.searchsorted(rec_start, start, side="right") - 1, lo, hi)
        ok = (kk >= 0) & (cat != _NONE) & (hi >= lo)
        ri, kk_ok, cat_ok = ri[ok], kk[ok], cat[ok]
        a = rec_alloc[ri]
        p = np.zeros(ri.size)
        for c_code, source in ((_COMPUTE, 0), (_BAND_S, 1), (_BAND_F, 2)):
            m = cat_ok == c_code
            p[m] = table[a[m], source, kk_ok[m]]
        m = cat_ok == _RECEIVE
        p[m] = rx[kk_ok[m]]
        m = cat_ok == _IDLE
        p[m] = idle[kk_ok[m]]
        stop = end[ok]
        if left:
            keys = ri.astype(np.int64) * k + kk_ok
            j = np.minimum(np.searchsorted(left_keys, keys), left_keys.size - 1)
            stop = np.minimum(stop, np.where(left_keys[j] == keys, left_at[j], math.inf))
        dur = np.maximum(0.0, stop - start[ok])
        row_j[ok] = p * dur
        np.add.at(per_round, (ri, kk_ok), row_j[ok])
        covered = np.zeros((len(recs), k))
        np.add.at(covered, (ri, kk_ok), dur)
    else:
        covered = np.zeros((len(recs), k))

    for i, r in enumerate(recs):
        # the broadcast: p_rx for each receiver's own reception
        b_end = np.full(k, -math.inf)
        b_start = None
        if r.broadcast is not None:
            b_start, receivers, ends = r.broadcast
            who = np.arange(k) if receivers is None else np.asarray(receivers, dtype=int)
            b_end[who] = np.minimum(ends if np.ndim(ends) else float(ends), empty_at[who])
            per_round[i, who] += rx[who] * np.maximum(0.0, b_end[who] - b_start)
        # idle: the rest of a participant's time in the round
        selected = pos[np.asarray(r.selected, dtype=int)] if r.selected else np.zeros(0, dtype=int)
        if selected.size and np.any(idle[selected] > 0):
            stop = np.array([left.get(i * k + int(j), math.inf) for j in selected])
            stop = np.minimum(stop, rec_end[i])
            busy = covered[i, selected]
            if b_start is not None:
                busy = busy + np.maximum(0.0, np.minimum(b_end[selected], stop) - b_start)
            per_round[i, selected] += idle[selected] * np.maximum(0.0, stop - rec_start[i] - busy)
    return EnergyAccount(row_j, recs, per_round, per_round.sum(axis=0), ids)
