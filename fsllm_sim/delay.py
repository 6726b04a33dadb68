"""Analytic delay model of split federated LoRA training (spec section 4).

Pure functions over numpy arrays, shared by the solvers (as their objective) and by the event
engine (as the reference it is checked against). Clients are indexed along the last axis.

    tau_k   = t^F_k + S_a / R^s_k + t^S_k + S_g / R^dl_k + t^B_k
    T_round = max_k (E * tau_k + S_c / R^f_k) + t_agg + S_c / R_bcast
    T_total = N(r) * T_round

That is the split federated protocol (``protocol: sfl``). The two baselines it is compared with have their own
closed forms here (``docs/protocols.md`` states them with every symbol):

* ``sl`` (vanilla split learning, :func:`sl_delay_breakdown`): one client at a time, each turn = the client
  adapter relayed to it by the federated server on the downlink, E iterations, its adapter uploaded on the
  f-band; T_round = sum_k (S_c / R^dl_k + E * tau_k + S_c / R^f_k), no FedAvg, no broadcast.
* ``fl`` (federated LoRA without a split, :func:`fl_delay_breakdown`): the whole model on each device, so
  tau_k = (Phi^F + Phi^B) / f_k with the unsplit model's FLOPs and nothing on the s-band or the downlink
  during the iterations; the round then ends like sfl's: max_k (E * tau_k + S_c(J) / R^f_k) + t_agg + bcast.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError

# Main-server disciplines of the event engine (spec section 3). The closed form has no queue: it sees
# f_s for ``dedicated`` and the static slice f_s / K for every other discipline, which ``partitioned``
# reproduces exactly and ``processor-sharing`` / ``fifo`` improve on when fewer clients are present.
SERVER_DISCIPLINES = ("dedicated", "partitioned", "processor-sharing", "fifo")

# Training protocols (``protocol`` of a scenario): split federated (the spec's), vanilla split learning and
# federated LoRA without a split; see docs/protocols.md.
PROTOCOLS = ("sfl", "sl", "fl")


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
    broadcast_bits: float | None = None,
) -> DelayBreakdown:
    """Per-client iteration and round times of spec section 4.

    ``server_flops_per_s`` is the speed each client sees (after sharing), scalar or length K.
    ``gradient_bits`` defaults to ``activation_bits`` (S_g = S_a: the gradient has the activation's shape).
    The FLOPs and ``adapter_bits`` may be per client (per-client splits l_k); the broadcast then carries the
    union of the clients' blocks, ``broadcast_bits`` (default: the largest ``adapter_bits``).
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
    bcast_bits = float(np.max(adapter_bits)) if broadcast_bits is None else float(broadcast_bits)
    bcast = float(transfer_time_s(bcast_bits, broadcast_rate_bps))
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


@dataclass(frozen=True)
class SequentialDelayBreakdown(DelayBreakdown):
    """A round of vanilla split learning (``sl``): the clients take turns, so the round is the sum of the turns.

    ``client_round_s`` is client k's turn (adapter download + E iterations + adapter upload), ``round_s`` their
    sum; ``adapter_download_s`` is the relay of the client adapter to client k on the downlink (the hand-off).
    ``aggregation_s`` and ``broadcast_s`` are 0: there is no FedAvg and no broadcast.
    """

    adapter_download_s: np.ndarray

    @property
    def straggler(self) -> int:
        """Index of the client whose turn is longest (it adds the most to the round)."""
        return int(np.argmax(self.client_round_s))


def sl_delay_breakdown(
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
    gradient_bits: float | None = None,
) -> SequentialDelayBreakdown:
    """Turns and round of vanilla split learning (docs/protocols.md, section 2).

    turn_k = S_c / R^dl_k + E * tau_k + S_c / R^f_k,  tau_k as in sfl,  T_round = sum_k turn_k.

    The rates are those of client k while it is the only one active: ``uplink_s_rate_bps`` /
    ``uplink_f_rate_bps`` over whatever subchannels it holds during its turn (all of them in the
    simulator's sl allocation), ``downlink_rate_bps`` the whole downlink to one client, and
    ``server_flops_per_s`` the main server serving one client (f_s). The hand-off goes through the
    federated server: S_c up on the f-band, then S_c down to the next client.
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
    download = np.broadcast_to(transfer_time_s(adapter_bits, downlink_rate_bps), device.shape).astype(float)
    turn = download + local_iterations * tau + upload
    return SequentialDelayBreakdown(
        client_forward_s=t_f,
        uplink_s=up,
        server_compute_s=t_s,
        downlink_s=down,
        client_backward_s=t_b,
        iteration_s=tau,
        adapter_upload_s=upload,
        client_round_s=turn,
        aggregation_s=0.0,
        broadcast_s=0.0,
        round_s=float(np.sum(turn)),
        adapter_download_s=download,
    )


def fl_delay_breakdown(
    *,
    local_iterations: int,
    forward_flops: float,
    backward_flops: float,
    adapter_bits: float,
    device_flops_per_s,
    uplink_f_rate_bps,
    aggregation_time_s: float,
    broadcast_rate_bps: float,
) -> DelayBreakdown:
    """Round of federated LoRA without a split (docs/protocols.md, section 3).

    tau_k = Phi^F / f_k + Phi^B / f_k (the unsplit model: embedding, J blocks, head and loss),
    T_round = max_k (E * tau_k + S_c(J) / R^f_k) + t_agg + S_c(J) / R_bcast.

    It is sfl's round with nothing on the s-band, no main server and no gradient downlink (S_a = S_g = 0,
    Phi_s = 0), so it is computed by :func:`delay_breakdown` with those terms at zero: the uplink, server and
    downlink columns of the result are 0.
    """
    device = np.asarray(device_flops_per_s, dtype=float)
    return delay_breakdown(
        local_iterations=local_iterations,
        client_forward_flops=forward_flops,
        client_backward_flops=backward_flops,
        server_flops=0.0,
        activation_bits=0.0,
        adapter_bits=adapter_bits,
        device_flops_per_s=device,
        server_flops_per_s=1.0,  # unused: no server work
        uplink_s_rate_bps=np.zeros(device.shape),
        downlink_rate_bps=np.zeros(device.shape),
        uplink_f_rate_bps=uplink_f_rate_bps,
        aggregation_time_s=aggregation_time_s,
        broadcast_rate_bps=broadcast_rate_bps,
    )
