"""The radio as the engine sees it: uplink transfers over fading blocks, the static downlink, the broadcast.

Fading advances in blocks of ``channel.fading.block_s`` with the Gauss-Markov law of
:mod:`channel_models.fading`, drawn only for the subchannels a client transmits on, when it does
(:class:`channel_models.ObservedFading`). A transfer costs one SimPy timeout whatever the number of
blocks it spans: its end time comes from the cumulative rate (:func:`channel_models.transfer_over_blocks`).
Powers are those of the allocation in force, held fixed for the round.

The downlink (gradients, and the aggregated adapter's broadcast) is static today: each client's share
of the base station at its large-scale gain, as in the closed form, and the broadcast at the weakest
client's rate. A contended, fading downlink is not modelled yet.

Clients are addressed by their index in the problem (``client_ids`` maps it to the scenario's client, whose
channel is used; the identity except under ``protocol: fl`` with devices left out). Under ``protocol: sl``
an allocation's powers are K x S matrices: client k transmits on every subchannel with a positive power
in its row (during its turn; the turns never overlap, so the subchannels are never shared at once).
"""
from __future__ import annotations

import numpy as np

import channel_models as cm

from ..seeding import seed_sequence
from .allocation import Allocation

BANDS = ("s", "f")


def _band_seed(root_seed: int, band: str) -> np.random.SeedSequence:
    base = seed_sequence(root_seed, "fading")
    return np.random.SeedSequence(entropy=base.entropy, spawn_key=tuple(base.spawn_key) + (BANDS.index(band),))


class Radio:
    """Uplink transfers on the s- and f-bands of one run; records the piecewise-constant rates it used."""

    def __init__(self, env, *, root_seed: int, downlink_rate_bps, broadcast_rate_bps: float, record: bool = True,
                 client_ids=None):
        self.env = env
        self.client_ids = np.arange(env.num_clients) if client_ids is None else np.asarray(client_ids, dtype=int)
        self.record = record
        self.fading = {b: env.observed_fading(b, _band_seed(root_seed, b)) for b in BANDS} if env.fading_enabled \
            else None
        self.downlink_rate_bps = np.asarray(downlink_rate_bps, dtype=float)
        self.broadcast_rate_bps = float(broadcast_rate_bps)
        self.channel_rows: list = []  # (client, band, starts_s, ends_s, rates_bps)
        self._links: dict = {}

    def use(self, alloc: Allocation) -> None:
        """Hold the allocation's subchannels and powers fixed until the next call (one per round)."""
        ids = self.client_ids
        k = ids.size
        self._links = {}
        for band, assign, power in (("s", alloc.assign_s, alloc.power_s_w), ("f", alloc.assign_f, alloc.power_f_w)):
            bw = self.env.band(band).bandwidth_hz
            gains = self.env.average_gains(band)[ids]
            power = np.asarray(power, dtype=float)
            if power.ndim == 2:  # sl: row k is client k's power on every subchannel during its turn
                for client in range(k):
                    subs = np.flatnonzero(power[client] > 0)
                    rate = cm.client_rates_bps(np.full(bw.size, client), power[client], gains, bw,
                                               self.env.noise_psd_w_per_hz, k)[client]
                    self._links[band, client] = (subs, power[client, subs], bw[subs], float(rate))
                continue
            mean_rates = cm.client_rates_bps(assign, power, gains, bw, self.env.noise_psd_w_per_hz, k)
            for client in range(k):
                subs = np.flatnonzero(assign == client)
                self._links[band, client] = (subs, power[subs], bw[subs], float(mean_rates[client]))

    def transfer_end_s(self, client: int, band: str, start_s: float, bits: float) -> float:
        """When ``bits`` sent by ``client`` on ``band`` from ``start_s`` have all arrived."""
        subs, power, bw, mean_rate = self._links[band, client]
        device = int(self.client_ids[client])
        if self.fading is None:
            if mean_rate <= 0:
                raise cm.TransferError(f"client {device} has a zero rate on the {band}-band")
            end = start_s + bits / mean_rate
            if self.record:
                self.channel_rows.append((device, band, np.array([start_s]), np.array([end]), np.array([mean_rate])))
            return end
        res = cm.transfer_over_blocks(self.fading[band], device, subs, power, bw,
                                      float(self.env.large_scale_gain[device]), self.env.noise_psd_w_per_hz,
                                      start_s, bits, segments=self.record)
        if self.record:
            self.channel_rows.append((device, band, res.starts_s, res.ends_s, res.rates_bps))
        return res.end_s

    def gains_at(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """K x S power gains of both bands in the block holding ``time_s`` (observing every subchannel), for
        the problem's clients."""
        ids = self.client_ids
        if self.fading is None:
            return self.env.average_gains("s")[ids], self.env.average_gains("f")[ids]
        out = []
        for band in BANDS:
            fad = self.fading[band]
            block = cm.block_index(time_s, fad.block_s)
            subs = np.arange(fad.num_subchannels)
            h = np.vstack([fad.draw(int(k), subs, block, 1) for k in ids])
            out.append(cm.gains_from_fading(self.env.large_scale_gain[ids], h))
        return out[0], out[1]

    def downlink_s(self, client: int, bits: float) -> float:
        return float(bits / self.downlink_rate_bps[client]) if bits > 0 else 0.0

    def broadcast_s(self, bits: float) -> float:
        return float(bits / self.broadcast_rate_bps) if bits > 0 else 0.0
