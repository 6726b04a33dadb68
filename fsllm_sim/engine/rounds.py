"""Round rules: who takes part in a round and when the round closes (``round.policy``), one small family.

A rule answers three questions, like a SimPy resource fills its two hooks:

* :meth:`RoundRule.num_selected`: how many of the available clients to select;
* :meth:`RoundRule.quota`: after how many finished uploads the round closes (None: when every selected
  client has finished or dropped);
* :attr:`RoundRule.deadline_s`: the time after the round's start at which the clients still working are
  cancelled (None: no deadline).

Rules:

* ``wait-all``: every selected client; the round waits for all of them (a dropped client is not waited for);
* ``deadline``: every selected client; the uploads that have arrived by ``deadline_s`` are aggregated;
* ``over-selection``: ceil(over_selection K) clients selected (at most those available), the first K
  uploads aggregated, the others cancelled (Bonawitz et al., "Towards federated learning at scale").

Fewer than ``round.min_clients`` finishers: ``extend`` lifts the deadline until min_clients have finished or
no selected client is still working; ``repeat`` discards the attempt and starts the round again with the
clients available then. A round left with fewer finishers and nothing more to wait for is repeated under
either rule (there is nothing to aggregate it from), at most ``round.max_repeats`` times.

Selection among the available clients (``round.selection``): all; random (a uniform sample of K from the
``selection`` stream); solver (the K with the shortest closed-form client round under the allocation of the
round, at the gains measured at its start).
"""
from __future__ import annotations

import math

import numpy as np

RULES: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        cls.name = name
        RULES[name] = cls
        return cls
    return deco


class RoundRule:
    """Base rule: wait for every selected client."""

    name = ""

    def __init__(self, cfg):
        self.cfg = cfg
        self.deadline_s = None
        self.min_clients = int(cfg.min_clients)
        self.below_min = cfg.below_min
        self.max_repeats = int(cfg.max_repeats)

    def num_selected(self, available: int) -> int:
        k = self.cfg.clients_per_round
        return available if k is None else min(int(k), available)

    def quota(self, selected: int) -> int | None:
        return None


@register("wait-all")
class WaitAll(RoundRule):
    pass


@register("deadline")
class Deadline(RoundRule):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.deadline_s = float(cfg.deadline_s)


@register("over-selection")
class OverSelection(RoundRule):
    def num_selected(self, available: int) -> int:
        return min(available, math.ceil(self.cfg.over_selection * int(self.cfg.clients_per_round) - 1e-9))

    def quota(self, selected: int) -> int | None:
        return min(selected, int(self.cfg.clients_per_round))


def make_rule(cfg) -> RoundRule:
    return RULES[cfg.policy](cfg)


def is_static_world(scenario) -> bool:
    """Every dynamic feature at its default: static clients, always available, wait-all over all, no outage,
    static downlink (the world of the closed form)."""
    mob, av, rnd, radio = scenario.mobility, scenario.availability, scenario.round, scenario.radio
    return (mob.model == "static" and all(g.model == "static" for g in mob.groups) and av.model == "always"
            and rnd.policy == "wait-all" and rnd.selection == "all" and rnd.clients_per_round is None
            and radio.outage_rate_bps is None and radio.outage_snr_db is None
            and scenario.channel.downlink.fading == "static")


def fastest_round_s(problem, split: int, rank: int) -> np.ndarray:
    """Per client, the shortest round it could have at t = 0: alone on every subchannel of both bands with its
    full power water-filled (mean gains), the main server to itself, its own downlink share. A lower bound on
    its client phase under any allocation of the mean channel (fading aside), used to refuse deadlines that
    nobody can meet."""
    import channel_models as cm

    costs = problem.costs(split, rank)
    out = np.empty(problem.num_clients)
    server_s = costs["server_flops"] / float(np.max(problem.server_flops_per_s) * problem.num_clients) \
        if problem.protocol == "sfl" else 0.0
    for k in range(problem.num_clients):
        rates = []
        for gain, bw in ((problem.gain_s[k], problem.bandwidth_s_hz), (problem.gain_f[k], problem.bandwidth_f_hz)):
            p = cm.water_filling_power_w(gain, bw, problem.noise_psd_w_per_hz, problem.p_max_w[k])
            rates.append(float(np.sum(cm.subchannel_rate_bps(bw, p, gain, problem.noise_psd_w_per_hz))))
        compute = (costs["client_forward_flops"] + costs["client_backward_flops"]) / problem.device_flops_per_s[k]
        air = 0.0
        if problem.protocol != "fl":
            air = costs["activation_bits"] / rates[0] + costs["activation_bits"] / problem.downlink_rate_bps[k]
        out[k] = problem.local_iterations * (compute + server_s + air) + costs["adapter_bits"] / rates[1]
    return out
