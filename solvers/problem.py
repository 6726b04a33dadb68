"""The joint allocation problem of spec section 5 as plain arrays, its solution, and its objective.

``Problem`` holds everything a solver may look at; ``evaluate`` scores any allocation with the
objective of spec section 4 (via :mod:`fsllm_sim.delay`), so every method is judged by one function.
Clients are indexed k = 0..K-1; an assignment is a vector over subchannels holding the client index
that uses it, or -1 when it is unused (this encodes OFDMA exclusivity by construction).

``protocol`` (docs/protocols.md) changes what an allocation is and how it is scored:

* ``sfl`` (default): the above, scored by :func:`fsllm_sim.delay.delay_breakdown`.
* ``sl``: one client is active at a time and holds every subchannel of both bands during its turn, so
  no subchannel has a fixed owner: ``assign_s`` / ``assign_f`` hold ``ACTIVE_CLIENT`` everywhere and the
  powers are K x M and K x N matrices (row k: client k's power on each subchannel during its turn, at most
  min(P^max_k, P_total) per band). Scored by :func:`fsllm_sim.delay.sl_delay_breakdown`.
* ``fl``: the profile is the unsplit model's (one split, J) and nothing is sent on the s-band; its
  allocation is ignored (not checked; solutions report it empty). Scored by
  :func:`fsllm_sim.delay.fl_delay_breakdown`. ``client_ids`` maps the problem's clients to the scenario's
  when devices without the memory for the whole model were left out.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from channel_models.ergodic import ergodic_spectral_efficiency_rician
from channel_models.ofdma import client_rates_bps
from fsllm_sim.convergence import ConvergenceModel
from fsllm_sim.delay import PROTOCOLS, DelayBreakdown, delay_breakdown, fl_delay_breakdown, sl_delay_breakdown
from fsllm_sim.energy import DeviceEnergy
from fsllm_sim.errors import SolverError
from fsllm_sim.profiles import SplitRankProfile  # re-exported: solvers.problem.SplitRankProfile

# Relative slack on power constraints, so an allocation that meets a cap to rounding is accepted.
POWER_TOLERANCE = 1e-9

RATE_MODELS = ("mean-gain", "ergodic")

# What a solver minimises (docs/energy.md): N(r) T_round; N(r) (T_round + lambda E_round); N(r) T_round with each
# client's energy of a round within its budget.
OBJECTIVES = ("delay", "weighted", "delay-under-energy")

# sl: the subchannel belongs to whichever client is active (every subchannel, every turn).
ACTIVE_CLIENT = -2


def _vector(name: str, value, length: int, positive: bool = True) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (length,)).copy() if np.ndim(value) == 0 else np.asarray(value, dtype=float)
    if arr.shape != (length,):
        raise SolverError(f"{name} has shape {arr.shape}, expected ({length},)")
    if np.any(~np.isfinite(arr)) or (np.any(arr <= 0) if positive else np.any(arr < 0)):
        raise SolverError(f"{name} must be finite and {'> 0' if positive else '>= 0'}")
    return arr


@dataclass(frozen=True)
class Problem:
    """One instance of the optimisation problem (spec section 5), all in SI units.

    ``server_flops_per_s`` is the main-server speed each client sees after sharing (scalar or length K);
    ``p_max_w`` is the per-client cap, applied on each band separately; ``p_total_s_w`` / ``p_total_f_w``
    are optional caps on the sum of all clients' powers on a band.

    ``rate_model`` chooses the per-subchannel rate of the objective (:meth:`rates`, hence :func:`evaluate`):
    ``"mean-gain"``: B log2(1 + p g / (N0 B)) at the gains given (static: the large-scale gain, E|h|^2 = 1,
    optimistic under fading by Jensen); ``"ergodic"``: B E[log2(1 + p g |h|^2 / (N0 B))] over Rayleigh /
    Rician fading with per-client K-factor ``rician_k_linear`` (length K, 0 = Rayleigh; None = all Rayleigh),
    ``g`` then being the large-scale gain. What is fading-aware with ``"ergodic"``: every score (evaluate,
    hence exact's and the baselines' choice among the candidates they score, and bcd's final choice among
    its (split, rank) candidates, see :func:`solvers.bcd.solve_bcd`). What is not: the subchannel greedy,
    the local search and the water-filling power control still work on mean-gain rates (the allocation of
    each candidate is planned for mean gains, then scored ergodically); lower bounds computed on mean-gain
    rates (bcd's, the relaxation's) stay valid lower bounds, since ergodic rates are never above them.

    ``protocol`` (sfl | sl | fl, see the module docstring) chooses the allocation's form and the closed form;
    ``client_ids`` (length K, default 0..K-1) are the scenario's indices of the problem's clients; ``notes``
    are one-line facts about how the problem was built (fl: the devices left out), carried into every
    :class:`Solution` that ``evaluate`` or ``solvers.solve`` returns.
    """

    gain_s: np.ndarray
    gain_f: np.ndarray
    bandwidth_s_hz: np.ndarray
    bandwidth_f_hz: np.ndarray
    noise_psd_w_per_hz: float
    p_max_w: np.ndarray
    local_iterations: int
    device_flops_per_s: np.ndarray
    server_flops_per_s: np.ndarray
    downlink_rate_bps: np.ndarray
    broadcast_rate_bps: float
    aggregation_time_s: float
    profile: SplitRankProfile
    convergence: ConvergenceModel
    p_total_s_w: Optional[float] = None
    p_total_f_w: Optional[float] = None
    min_split: int = 1
    client_memory_limit_bytes: Optional[np.ndarray] = None
    rate_model: str = "mean-gain"
    rician_k_linear: Optional[np.ndarray] = None
    protocol: str = "sfl"
    client_ids: Optional[np.ndarray] = None
    notes: tuple = ()
    energy: Optional[DeviceEnergy] = None
    objective: str = "delay"
    weight_s_per_j: float = 0.0
    budget_j: Optional[np.ndarray] = None
    per_client_split: bool = False

    def __post_init__(self):
        gain_s = np.asarray(self.gain_s, dtype=float)
        gain_f = np.asarray(self.gain_f, dtype=float)
        if gain_s.ndim != 2 or gain_f.ndim != 2 or gain_s.shape[0] != gain_f.shape[0]:
            raise SolverError(f"gain_s {gain_s.shape} and gain_f {gain_f.shape} must be K×M and K×N with the same K")
        k, m = gain_s.shape
        n = gain_f.shape[1]
        if k < 1:
            raise SolverError("the problem needs at least one client")
        if self.protocol not in PROTOCOLS:
            raise SolverError(f"protocol={self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        # sl shares every subchannel in time; fl sends nothing on the s-band
        if k > m and self.protocol == "sfl":
            raise SolverError(f"K={k} clients but only M={m} s-band subchannels: each client needs at least one")
        if k > n and self.protocol != "sl":
            raise SolverError(f"K={k} clients but only N={n} f-band subchannels: each client needs at least one")
        if self.protocol == "fl" and self.profile.splits.size != 1:
            raise SolverError("protocol fl needs the unsplit profile (SplitRankProfile.unsplit(): one split, J), "
                              f"got splits {self.profile.splits.tolist()}")
        ids = np.arange(k) if self.client_ids is None else np.asarray(self.client_ids, dtype=int)
        if ids.shape != (k,) or np.any(ids < 0) or np.unique(ids).size != k:
            raise SolverError(f"client_ids must hold {k} distinct indices >= 0")
        object.__setattr__(self, "client_ids", ids)
        object.__setattr__(self, "notes", tuple(str(x) for x in self.notes))
        if np.any(~np.isfinite(gain_s)) or np.any(gain_s < 0) or np.any(~np.isfinite(gain_f)) or np.any(gain_f < 0):
            raise SolverError("gains must be finite and >= 0 (linear power gains, not dB)")
        object.__setattr__(self, "gain_s", gain_s)
        object.__setattr__(self, "gain_f", gain_f)
        object.__setattr__(self, "bandwidth_s_hz", _vector("bandwidth_s_hz", self.bandwidth_s_hz, m))
        object.__setattr__(self, "bandwidth_f_hz", _vector("bandwidth_f_hz", self.bandwidth_f_hz, n))
        object.__setattr__(self, "p_max_w", _vector("p_max_w", self.p_max_w, k))
        object.__setattr__(self, "device_flops_per_s", _vector("device_flops_per_s", self.device_flops_per_s, k))
        object.__setattr__(self, "server_flops_per_s", _vector("server_flops_per_s", self.server_flops_per_s, k))
        object.__setattr__(self, "downlink_rate_bps", _vector("downlink_rate_bps", self.downlink_rate_bps, k))
        if not (np.isfinite(self.noise_psd_w_per_hz) and self.noise_psd_w_per_hz > 0):
            raise SolverError(f"noise_psd_w_per_hz={self.noise_psd_w_per_hz} must be > 0")
        if int(self.local_iterations) != self.local_iterations or self.local_iterations < 1:
            raise SolverError(f"local_iterations={self.local_iterations} must be an integer >= 1")
        if not (np.isfinite(self.broadcast_rate_bps) and self.broadcast_rate_bps > 0):
            raise SolverError(f"broadcast_rate_bps={self.broadcast_rate_bps} must be > 0")
        if not (np.isfinite(self.aggregation_time_s) and self.aggregation_time_s >= 0):
            raise SolverError(f"aggregation_time_s={self.aggregation_time_s} must be >= 0")
        for name in ("p_total_s_w", "p_total_f_w"):
            cap = getattr(self, name)
            if cap is not None and not (np.isfinite(cap) and cap > 0):
                raise SolverError(f"{name}={cap} must be > 0 or None")
        if self.rate_model not in RATE_MODELS:
            raise SolverError(f"rate_model={self.rate_model!r} is not one of {', '.join(RATE_MODELS)}")
        if self.rician_k_linear is not None:
            object.__setattr__(self, "rician_k_linear",
                               _vector("rician_k_linear", self.rician_k_linear, k, positive=False))
        if self.client_memory_limit_bytes is not None:
            object.__setattr__(self, "client_memory_limit_bytes",
                               _vector("client_memory_limit_bytes", self.client_memory_limit_bytes, k))
        self._check_energy(k)
        if not self.candidate_pairs():
            raise SolverError(f"no (split, rank) pair is allowed: min_split={self.min_split}, "
                              f"splits {self.profile.splits.tolist()}, memory limits may exclude all")

    def _check_energy(self, k: int) -> None:
        if self.objective not in OBJECTIVES:
            raise SolverError(f"objective={self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if self.energy is not None and self.energy.num_clients != k:
            raise SolverError(f"energy has {self.energy.num_clients} clients, the problem {k}")
        if self.objective != "delay":
            if self.energy is None:
                raise SolverError(f"objective {self.objective} needs the devices' energy parameters (energy=None)")
            if self.protocol != "sfl":
                raise SolverError(f"objective {self.objective} is supported under protocol sfl only")
            if self.p_total_s_w is not None or self.p_total_f_w is not None:
                raise SolverError(f"objective {self.objective} with total power caps per band is not supported")
            speed = self.energy.max_flops_per_s()
            if not np.allclose(speed, self.device_flops_per_s, rtol=1e-9, atol=0.0):
                raise SolverError("energy.flops_per_cycle x f_max_hz must equal device_flops_per_s (the speed at "
                                  "f_max)")
        if not (np.isfinite(self.weight_s_per_j) and self.weight_s_per_j >= 0):
            raise SolverError(f"weight_s_per_j={self.weight_s_per_j} must be finite and >= 0")
        if self.objective == "delay-under-energy":
            if self.budget_j is None:
                raise SolverError("objective delay-under-energy needs budget_j (per client, J per round)")
            object.__setattr__(self, "budget_j", _vector("budget_j", self.budget_j, k))
        if self.per_client_split and self.protocol != "sfl":
            raise SolverError("per-client splits need protocol sfl")

    @property
    def num_clients(self) -> int:
        return self.gain_s.shape[0]

    @property
    def num_subchannels_s(self) -> int:
        return self.gain_s.shape[1]

    @property
    def num_subchannels_f(self) -> int:
        return self.gain_f.shape[1]

    def restricted(self, members, gain_s=None, gain_f=None, downlink_rate_bps=None,
                   broadcast_rate_bps: Optional[float] = None) -> "Problem":
        """The same problem over the clients ``members`` (problem indices, increasing) only: what an online policy
        solves when some clients are away or not selected. Gains (K x S of the full problem, or of the members
        when their row count is len(members)) and the downlink default to the current ones; the broadcast rate
        defaults to the weakest member's share of this problem's broadcast (its rate is set by the weakest
        receiver). Client ``j`` of the result is client ``members[j]`` here (``client_ids`` follow)."""
        idx = np.asarray(members, dtype=int)
        if idx.ndim != 1 or idx.size < 1 or np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= self.num_clients:
            raise SolverError(f"restricted: members must be increasing indices in 0..{self.num_clients - 1}")

        def rows(value, full):
            if value is None:
                return full[idx]
            value = np.asarray(value, dtype=float)
            return value[idx] if value.shape[0] == self.num_clients and value.shape[0] != idx.size else value

        def pick(value):
            return None if value is None else np.asarray(value)[idx]

        return dataclasses.replace(
            self, gain_s=rows(gain_s, self.gain_s), gain_f=rows(gain_f, self.gain_f), p_max_w=self.p_max_w[idx],
            device_flops_per_s=self.device_flops_per_s[idx], server_flops_per_s=self.server_flops_per_s[idx],
            downlink_rate_bps=rows(downlink_rate_bps, self.downlink_rate_bps),
            broadcast_rate_bps=self.broadcast_rate_bps if broadcast_rate_bps is None else float(broadcast_rate_bps),
            client_memory_limit_bytes=pick(self.client_memory_limit_bytes), rician_k_linear=pick(self.rician_k_linear),
            client_ids=self.client_ids[idx], energy=None if self.energy is None else self.energy.subset(idx),
            budget_j=pick(self.budget_j))

    def candidate_pairs(self) -> list[tuple[int, int]]:
        """Allowed (split, rank) pairs: ℓ ≥ min_split and, when known, client memory within every limit."""
        pairs = []
        prof = self.profile
        for si, split in enumerate(prof.splits):
            if split < self.min_split:
                continue
            for ri, rank in enumerate(prof.ranks):
                if (prof.client_memory_bytes is not None and self.client_memory_limit_bytes is not None
                        and np.any(prof.client_memory_bytes[si, ri] > self.client_memory_limit_bytes)):
                    continue
                pairs.append((int(split), int(rank)))
        return pairs

    def client_splits_allowed(self, rank: int) -> list[np.ndarray]:
        """Per client, the splits it may take at ``rank`` on its own (per-client splits): >= min_split and within
        its memory."""
        prof = self.profile
        ri = int(np.flatnonzero(prof.ranks == int(rank))[0])
        allowed = [s for s in prof.splits if s >= self.min_split]
        out = []
        for k in range(self.num_clients):
            mine = [int(s) for s in allowed
                    if prof.client_memory_bytes is None or self.client_memory_limit_bytes is None
                    or prof.client_memory_bytes[int(np.flatnonzero(prof.splits == s)[0]), ri]
                    <= self.client_memory_limit_bytes[k]]
            out.append(np.array(mine, dtype=int))
        return out

    def client_costs(self, splits, rank: int) -> dict:
        """Per-client per-iteration costs (arrays of length K) when client k takes split ``splits[k]``."""
        splits = np.asarray(splits, dtype=int)
        prof = self.profile
        ri = int(np.flatnonzero(prof.ranks == int(rank))[0])
        si = np.searchsorted(prof.splits, splits)
        return {name: np.asarray(getattr(prof, name), dtype=float)[si, ri]
                for name in ("client_forward_flops", "client_backward_flops", "server_flops", "activation_bits",
                             "adapter_bits")}

    def device_speed_flops_per_s(self, frequency_hz=None) -> np.ndarray:
        """Each device's speed at the clocks ``frequency_hz`` (phi f; None: the speed at f_max)."""
        if frequency_hz is None:
            return self.device_flops_per_s
        if self.energy is None:
            raise SolverError("frequency_hz needs the devices' energy parameters (energy=None)")
        return self.energy.flops_per_cycle * self.energy.frequency_or_max(frequency_hz)

    def costs(self, split: int, rank: int) -> dict:
        """The profile's per-iteration costs at one (split, rank)."""
        si, ri = self.profile.index(split, rank)
        p = self.profile
        return {
            "client_forward_flops": float(p.client_forward_flops[si, ri]),
            "client_backward_flops": float(p.client_backward_flops[si, ri]),
            "server_flops": float(p.server_flops[si, ri]),
            "activation_bits": float(p.activation_bits[si, ri]),
            "adapter_bits": float(p.adapter_bits[si, ri]),
        }

    def _ergodic_client_rates_bps(self, assign, power_w, gain, bandwidth_hz) -> np.ndarray:
        """R_k = Σ_{i: x_ki = 1} B_i E[log2(1 + p_i G_k,i |h|^2 / (N0 B_i))] over each client's fading law."""
        k = self.num_clients
        assign = np.asarray(assign, dtype=int)
        power = np.asarray(power_w, dtype=float)
        used = assign >= 0
        owner = assign[used]
        snr = power[used] * gain[owner, np.flatnonzero(used)] / (self.noise_psd_w_per_hz * bandwidth_hz[used])
        k_fac = np.zeros(k) if self.rician_k_linear is None else self.rician_k_linear
        per_sub = bandwidth_hz[used] * ergodic_spectral_efficiency_rician(snr, k_fac[owner])
        return np.bincount(owner, weights=per_sub, minlength=k).astype(float)

    def _sl_client_rates_bps(self, power_w, gain, bandwidth_hz) -> np.ndarray:
        """sl: R_k = Σ_i B_i log2(1 + p_k,i G_k,i / (N0 B_i)) over every subchannel (row k of a K x S power
        matrix), or its ergodic mean over each client's fading law."""
        power = np.asarray(power_w, dtype=float)
        snr = power * gain / (self.noise_psd_w_per_hz * bandwidth_hz[None, :])
        if self.rate_model == "ergodic":
            k_fac = np.zeros(self.num_clients) if self.rician_k_linear is None else self.rician_k_linear
            per_sub = bandwidth_hz[None, :] * ergodic_spectral_efficiency_rician(snr, k_fac[:, None])
        else:
            per_sub = bandwidth_hz[None, :] * np.log2(1.0 + snr)
        return per_sub.sum(axis=1)

    def rates(self, assign_s, power_s_w, assign_f, power_f_w) -> tuple[np.ndarray, np.ndarray]:
        """Client rates (R^s_k, R^f_k) in bit/s for an allocation on both bands (per ``rate_model``).

        sl: each client's rates while it is active, from its row of the power matrices."""
        if self.protocol == "sl":
            return (self._sl_client_rates_bps(power_s_w, self.gain_s, self.bandwidth_s_hz),
                    self._sl_client_rates_bps(power_f_w, self.gain_f, self.bandwidth_f_hz))
        if self.rate_model == "ergodic":
            return (self._ergodic_client_rates_bps(assign_s, power_s_w, self.gain_s, self.bandwidth_s_hz),
                    self._ergodic_client_rates_bps(assign_f, power_f_w, self.gain_f, self.bandwidth_f_hz))
        r_s = client_rates_bps(np.asarray(assign_s), np.asarray(power_s_w, dtype=float), self.gain_s,
                               self.bandwidth_s_hz, self.noise_psd_w_per_hz, self.num_clients)
        r_f = client_rates_bps(np.asarray(assign_f), np.asarray(power_f_w, dtype=float), self.gain_f,
                               self.bandwidth_f_hz, self.noise_psd_w_per_hz, self.num_clients)
        return r_s, r_f

    def breakdown(self, split: int, rank: int, rate_s_bps, rate_f_bps, *, splits=None,
                  frequency_hz=None) -> DelayBreakdown:
        """Round-time breakdown given client rates on both bands (the objective's core), per ``protocol``;
        ``splits`` (per-client l_k) and ``frequency_hz`` (DVFS clocks) apply under sfl."""
        c = self.costs(split, rank) if splits is None else self.client_costs(splits, rank)
        speed = self.device_speed_flops_per_s(frequency_hz)
        if self.protocol == "sl":
            return sl_delay_breakdown(
                local_iterations=int(self.local_iterations),
                client_forward_flops=c["client_forward_flops"],
                client_backward_flops=c["client_backward_flops"],
                server_flops=c["server_flops"],
                activation_bits=c["activation_bits"],
                adapter_bits=c["adapter_bits"],
                device_flops_per_s=self.device_flops_per_s,
                server_flops_per_s=self.server_flops_per_s,
                uplink_s_rate_bps=rate_s_bps,
                downlink_rate_bps=self.downlink_rate_bps,
                uplink_f_rate_bps=rate_f_bps,
            )
        if self.protocol == "fl":
            return fl_delay_breakdown(
                local_iterations=int(self.local_iterations),
                forward_flops=c["client_forward_flops"],
                backward_flops=c["client_backward_flops"],
                adapter_bits=c["adapter_bits"],
                device_flops_per_s=self.device_flops_per_s,
                uplink_f_rate_bps=rate_f_bps,
                aggregation_time_s=self.aggregation_time_s,
                broadcast_rate_bps=self.broadcast_rate_bps,
            )
        return delay_breakdown(
            local_iterations=int(self.local_iterations),
            client_forward_flops=c["client_forward_flops"],
            client_backward_flops=c["client_backward_flops"],
            server_flops=c["server_flops"],
            activation_bits=c["activation_bits"],
            adapter_bits=c["adapter_bits"],
            device_flops_per_s=speed,
            server_flops_per_s=self.server_flops_per_s,
            uplink_s_rate_bps=rate_s_bps,
            downlink_rate_bps=self.downlink_rate_bps,
            uplink_f_rate_bps=rate_f_bps,
            aggregation_time_s=self.aggregation_time_s,
            broadcast_rate_bps=self.broadcast_rate_bps,
        )


