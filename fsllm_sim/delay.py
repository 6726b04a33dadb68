"""Analytic delay model of split federated LoRA training (spec section 4).

Pure functions over numpy arrays, shared by the solvers (as their objective) and by the event
engine (as the reference it is checked against). Clients are indexed along the last axis.

    tau_k   = t^F_k + S_a / R^s_k + t^S_k + S_g / R^dl_k + t^B_k
    T_round = max_k (E * tau_k + S_c / R^f_k) + t_agg + S_c / R_bcast
    T_total = N(r) * T_round
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError

# Main-server disciplines of the event engine (spec section 3). The closed form has no queue: it sees
# f_s for ``dedicated`` and the static slice f_s / K for every other discipline, which ``partitioned``
# reproduces exactly and ``processor-sharing`` / ``fifo`` improve on when fewer clients are present.
SERVER_DISCIPLINES = ("dedicated", "partitioned", "processor-sharing", "fifo")


def compute_time_s(flops, flops_per_s):
    """Seconds to execute ``flops`` at an effective speed of ``flops_per_s``."""
    return np.asarray(flops, dtype=float) / np.asarray(flops_per_s, dtype=float)


def transfer_time_s(bits, rate_bps):
    """Seconds to move ``bits`` at a constant ``rate_bps``; a zero rate gives ``inf``, never an error.

    Infinity is the honest answer for a client without a subchannel: the objective then says the
    allocation is useless rather than silently pretending the link exists.
    """
    bits = np.asarray(bits, dtype=float)
    rate = np.asarray(rate_bps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rate > 0, bits / np.where(rate > 0, rate, 1.0), np.inf)
    return np.where(bits == 0, 0.0, t)


def server_speed_seen_flops_per_s(server_flops_per_s: float, num_clients: int, discipline: str = "partitioned"):
    """Speed of the main server as seen by one client in the closed form (spec section 3).

    ``dedicated``: each client has a server of speed f_s to itself; every other discipline: the K
    concurrently training clients split the server equally (f_s / K), the spec's ``shared``.
    """
    if discipline not in SERVER_DISCIPLINES:
        raise ConfigError(f"server.discipline={discipline!r} is not one of {', '.join(SERVER_DISCIPLINES)}")
    if num_clients < 1:
        raise ConfigError(f"num_clients={num_clients} must be >= 1")
    return float(server_flops_per_s) if discipline == "dedicated" else server_flops_per_s / num_clients


def convergence_rounds(rank, a: float, b: float, c: float):
    """N(r) = a + b * r^(-c): rounds to reach the target validation loss at LoRA rank r."""
    return a + b * np.asarray(rank, dtype=float) ** (-c)


@dataclass(frozen=True)
class DelayBreakdown:
    """Where one global round's time goes, per client (arrays of length K) and for the round."""

    client_forward_s: np.ndarray
    uplink_s: np.ndarray
    server_compute_s: np.ndarray
    downlink_s: np.ndarray
    client_backward_s: np.ndarray
    iteration_s: np.ndarray
    adapter_upload_s: np.ndarray
    client_round_s: np.ndarray
    aggregation_s: float
    broadcast_s: float
    round_s: float

    @property
    def straggler(self) -> int:
        """Index of the client that sets the round time."""
        return int(np.argmax(self.client_round_s))

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


def delay_breakdown(
    *,
    local_iterations: int,
    client_forward_flops: float,
    client_backward_flops: float,
    server_flops: float,
    activation_bits: float,
    adapter_bits: float,
    device_flops_per_s,
    server_flops_per_s,
    uplink_s_rate_bps,
    downlink_rate_bps,
    uplink_f_rate_bps,
    aggregation_time_s: float,
    broadcast_rate_bps: float,
    gradient_bits: float | None = None,
) -> DelayBreakdown:
    """Per-client iteration and round times of spec section 4.

    ``server_flops_per_s`` is the speed each client sees (after sharing), scalar or length K.
    ``gradient_bits`` defaults to ``activation_bits`` (S_g = S_a: the gradient has the activation's shape).
    """
    if local_iterations < 1:
        raise ConfigError(f"local_iterations={local_iterations} must be >= 1")
    device = np.asarray(device_flops_per_s, dtype=float)
    s_g = activation_bits if gradient_bits is None else gradient_bits
    t_f = compute_time_s(client_forward_flops, device)
    t_b = compute_time_s(client_backward_flops, device)
    t_s = np.broadcast_to(compute_time_s(server_flops, server_flops_per_s), device.shape).astype(float)
    up = transfer_time_s(activation_bits, uplink_s_rate_bps)
    down = transfer_time_s(s_g, downlink_rate_bps)
    tau = t_f + up + t_s + down + t_b
    upload = transfer_time_s(adapter_bits, uplink_f_rate_bps)
    client_round = local_iterations * tau + upload
    bcast = float(transfer_time_s(adapter_bits, broadcast_rate_bps))
    round_s = float(np.max(client_round)) + float(aggregation_time_s) + bcast
    return DelayBreakdown(
        client_forward_s=t_f,
        uplink_s=up,
        server_compute_s=t_s,
        downlink_s=down,
        client_backward_s=t_b,
        iteration_s=tau,
        adapter_upload_s=upload,
        client_round_s=client_round,
        aggregation_s=float(aggregation_time_s),
        broadcast_s=bcast,
        round_s=round_s,
    )
