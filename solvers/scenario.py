"""Build a :class:`Problem` from a scenario's radio environment, device fleet and training profile.

Static optimisation uses average gains (E|h|² = 1, so the large-scale gain on every subchannel);
online optimisation passes the current fading block's gains instead.

The scenario's ``protocol`` (docs/protocols.md) shapes the problem: ``sl`` sees one client at a time (the
main server at f_s, the whole downlink to one client, no FedAvg); ``fl`` keeps only the devices that can hold
the whole model, with the unsplit profile.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from fsllm_sim.delay import server_speed_seen_flops_per_s
from fsllm_sim.devices import aggregation_time_s
from fsllm_sim.errors import ConfigError
from fsllm_sim.memory import fl_exclusion_line, fl_participants
from fsllm_sim.privacy import effective_min_split

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
    protocol = getattr(scenario, "protocol", "sfl")
    if protocol == "sl":
        return _sl_problem(scenario, env, fleet, profile, convergence, gain_s, gain_f, rates)
    if protocol == "fl":
        return _fl_problem(scenario, env, fleet, profile, convergence, gain_s, gain_f, rates)
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
        min_split=effective_min_split(scenario),
        client_memory_limit_bytes=memory_limit,
        rate_model=rates,
        rician_k_linear=np.asarray(env.rician_k_linear, dtype=float) if rates == "ergodic" else None,
        **energy_fields(scenario, fleet, k),
    )


def energy_fields(scenario, fleet, num_clients: int, ids=None) -> dict:
    """The problem's energy parameters and objective (docs/energy.md) from the scenario and the fleet."""
    energy = getattr(fleet, "energy", None)
    if energy is not None and ids is not None:
        energy = energy.subset(ids)
    obj = getattr(scenario, "objective", None)
    out = {"energy": energy}
    if obj is not None:
        out.update(objective=obj.kind, weight_s_per_j=float(obj.weight_s_per_j),
                   budget_j=None if obj.budget_j is None else np.full(num_clients, float(obj.budget_j)))
    split = getattr(scenario, "split", None)
    out["per_client_split"] = bool(getattr(split, "per_client", False))
    return out


def _gains(env, gain_s, gain_f):
    gs = env.average_gains("s") if gain_s is None else np.asarray(gain_s, dtype=float)
    gf = env.average_gains("f") if gain_f is None else np.asarray(gain_f, dtype=float)
    return gs, gf


def _sl_problem(scenario, env, fleet, profile, convergence, gain_s, gain_f, rates) -> Problem:
    """Vanilla split learning: one client active at a time, so it sees the main server at f_s whatever the
    discipline, the whole downlink (one client served), and there is no FedAvg (t_agg = 0)."""
    gs, gf = _gains(env, gain_s, gain_f)
    return Problem(
        gain_s=gs, gain_f=gf, bandwidth_s_hz=env.s_band.bandwidth_hz, bandwidth_f_hz=env.f_band.bandwidth_hz,
        noise_psd_w_per_hz=env.noise_psd_w_per_hz, p_max_w=env.p_max_w,
        local_iterations=scenario.training.local_iterations, device_flops_per_s=fleet.flops_per_s,
        server_flops_per_s=float(scenario.server.flops_per_s), downlink_rate_bps=env.downlink_rate_bps(1),
        broadcast_rate_bps=env.broadcast_rate_bps(), aggregation_time_s=0.0, profile=profile,
        convergence=convergence, p_total_s_w=env.p_total_s_w, p_total_f_w=env.p_total_f_w,
        min_split=effective_min_split(scenario),
        client_memory_limit_bytes=fleet.memory_bytes if profile.client_memory_bytes is not None else None,
        rate_model=rates,
        rician_k_linear=np.asarray(env.rician_k_linear, dtype=float) if rates == "ergodic" else None,
        protocol="sl", energy=getattr(fleet, "energy", None),
    )


def _fl_problem(scenario, env, fleet, profile, convergence, gain_s, gain_f, rates) -> Problem:
    """Federated LoRA without a split over the devices that can hold the whole model.

    A device takes part iff its memory holds the unsplit model at the smallest candidate rank (what the
    model needs at least); the problem's memory rule then drops any rank that some participant cannot hold.
    The excluded devices are named in ``Problem.notes``; none left is a ConfigError. A convergence model in
    tokens then counts the participants' tokens per round (K' E b L)."""
    full = profile.unsplit()
    need = float(np.min(profile.unsplit_memory_bytes)) if profile.unsplit_memory_bytes is not None else 0.0
    ids = fl_participants(fleet.memory_bytes, need)
    if ids.size == 0:
        raise ConfigError(f"protocol: fl: no client can hold the whole model ({need / 2**30:.3g} GiB needed at the "
                          f"smallest rank, devices.memory_bytes at most {np.max(fleet.memory_bytes) / 2**30:.3g} "
                          f"GiB); use protocol sfl or sl, or give the devices more memory")
    line = fl_exclusion_line(fleet.memory_bytes, need)
    if ids.size < env.num_clients and getattr(convergence, "unit", "rounds") == "tokens":
        # a round trains the participants' tokens only: K' E b L, not K E b L
        convergence = dataclasses.replace(convergence,
                                          tokens_per_round=convergence.tokens_per_round * ids.size / env.num_clients)
    gs, gf = _gains(env, gain_s, gain_f)
    gain = np.asarray(env.large_scale_gain, dtype=float)[ids]
    t_agg = aggregation_time_s(int(ids.size), int(np.max(full.adapter_bits) / 32),
                               scenario.federated_server.flops_per_s, scenario.federated_server.overhead_s)
    return Problem(
        gain_s=gs[ids], gain_f=gf[ids], bandwidth_s_hz=env.s_band.bandwidth_hz,
        bandwidth_f_hz=env.f_band.bandwidth_hz, noise_psd_w_per_hz=env.noise_psd_w_per_hz, p_max_w=env.p_max_w[ids],
        local_iterations=scenario.training.local_iterations, device_flops_per_s=fleet.flops_per_s[ids],
        server_flops_per_s=float(scenario.server.flops_per_s),  # unused: no server work
        downlink_rate_bps=env.downlink_rate_bps(int(ids.size), gain),  # unused: no gradients
        broadcast_rate_bps=env.broadcast_rate_bps(gain), aggregation_time_s=t_agg, profile=full,
        convergence=convergence, p_total_s_w=env.p_total_s_w, p_total_f_w=env.p_total_f_w, min_split=1,
        client_memory_limit_bytes=fleet.memory_bytes[ids] if full.client_memory_bytes is not None else None,
        rate_model=rates,
        rician_k_linear=np.asarray(env.rician_k_linear, dtype=float)[ids] if rates == "ergodic" else None,
        protocol="fl", client_ids=ids, notes=(line,) if line else (),
        energy=None if getattr(fleet, "energy", None) is None else fleet.energy.subset(ids),
    )