@dataclass
class Solution:
    """An allocation with its score. ``lower_bound_s`` is a certified bound on the optimum when known."""

    objective_s: float
    round_time_s: float
    rounds: float
    split: int
    rank: int
    assign_s: np.ndarray
    assign_f: np.ndarray
    power_s_w: np.ndarray
    power_f_w: np.ndarray
    breakdown: DelayBreakdown
    method: str
    status: str = "feasible"
    lower_bound_s: Optional[float] = None
    wall_time_s: float = 0.0
    notes: list = field(default_factory=list)
    frequency_hz: Optional[np.ndarray] = None  # each device's clock (DVFS); None: every device at f_max
    splits: Optional[np.ndarray] = None  # per-client split points l_k; None: every client at ``split``
    energy: Optional[object] = None  # fsllm_sim.energy.EnergyBreakdown of one round, when the problem has energy

    @property
    def training_delay_s(self) -> float:
        """N(r) T_round, whatever the objective."""
        return float(self.rounds * self.round_time_s)

    @property
    def training_energy_j(self) -> Optional[float]:
        """N(r) times the clients' energy of one round (None without energy parameters)."""
        return None if self.energy is None else float(self.rounds * self.energy.total_j)

    @property
    def gap(self) -> Optional[float]:
        """Relative gap to the lower bound, when one is known."""
        if self.lower_bound_s is None or not np.isfinite(self.objective_s) or self.objective_s <= 0:
            return None
        return max(0.0, (self.objective_s - self.lower_bound_s) / self.objective_s)

    def to_dict(self, timing: bool = True) -> dict:
        """Everything as JSON-ready values. ``timing=False`` leaves out ``wall_time_s`` (a host
        wall-clock time), so the same problem and method give the same dict byte for byte."""
        out = {
            "method": self.method,
            "status": self.status,
            "objective_s": self.objective_s,
            "round_time_s": self.round_time_s,
            "rounds": self.rounds,
            "split": self.split,
            "rank": self.rank,
            "assign_s": np.asarray(self.assign_s).tolist(),
            "assign_f": np.asarray(self.assign_f).tolist(),
            "power_s_w": np.asarray(self.power_s_w).tolist(),
            "power_f_w": np.asarray(self.power_f_w).tolist(),
            "lower_bound_s": self.lower_bound_s,
            "gap": self.gap,
            "wall_time_s": self.wall_time_s,
            "notes": list(self.notes),
            "breakdown": self.breakdown.to_dict(),
        }
        if self.frequency_hz is not None:
            out["frequency_hz"] = np.asarray(self.frequency_hz).tolist()
        if self.splits is not None:
            out["splits"] = np.asarray(self.splits).tolist()
        if self.energy is not None:
            out["training_delay_s"] = self.training_delay_s
            out["training_energy_j"] = self.training_energy_j
            out["energy"] = self.energy.to_dict()
        if not timing:
            del out["wall_time_s"]
        return out

    def to_json(self, timing: bool = True) -> str:
        return json.dumps(self.to_dict(timing=timing), indent=2, allow_nan=True)


