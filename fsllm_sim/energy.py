"""Device energy (docs/energy.md): compute energy under DVFS, transmit energy, and optional receive and idle power.

Pure functions over numpy arrays (clients along the last axis), shared by the solvers (their energy objectives),
the event engine (``energy_j`` of every trace row) and the closed-form checks. The model, with its sources:

    cycles   C = Phi / phi_k                      (counted FLOPs over the device's FLOPs per cycle)
    time     t = C / f_k                          (f_k in [f_min, f_max]: the DVFS decision)
    E_cmp    = kappa_k * C * f_k^2                (dynamic CMOS energy; Yang et al., IEEE TWC 2021, eq. (4))
    power    P_cmp = E_cmp / t = kappa_k * f_k^3
    E_tx     = sum over transfers of p * t        (p: the client's total power on the band in that round)
    E_rx     = p_rx * t                           (receiving gradients, the broadcast; 0 W unless configured)
    E_idle   = p_idle * (the round's time in which the client neither computes, sends nor receives)

A device's effective speed is phi_k * f_k: at f_k = f_max it is the scenario's ``flops_per_s``, so every delay
of a run without DVFS is today's. An allocation that leaves ``frequency_hz`` unset runs every device at f_max.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

# Phases of the engine's trace and where their energy comes from (docs/energy.md, section 2).
COMPUTE_PHASES = ("forward", "backward")
TRANSMIT_PHASES = {"uplink": "s", "adapter_upload": "f"}
RECEIVE_PHASES = ("downlink", "broadcast", "adapter_download")


@dataclass(frozen=True)
class DeviceEnergy:
    """Per-client energy parameters (arrays of length K), in SI units.

    ``kappa`` is the effective switched capacitance in J s^2 (E = kappa C f^2 with C in cycles, f in Hz);
    ``flops_per_cycle`` phi_k; ``f_min_hz`` / ``f_max_hz`` the DVFS range; ``battery_j`` the energy available to
    training (inf: no battery check); ``rx_power_w`` / ``idle_power_w`` the receive and idle powers."""

    kappa: np.ndarray
    flops_per_cycle: np.ndarray
    f_min_hz: np.ndarray
    f_max_hz: np.ndarray
    battery_j: np.ndarray
    rx_power_w: np.ndarray
    idle_power_w: np.ndarray
    source: str = "defaults"
    notes: tuple = field(default_factory=tuple)

    def __post_init__(self):
        arrays = {name: np.atleast_1d(np.asarray(getattr(self, name), dtype=float)) for name in
                  ("kappa", "flops_per_cycle", "f_min_hz", "f_max_hz", "battery_j", "rx_power_w", "idle_power_w")}
        k = arrays["kappa"].size
        for name, arr in arrays.items():
            if arr.size == 1 and k > 1:
                arr = np.full(k, float(arr[0]))
            if arr.shape != (k,):
                raise ConfigError(f"energy: {name} has {arr.size} values for {k} clients")
            object.__setattr__(self, name, arr)
        check_energy_parameters(self.kappa, self.flops_per_cycle, self.f_min_hz, self.f_max_hz, self.battery_j,
                                self.rx_power_w, self.idle_power_w, where="energy")

    @property
    def num_clients(self) -> int:
        return int(self.kappa.size)

    def max_flops_per_s(self) -> np.ndarray:
        """phi_k f_max: the speed at the top of the DVFS range."""
        return self.flops_per_cycle * self.f_max_hz

    def subset(self, idx) -> "DeviceEnergy":
        idx = np.asarray(idx, dtype=int)
        return DeviceEnergy(self.kappa[idx], self.flops_per_cycle[idx], self.f_min_hz[idx], self.f_max_hz[idx],
                            self.battery_j[idx], self.rx_power_w[idx], self.idle_power_w[idx], self.source,
                            self.notes)

    def frequency_or_max(self, frequency_hz=None) -> np.ndarray:
        """The allocation's frequencies, or f_max where none is set (NaN entries, or no array at all)."""
        if frequency_hz is None:
            return self.f_max_hz.copy()
        f = np.asarray(frequency_hz, dtype=float)
        return np.where(np.isnan(f), self.f_max_hz, f)

    def to_dict(self) -> dict:
        return {"kappa": self.kappa.tolist(), "flops_per_cycle": self.flops_per_cycle.tolist(),
                "f_min_hz": self.f_min_hz.tolist(), "f_max_hz": self.f_max_hz.tolist(),
                "battery_j": [None if not np.isfinite(b) else float(b) for b in self.battery_j],
                "rx_power_w": self.rx_power_w.tolist(), "idle_power_w": self.idle_power_w.tolist(),
                "source": self.source}


