"""Build a :class:`Problem` from a scenario's radio environment, device fleet and training profile.

Static optimisation uses average gains (E|h|² = 1, so the large-scale gain on every subchannel);
online optimisation passes the current fading block's gains instead.
"""
from __future__ import annotations

import numpy as np

from fsllm_sim.delay import server_speed_seen_flops_per_s
from fsllm_sim.devices import aggregation_time_s

from .problem import Problem, SplitRankProfile


def build_problem(scenario, env, fleet, profile: SplitRankProfile, convergence, *, gain_s=None, gain_f=None,
                  adapter_parameters: int | None = None, rates: str | None = None) -> Problem:
    """The scenario's optimisation problem. ``adapter_parameters`` sizes the FedAvg time (default: from S_c);
    ``rates`` (mean-gain | ergodic) overrides ``scenario.solver.rates``, the objective's rate model (see
    :class:`Problem`); the clients' Rician K-factors come from ``env.rician_k_linear``. Without ``rates``,
    explicit ``gain_s``/``gain_f`` (instantaneous gains) and a scenario without fading mean mean-gain."""
    if rates is None and (gain_s is not None or gain_f is not None):
        rates = "mean-gain"  # gains given (e.g. a fading block's): they include the fading already
    if rates is None:
        solver_cfg = getattr(scenario, "solver", None)
        rates = getattr(solver_cfg, "rates", "mean-gain") if solver_cfg is not None else "mean-gain"
    if not getattr(env, "fading_enabled", True):
        rates = "mean-gain"  # no small-scale fading: the ergodic rate IS the mean-gain rate
    k = env.num_clients
    gs = env.average_gains("s") if gain_s is None else np.asarray(gain_s, dtype=float)
    gf = env.average_gains("f") if gain_f is None else np.asarray(gain_f, dtype=float)
    if adapter_parameters is None:
        # Largest adapter among the candidates at 32 bits per parameter: the FedAvg time is tiny
        # against the round, so one conservative value for every (ℓ, r) keeps it out of the trade-off.
        adapter_parameters = int(np.max(profile.adapter_bits) / 32)
    srv = scenario.server
    t_agg = aggregation_time_s(k, adapter_parameters, scenario.federated_server.flops_per_s,
                               scenario.federated_server.overhead_s)
    memory_limit = fleet.memory_bytes if profile.client_memory_bytes is not None else None
    return Problem(
        gain_s=gs,
        gain_f=gf,
        bandwidth_s_hz=env.s_band.bandwidth_hz,
        bandwidth_f_hz=env.f_band.bandwidth_hz,
        noise_psd_w_per_hz=env.noise_psd_w_per_hz,
        p_max_w=env.p_max_w,
        local_iterations=scenario.training.local_iterations,
        device_flops_per_s=fleet.flops_per_s,
        server_flops_per_s=server_speed_seen_flops_per_s(srv.flops_per_s, k, srv.discipline),
        downlink_rate_bps=env.downlink_rate_bps(),
        broadcast_rate_bps=env.broadcast_rate_bps(),
        aggregation_time_s=t_agg,
        profile=profile,
        convergence=convergence,
        p_total_s_w=env.p_total_s_w,
        p_total_f_w=env.p_total_f_w,
        min_split=scenario.split.min_layer,
        client_memory_limit_bytes=memory_limit,
        rate_model=rates,
        rician_k_linear=np.asarray(env.rician_k_linear, dtype=float) if rates == "ergodic" else None,
    )