def _check_sl_allocation(problem: Problem, assign_s, power_s_w, assign_f, power_f_w) -> None:
    """sl: every subchannel is the active client's; row k of the power matrix is client k's during its turn,
    within its cap and (alone on the band) within the band's total cap."""
    k = problem.num_clients
    for band, assign, power, m, cap in (
        ("s", assign_s, power_s_w, problem.num_subchannels_s, problem.p_total_s_w),
        ("f", assign_f, power_f_w, problem.num_subchannels_f, problem.p_total_f_w),
    ):
        assign = np.asarray(assign)
        power = np.asarray(power, dtype=float)
        if assign.shape != (m,) or np.any(assign != ACTIVE_CLIENT):
            raise SolverError(f"protocol sl: assign_{band} must hold {ACTIVE_CLIENT} (the active client's) on all "
                              f"{m} subchannels")
        if power.shape != (k, m):
            raise SolverError(f"protocol sl: power_{band}_w must be a K x {m} = {k} x {m} matrix (row k: client k's "
                              f"powers during its turn), got shape {power.shape}")
        if np.any(~np.isfinite(power)) or np.any(power < 0):
            raise SolverError(f"power_{band}_w must be finite and >= 0")
        per_client = power.sum(axis=1)
        limit = problem.p_max_w if cap is None else np.minimum(problem.p_max_w, cap)
        if np.any(per_client <= 0):
            raise SolverError(f"client {int(np.argmin(per_client))} has no power on the {band}-band")
        over = per_client > limit * (1 + POWER_TOLERANCE)
        if np.any(over):
            i = int(np.argmax(over))
            raise SolverError(f"client {i} uses {per_client[i]:.6g} W on the {band}-band, above its cap "
                              f"{limit[i]:.6g} W")