def check_energy_parameters(kappa, flops_per_cycle, f_min_hz, f_max_hz, battery_j, rx_power_w, idle_power_w, *,
                            where: str, client_ids=None) -> None:
    """One ConfigError line naming the field, the client and the allowed range for the first value out of range."""
    ids = np.arange(np.size(kappa)) if client_ids is None else np.asarray(client_ids)

    def first_bad(mask, what, allowed, values):
        mask = np.asarray(mask)
        if np.any(mask):
            i = int(np.argmax(mask))
            raise ConfigError(f"{where}.{what}: client {int(ids[i])}: {float(np.asarray(values)[i]):.6g} is out of "
                              f"range; allowed: {allowed}")

    first_bad(~np.isfinite(kappa) | (np.asarray(kappa) <= 0), "kappa", "a finite number > 0 (J s^2)", kappa)
    first_bad(~np.isfinite(flops_per_cycle) | (np.asarray(flops_per_cycle) <= 0), "flops_per_cycle",
              "a finite number > 0", flops_per_cycle)
    first_bad(~np.isfinite(f_min_hz) | (np.asarray(f_min_hz) <= 0), "f_min_hz", "a finite number > 0 (Hz)", f_min_hz)
    first_bad(~np.isfinite(f_max_hz) | (np.asarray(f_max_hz) <= 0), "f_max_hz", "a finite number > 0 (Hz)", f_max_hz)
    first_bad(np.asarray(f_min_hz) > np.asarray(f_max_hz), "f_min_hz",
              "at most the client's f_max_hz (f_min_hz <= f_max_hz)", f_min_hz)
    first_bad(np.isnan(battery_j) | (np.asarray(battery_j) <= 0), "battery_j", "a number > 0 (J) or null (no battery "
              "check)", battery_j)
    for name, arr in (("rx_power_w", rx_power_w), ("idle_power_w", idle_power_w)):
        first_bad(~np.isfinite(arr) | (np.asarray(arr) < 0), name, "a finite number >= 0 (W)", arr)


# ------------------------------------------------------------------------------------------- pure physics

def cycles(flops, flops_per_cycle):
    """C = Phi / phi: the cycles a device spends on ``flops``."""
    return np.asarray(flops, dtype=float) / np.asarray(flops_per_cycle, dtype=float)


def dvfs_compute_time_s(flops, flops_per_cycle, frequency_hz):
    """t = C / f."""
    return cycles(flops, flops_per_cycle) / np.asarray(frequency_hz, dtype=float)


def compute_energy_j(flops, flops_per_cycle, kappa, frequency_hz):
    """E_cmp = kappa C f^2 (Yang et al., IEEE TWC 2021, eq. (4))."""
    f = np.asarray(frequency_hz, dtype=float)
    return np.asarray(kappa, dtype=float) * cycles(flops, flops_per_cycle) * f * f


def compute_power_w(kappa, frequency_hz):
    """P_cmp = E_cmp / t = kappa f^3."""
    f = np.asarray(frequency_hz, dtype=float)
    return np.asarray(kappa, dtype=float) * f * f * f


def compute_energy_for_time_j(flops, flops_per_cycle, kappa, time_s):
    """The compute energy of finishing ``flops`` in exactly ``time_s`` (f = C / t): kappa C^3 / t^2, convex and
    decreasing in t (what the DVFS step trades against the deadline)."""
    c = cycles(flops, flops_per_cycle)
    t = np.asarray(time_s, dtype=float)
    return np.asarray(kappa, dtype=float) * c ** 3 / (t * t)