def check_allocation(problem: Problem, assign_s, power_s_w, assign_f, power_f_w) -> None:
    """Raise SolverError unless the allocation satisfies every constraint of spec section 5 (per protocol:
    sl's time-shared bands, and fl's s-band, which carries nothing and is not checked)."""
    if problem.protocol == "sl":
        _check_sl_allocation(problem, assign_s, power_s_w, assign_f, power_f_w)
        return
    k = problem.num_clients
    bands = (("s", assign_s, power_s_w, problem.num_subchannels_s, problem.p_total_s_w),
             ("f", assign_f, power_f_w, problem.num_subchannels_f, problem.p_total_f_w))
    for band, assign, power, m, cap in bands[1:] if problem.protocol == "fl" else bands:
        assign = np.asarray(assign)
        power = np.asarray(power, dtype=float)
        if assign.shape != (m,) or power.shape != (m,):
            raise SolverError(f"assign_{band}/power_{band}_w must have length {m}")
        if np.any((assign < -1) | (assign >= k)):
            raise SolverError(f"assign_{band} holds a client index outside -1..{k - 1}")
        if np.any(~np.isfinite(power)) or np.any(power < 0):
            raise SolverError(f"power_{band}_w must be finite and >= 0")
        counts = np.bincount(assign[assign >= 0], minlength=k)
        if np.any(counts == 0):
            raise SolverError(f"client {int(np.argmin(counts))} has no subchannel on the {band}-band")
        used = np.where(assign >= 0, power, 0.0)
        per_client = np.bincount(assign[assign >= 0], weights=used[assign >= 0], minlength=k)
        over = per_client > problem.p_max_w * (1 + POWER_TOLERANCE)
        if np.any(over):
            i = int(np.argmax(over))
            raise SolverError(f"client {i} uses {per_client[i]:.6g} W on the {band}-band, above its cap {problem.p_max_w[i]:.6g} W")
        if cap is not None and used.sum() > cap * (1 + POWER_TOLERANCE):
            raise SolverError(f"total {band}-band power {used.sum():.6g} W is above the cap {cap:.6g} W")


# Relative slack on the DVFS range and the energy budget, so a choice that meets a bound to rounding is accepted.
ENERGY_TOLERANCE = 1e-9


def _check_energy_choice(problem: Problem, rank: int, frequency_hz, splits) -> None:
    if (frequency_hz is not None or splits is not None) and problem.protocol != "sfl":
        raise SolverError("frequency_hz and splits apply under protocol sfl only")
    k = problem.num_clients
    if frequency_hz is not None:
        if problem.energy is None:
            raise SolverError("frequency_hz needs the devices' energy parameters (energy=None)")
        f = np.asarray(frequency_hz, dtype=float)
        if f.shape != (k,) or np.any(~np.isfinite(f)):
            raise SolverError(f"frequency_hz must hold {k} finite clocks in Hz")
        en = problem.energy
        bad = (f < en.f_min_hz * (1 - ENERGY_TOLERANCE)) | (f > en.f_max_hz * (1 + ENERGY_TOLERANCE))
        if np.any(bad):
            i = int(np.argmax(bad))
            raise SolverError(f"client {i}: frequency {f[i]:.6g} Hz is outside its DVFS range "
                              f"[{en.f_min_hz[i]:.6g}, {en.f_max_hz[i]:.6g}] Hz")
    if splits is not None:
        sp = np.asarray(splits)
        if sp.shape != (k,) or not np.issubdtype(sp.dtype, np.integer):
            raise SolverError(f"splits must hold {k} integer split points")
        allowed = problem.client_splits_allowed(rank)
        for i in range(k):
            if int(sp[i]) not in allowed[i]:
                raise SolverError(f"client {i}: split {int(sp[i])} is not allowed at rank {rank} (allowed: "
                                  f"{allowed[i].tolist()}: >= min_split {problem.min_split}, within its memory)")