def transmit_energy_j(power_w, time_s):
    """E_tx = p t (p: the total transmit power of the client on the band, fixed for the transfer)."""
    return np.asarray(power_w, dtype=float) * np.asarray(time_s, dtype=float)


# ------------------------------------------------------------------------------------------- a round in closed form

@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one global round per client (arrays of length K), in J, from the closed form of a round."""

    compute_j: np.ndarray
    uplink_j: np.ndarray
    downlink_rx_j: np.ndarray
    adapter_upload_j: np.ndarray
    broadcast_rx_j: np.ndarray
    idle_j: np.ndarray
    frequency_hz: np.ndarray

    @property
    def client_j(self) -> np.ndarray:
        return (self.compute_j + self.uplink_j + self.downlink_rx_j + self.adapter_upload_j + self.broadcast_rx_j
                + self.idle_j)

    @property
    def total_j(self) -> float:
        return float(np.sum(self.client_j))

    @property
    def worst_client_j(self) -> float:
        return float(np.max(self.client_j))

    def to_dict(self) -> dict:
        return {"compute_j": self.compute_j.tolist(), "uplink_j": self.uplink_j.tolist(),
                "downlink_rx_j": self.downlink_rx_j.tolist(), "adapter_upload_j": self.adapter_upload_j.tolist(),
                "broadcast_rx_j": self.broadcast_rx_j.tolist(), "idle_j": self.idle_j.tolist(),
                "client_j": self.client_j.tolist(), "total_j": self.total_j, "worst_client_j": self.worst_client_j,
                "frequency_hz": self.frequency_hz.tolist()}


def round_energy(breakdown, device: DeviceEnergy, *, local_iterations: int, compute_flops, power_s_w, power_f_w,
                 frequency_hz=None) -> EnergyBreakdown:
    """Per-client energy of one round whose times are ``breakdown`` (a :class:`fsllm_sim.delay.DelayBreakdown`).

    ``compute_flops``: Phi^F + Phi^B of one iteration (scalar or per client); ``power_s_w`` / ``power_f_w``: each
    client's total power on the s- and f-band; ``frequency_hz``: the DVFS choice (None: f_max). Idle time is the
    round (``breakdown.round_s``) less the client's own compute, transmit and receive time: waiting for the main
    server and for the other clients."""
    f = device.frequency_or_max(frequency_hz)
    e = int(local_iterations)
    comp = e * compute_energy_j(compute_flops, device.flops_per_cycle, device.kappa, f)
    up = e * transmit_energy_j(power_s_w, breakdown.uplink_s)
    down = e * device.rx_power_w * np.asarray(breakdown.downlink_s, dtype=float)
    upload = transmit_energy_j(power_f_w, breakdown.adapter_upload_s)
    bcast = device.rx_power_w * float(breakdown.broadcast_s)
    busy = (e * (np.asarray(breakdown.client_forward_s) + breakdown.client_backward_s + breakdown.uplink_s
                 + breakdown.downlink_s) + breakdown.adapter_upload_s + breakdown.broadcast_s)
    idle = device.idle_power_w * np.maximum(0.0, float(breakdown.round_s) - busy)
    k = device.num_clients

    def vec(x):
        return np.broadcast_to(np.asarray(x, dtype=float), (k,)).copy()

    return EnergyBreakdown(compute_j=vec(comp), uplink_j=vec(up), downlink_rx_j=vec(down), adapter_upload_j=vec(upload),
                           broadcast_rx_j=vec(bcast), idle_j=vec(idle), frequency_hz=vec(f))


def phase_power_w(phase: str, k: int, device: DeviceEnergy, frequency_hz, band_power_w: dict) -> float:
    """Client k's power during one trace phase: kappa f^3 computing, its band total sending, p_rx receiving, the
    idle power in every other phase of its own (queueing at the main server, being served)."""
    if phase in COMPUTE_PHASES:
        return float(compute_power_w(device.kappa[k], frequency_hz[k]))
    band = TRANSMIT_PHASES.get(phase)
    if band is not None:
        return float(band_power_w[band][k])
    if phase in RECEIVE_PHASES:
        return float(device.rx_power_w[k])
    return float(device.idle_power_w[k])