def round_energy_of(problem: Problem, split: int, rank: int, bd: DelayBreakdown, assign_s, power_s_w, assign_f,
                    power_f_w, frequency_hz=None, splits=None):
    """The clients' energy of one round (:class:`fsllm_sim.energy.EnergyBreakdown`) of an sfl allocation whose
    round is ``bd``; None when the problem has no energy parameters."""
    if problem.energy is None or problem.protocol != "sfl":
        return None
    from fsllm_sim.energy import round_energy

    c = problem.costs(split, rank) if splits is None else problem.client_costs(splits, rank)
    k = problem.num_clients

    def per_client(assign, power):
        a = np.asarray(assign, dtype=int)
        p = np.asarray(power, dtype=float)
        used = a >= 0
        return np.bincount(a[used], weights=p[used], minlength=k).astype(float)

    return round_energy(bd, problem.energy, local_iterations=int(problem.local_iterations),
                        compute_flops=np.asarray(c["client_forward_flops"]) + c["client_backward_flops"],
                        power_s_w=per_client(assign_s, power_s_w), power_f_w=per_client(assign_f, power_f_w),
                        frequency_hz=frequency_hz)


def objective_value(problem: Problem, rounds: float, round_s: float, energy) -> tuple[float, str, list]:
    """(objective, status, notes) of a round of ``round_s`` and ``energy`` per the problem's objective."""
    if problem.objective == "weighted":
        return rounds * (round_s + problem.weight_s_per_j * energy.total_j), "feasible", []
    if problem.objective == "delay-under-energy":
        over = energy.client_j > problem.budget_j * (1 + ENERGY_TOLERANCE)
        if np.any(over):
            i = int(np.argmax(energy.client_j - problem.budget_j))
            return math.inf, "over-budget", [f"client {i} spends {energy.client_j[i]:.6g} J a round, above its budget "
                                             f"{problem.budget_j[i]:.6g} J"]
    return rounds * round_s, "feasible", []


def evaluate(problem: Problem, split: int, rank: int, assign_s, power_s_w, assign_f, power_f_w,
             method: str = "evaluate", check: bool = True, *, frequency_hz=None, splits=None) -> Solution:
    """Score an allocation with the problem's objective: T_total = N(r) * T_round of spec section 4 (delay), or
    with the clients' energy (docs/energy.md). ``frequency_hz``: the DVFS clocks (None: f_max); ``splits``:
    per-client split points (None: every client at ``split``; ``split`` is then their smallest)."""
    if splits is None and (split, rank) not in problem.candidate_pairs():
        raise SolverError(f"(split={split}, rank={rank}) is not an allowed pair for this problem")
    if splits is not None and int(rank) not in problem.profile.ranks:
        raise SolverError(f"rank={rank} is not among the profile's ranks {problem.profile.ranks.tolist()}")
    if check:
        check_allocation(problem, assign_s, power_s_w, assign_f, power_f_w)
        _check_energy_choice(problem, rank, frequency_hz, splits)
    r_s, r_f = problem.rates(assign_s, power_s_w, assign_f, power_f_w)
    bd = problem.breakdown(split, rank, r_s, r_f, splits=splits, frequency_hz=frequency_hz)
    rounds = float(problem.convergence.rounds(rank))
    energy = round_energy_of(problem, split, rank, bd, assign_s, power_s_w, assign_f, power_f_w, frequency_hz,
                             splits)
    objective, status, why = objective_value(problem, rounds, bd.round_s, energy)
    return Solution(
        notes=list(problem.notes) + why,
        status=status,
        frequency_hz=None if frequency_hz is None else np.asarray(frequency_hz, dtype=float).copy(),
        splits=None if splits is None else np.asarray(splits, dtype=int).copy(),
        energy=energy,
        objective_s=objective,
        round_time_s=bd.round_s,
        rounds=rounds,
        split=int(split),
        rank=int(rank),
        assign_s=np.asarray(assign_s, dtype=int).copy(),
        assign_f=np.asarray(assign_f, dtype=int).copy(),
        power_s_w=np.asarray(power_s_w, dtype=float).copy(),
        power_f_w=np.asarray(power_f_w, dtype=float).copy(),
        breakdown=bd,
        method=method,
    )


def select_pairs(problem: Problem, split: Optional[int] = None, rank: Optional[int] = None) -> list[tuple[int, int]]:
    """Allowed (split, rank) pairs, restricted to the given split and/or rank (SolverError if none is left)."""
    pairs = problem.candidate_pairs()
    if split is not None:
        pairs = [p for p in pairs if p[0] == int(split)]
        if not pairs:
            raise SolverError(f"split={split} is not allowed for this problem (profile splits "
                              f"{problem.profile.splits.tolist()}, min_split={problem.min_split}, memory limits)")
    if rank is not None:
        pairs = [p for p in pairs if p[1] == int(rank)]
        if not pairs:
            raise SolverError(f"rank={rank} is not allowed with split={split} for this problem "
                              f"(profile ranks {problem.profile.ranks.tolist()})")
    return pairs
