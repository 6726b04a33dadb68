"""The radio as the engine sees it: uplink transfers over fading blocks, the static downlink, the broadcast.

Fading advances in blocks of ``channel.fading.block_s`` with the Gauss-Markov law of
:mod:`channel_models.fading`, drawn only for the subchannels a client transmits on, when it does
(:class:`channel_models.ObservedFading`). A transfer costs one SimPy timeout whatever the number of
blocks it spans: its end time comes from the cumulative rate (:func:`channel_models.transfer_over_blocks`).
Powers are those of the allocation in force, held fixed for the round.

The downlink (gradients, and the aggregated adapter's broadcast) is static by default: each client's share
of the base station at its large-scale gain, as in the closed form, and the broadcast at the weakest
client's rate. With ``channel.downlink.fading: fading`` both see block fading on the downlink's own
Gauss-Markov streams (one wideband coefficient per client and block, the uplink's law): a gradient
arrives when the integral of its client's share (B/n) log2(1 + P G |h|^2 / (N0 B)) reaches its bits, the
broadcast when every receiver has accumulated its bits at its own full-band rate (the last receiver ends it).

A changing world (docs/dynamics.md): a moving client's large-scale gain comes from the
:class:`.mobility.LargeScaleTimeline`, block by block, and its Doppler from its speed when a transfer
starts; a subchannel in outage (``radio.outage_rate_bps`` / ``outage_snr_db``) makes no progress in that
block. :meth:`Radio.send` and :meth:`Radio.receive` return the whole :class:`channel_models.TransferResult`
so that an interrupted transfer (a drop, a cancellation) records exactly the bits sent up to then
(:meth:`Radio.record` with ``until_s``), and :meth:`Radio.release` puts the fading state back there.

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
from .channel_log import CHANNEL_LOGS, segments_summary_row, summary_row

BANDS = ("s", "f")


def _band_seed(root_seed: int, band: str) -> np.random.SeedSequence:
    base = seed_sequence(root_seed, "fading")
    return np.random.SeedSequence(entropy=base.entropy, spawn_key=tuple(base.spawn_key) + (BANDS.index(band),))


class Radio:
    """Uplink and downlink transfers of one run; records the piecewise-constant rates the uplink used."""

    def __init__(self, env, *, root_seed: int, downlink_rate_bps, broadcast_rate_bps: float, record: bool = True,
                 channel_log: str = "full", client_ids=None, timeline=None, outage: cm.Outage | None = None,
                 downlink_fading: bool = False, downlink_num_served: int | None = None, carrier_hz: float = 3.5e9,
                 interruptible: bool = False):
        self.env = env
        self.client_ids = np.arange(env.num_clients) if client_ids is None else np.asarray(client_ids, dtype=int)
        if channel_log not in CHANNEL_LOGS:
            raise ValueError(f"channel_log={channel_log!r} is not one of {', '.join(CHANNEL_LOGS)}")
        self.record_rows = record and channel_log == "full"  # every segment of every transfer
        self.record_summary = record and channel_log == "summary"  # one row per transfer
        self.fading = {b: env.observed_fading(b, _band_seed(root_seed, b)) for b in BANDS} if env.fading_enabled \
            else None
        self.downlink_rate_bps = np.asarray(downlink_rate_bps, dtype=float)
        self.broadcast_rate_bps = float(broadcast_rate_bps)
        self.timeline = timeline if timeline is not None and timeline.moving.size else None
        self.outage = outage
        self.downlink_num_served = int(downlink_num_served or env.num_clients)
        self.carrier_hz = float(carrier_hz)  # a moving client's Doppler f_D = v f_c / c
        self.dl_fading = None
        if downlink_fading and env.fading_enabled:
            self.dl_fading = cm.ObservedFading(env.num_clients, 1, env.rician_k_linear, env.doppler_hz, env.block_s,
                                               seed_sequence(root_seed, "downlink-fading"))
        # a world that changes needs every segment (to cut a transfer where it is interrupted)
        self.dynamic = self.timeline is not None or outage is not None or self.dl_fading is not None
        # a transfer a drop or a deadline may cut keeps its segments, whatever is logged: the bits sent by then
        self.keep_segments = self.record_rows or self.dynamic or bool(interruptible)
        self.channel_rows: list = []  # (client, band, starts_s, ends_s, rates_bps[, outage_subchannels])
        self.summary_rows: list = []  # channel_log.SUMMARY_COLUMNS (+ stall_s with an outage rule)
        self._links: dict = {}
        self._static_fading: dict = {}  # (band, client) -> the end-time call of a static world's fading link
        self._used: dict = {}  # band -> (assignment, powers) of the links in use
        self._speed_set: dict = {}  # (fading, device) -> the speed its Doppler was last set from
        self._downlink_rate_of_gain: dict = {}  # num_served -> rate(gain) of a moving client on a static downlink
        self._downlink_links: dict = {}  # num_served -> (subchannel, power, bandwidth) arrays of a fading downlink

    def use(self, alloc: Allocation) -> None:
        """Hold the allocation's subchannels and powers fixed until the next call (one per round)."""
        ids = self.client_ids
        k = ids.size
        previous, self._links = self._links, {}
        for band, assign, power in (("s", alloc.assign_s, alloc.power_s_w), ("f", alloc.assign_f, alloc.power_f_w)):
            # a band allocated as in the last round keeps its links' arrays (the fading caches what it derives from
            # them, keyed by the arrays themselves)
            same = self._used.get(band)
            if same is not None and np.array_equal(same[0], assign) and np.array_equal(same[1], power):
                self._links.update({key: v for key, v in previous.items() if key[0] == band})
                continue
            self._used[band] = (np.array(assign, copy=True), np.array(power, dtype=float, copy=True))
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
            # each client's subchannels in increasing order, by one stable sort (not K scans of M subchannels)
            assign = np.asarray(assign)
            order = np.argsort(assign, kind="stable")
            edges = np.searchsorted(assign[order], np.arange(k + 1))
            for client in range(k):
                subs = order[edges[client]:edges[client + 1]]
                self._links[band, client] = (subs, power[subs], bw[subs], float(mean_rates[client]))
        self._static_fading = {}
        if self.fading is not None and not self.keep_segments and self.outage is None:
            # the static world's uplink with fading (no segment kept, so nothing moves: see keep_segments): per link,
            # the call that gives a transfer's end and its arguments but the start and the bits, bound once a round
            n0 = self.env.noise_psd_w_per_hz
            for (band, client), (subs, power, bw, _) in self._links.items():
                fading = self.fading[band]
                if fading.independent and subs.size:
                    device = int(self.client_ids[client])
                    self._static_fading[band, client] = (fading.transfer_end_s, device, subs, power, bw,
                                                         float(self.env.large_scale_gain[device]), n0)

    # -- the large-scale gain of a changing world ------------------------------------------------------

    @property
    def fading_blocks_drawn(self) -> int:
        """Block-subchannel fading coefficients drawn so far, uplink bands and downlink together."""
        streams = list(self.fading.values()) if self.fading is not None else []
        if self.dl_fading is not None:
            streams.append(self.dl_fading)
        return int(sum(f.blocks_drawn for f in streams))

    def forget_before(self, time_s: float) -> None:
        """A round starts at ``time_s``: no transfer will ask for an earlier large-scale gain."""
        if self.timeline is not None:
            self.timeline.forget_before(time_s)

    def _moving(self, device: int) -> bool:
        return self.timeline is not None and self.timeline.is_moving(device)

    def _gain_of_blocks(self, device: int, block_s: float):
        """gain_of_blocks(first_block, n) of a moving client, on blocks of ``block_s`` (a divisor of the step)."""
        tl = self.timeline
        per = max(1, int(round(tl.step_s / block_s)))

        def gains(first_block: int, n: int) -> np.ndarray:
            first, last = first_block // per, (first_block + n - 1) // per
            g = tl.gain_of_steps(device, first, last - first + 1)
            if first == last:
                return np.full(n, g[0])
            # blocks per step: the first and last steps may be partly covered
            counts = np.full(last - first + 1, per)
            counts[0] = (first + 1) * per - first_block
            counts[-1] -= (last + 1) * per - (first_block + n)
            return np.repeat(g, counts)
        return gains

    def _set_doppler(self, fading, device: int, start_s: float) -> None:
        if self._moving(device):
            speed = self.timeline.speed_at_step(device, self.timeline.step_of(start_s))
            key = (id(fading), device)
            if self._speed_set.get(key) != speed:  # the same speed: the same rho
                self._speed_set[key] = speed
                fading.set_doppler(device, float(cm.doppler_hz(speed, self.carrier_hz)))

    # -- uplink ----------------------------------------------------------------------------------------

    def send(self, client: int, band: str, start_s: float, bits: float) -> cm.TransferResult:
        """The whole transfer of ``bits`` from ``client`` on ``band`` from ``start_s`` (not yet recorded)."""
        subs, power, bw, mean_rate = self._links[band, client]
        device = int(self.client_ids[client])
        segments = self.keep_segments
        if self.fading is None:
            if not self._moving(device) and self.outage is None:
                if mean_rate <= 0:
                    raise cm.TransferError(f"client {device} has a zero rate on the {band}-band")
                end = start_s + bits / mean_rate
                return cm.TransferResult(end, np.array([start_s]), np.array([end]), np.array([mean_rate]), bits)
            return self._send_without_fading(device, subs, power, bw, band, start_s, bits)
        fading = self.fading[band]
        gain_of_blocks = self._gain_of_blocks(device, fading.block_s) if self._moving(device) else None
        if gain_of_blocks is not None:
            self._set_doppler(fading, device, start_s)
        return cm.transfer_over_blocks(fading, device, subs, power, bw, float(self.env.large_scale_gain[device]),
                                       self.env.noise_psd_w_per_hz, start_s, bits, segments=segments,
                                       gain_of_blocks=gain_of_blocks, outage=self.outage)

    def _send_without_fading(self, device, subs, power, bw, band, start_s, bits) -> cm.TransferResult:
        """No fading but a moving client or an outage rule: the rate is constant within a mobility step."""
        n0 = self.env.noise_psd_w_per_hz
        step_s = self.timeline.step_s if self.timeline is not None else 3600.0
        scale = power / (n0 * bw)

        def rates(first_step: int, n: int) -> np.ndarray:
            if self._moving(device):
                g = self.timeline.gain_of_steps(device, first_step, n)
            else:
                g = np.full(n, float(self.env.large_scale_gain[device]))
            snr = g[:, None] * scale[None, :]
            per_sub = np.log1p(snr) * (bw / np.log(2.0))
            if self.outage is not None:
                per_sub = np.where(self.outage.mask(snr, per_sub), 0.0, per_sub)
            return per_sub.sum(axis=1)

        if not self._moving(device) and rates(0, 1)[0] <= 0:
            raise cm.TransferError(f"client {device} is in outage for good on the {band}-band (no fading, no "
                                   f"movement: its rate on every subchannel is below the radio.outage threshold)")
        return cm.transfer_over_steps(rates, step_s, start_s, bits)

    def record(self, client: int, band: str, result: cm.TransferResult, until_s: float | None = None, *,
               start_s: float | None = None, bits: float | None = None) -> list:
        """Record the rates a transfer used (up to ``until_s`` when interrupted); returns its stalls
        [(start_s, end_s)]: the stretches in which every one of its subchannels was in outage. ``start_s`` and
        ``bits`` (the transfer's start and payload) let the summary log a transfer whose segments were not kept."""
        starts, ends, rates = result.starts_s, result.ends_s, result.rates_bps
        dead = result.outage_subchannels
        if until_s is not None and starts.size:
            keep = starts < until_s
            starts, ends, rates = starts[keep], np.minimum(ends[keep], until_s), rates[keep]
            dead = None if dead is None else dead[keep]
        device = int(self.client_ids[client])
        if self.record_rows and starts.size:
            if self.outage is not None:
                if dead is None:  # no fading: count the outage from the rate
                    dead = (rates <= 0).astype(int) * int(self._links[band, client][0].size)
                self.channel_rows.append((device, band, starts, ends, rates, dead))
            else:
                self.channel_rows.append((device, band, starts, ends, rates))
        if self.record_summary:
            self._summarise(device, band, result, starts, ends, rates, until_s, start_s, bits)
        if self.outage is None or not starts.size:
            return []
        return _stretches(starts, ends, rates <= 0)

    def _summarise(self, device, band, result, starts, ends, rates, until_s, start_s, bits) -> None:
        if starts.size:  # cut short (until_s): the bits its segments carried up to then
            self.summary_rows.append(segments_summary_row(device, band, starts, ends, rates,
                                                          bits=None if until_s is not None else bits,
                                                          outage=self.outage is not None))
        elif until_s is None and start_s is not None and bits is not None:  # segments not kept (static world)
            self.summary_rows.append(summary_row(device, band, start_s, result.end_s, bits))
        # else: interrupted before its first segment, nothing was sent

    def release(self, client: int, band: str, time_s: float) -> None:
        """After an interruption at ``time_s``: the client's fading state on ``band`` (s, f or dl) goes back to
        the block holding ``time_s`` (exact when that block is in the transfer's last chunk of draws, else the
        state is forgotten and the next observation starts from the stationary law)."""
        fading = self.dl_fading if band == "dl" else (self.fading[band] if self.fading is not None else None)
        if fading is None:
            return
        device = int(self.client_ids[client])
        fading.release(device, cm.block_index(time_s, fading.block_s))

    def transfer_end_s(self, client: int, band: str, start_s: float, bits: float) -> float:
        """When ``bits`` sent by ``client`` on ``band`` from ``start_s`` have all arrived (recorded)."""
        static = self._static_fading.get((band, client))
        if static is not None and bits > 0:  # the static world's hot path: only the end time is needed
            end = static[0](*static[1:], start_s, bits)
            if self.record_summary:
                self.summary_rows.append(summary_row(static[1], band, start_s, end, bits))
            return end
        if self.fading is None and self.timeline is None and self.outage is None and not self.record_rows:
            mean_rate = self._links[band, client][3]  # the closed form's constant rate
            if mean_rate > 0:
                end = start_s + bits / mean_rate
                if self.record_summary:
                    self.summary_rows.append(summary_row(int(self.client_ids[client]), band, start_s, end, bits))
                return end
        res = self.send(client, band, start_s, bits)
        self.record(client, band, res, start_s=start_s, bits=bits)
        return res.end_s

    # -- downlink --------------------------------------------------------------------------------------

    def receive(self, client: int, start_s: float, bits: float, *, num_served: int | None = None) -> cm.TransferResult:
        """Client ``client`` receives ``bits`` on the downlink from ``start_s``, sharing the BS with
        ``num_served`` clients (default: as the closed form shares it)."""
        device = int(self.client_ids[client])
        n = self.downlink_num_served if num_served is None else int(num_served)
        if bits <= 0:
            return cm.TransferResult(float(start_s), np.empty(0), np.empty(0), np.empty(0), 0.0)
        if self.dl_fading is None and not self._moving(device):
            rate = self.downlink_rate_bps[client] if num_served is None else float(
                self.env.downlink_rate_bps(n)[device])
            end = start_s + float(bits / rate)
            return cm.TransferResult(end, np.array([start_s]), np.array([end]), np.array([float(rate)]), bits)
        env = self.env
        p_w, bw = env.downlink_power_w / n, env.downlink_bandwidth_hz / n
        if self.dl_fading is None:
            rate_of_gain = self._downlink_rate_of_gain.get(n)
            if rate_of_gain is None:  # the scalars checked once per share, not at every step
                rate_of_gain = cm.downlink_rate_function(env.downlink_power_w, env.downlink_bandwidth_hz,
                                                         env.noise_psd_w_per_hz, n)
                self._downlink_rate_of_gain[n] = rate_of_gain

            def rates(first_step: int, m: int) -> np.ndarray:
                return rate_of_gain(self.timeline.gain_of_steps(device, first_step, m))
            return cm.transfer_over_steps(rates, self.timeline.step_s, start_s, bits)
        gain_of_blocks = self._gain_of_blocks(device, self.dl_fading.block_s) if self._moving(device) else None
        if gain_of_blocks is not None:
            self._set_doppler(self.dl_fading, device, start_s)
        link = self._downlink_links.get(n)
        if link is None:  # one set of arrays per share (the fading caches what it derives from them)
            link = self._downlink_links[n] = (np.array([0]), np.array([p_w]), np.array([bw]))
        return cm.transfer_over_blocks(self.dl_fading, device, *link, float(env.large_scale_gain[device]),
                                       env.noise_psd_w_per_hz, start_s, bits, gain_of_blocks=gain_of_blocks)

    def downlink_s(self, client: int, bits: float) -> float:
        return float(bits / self.downlink_rate_bps[client]) if bits > 0 else 0.0

    def broadcast_s(self, bits: float) -> float:
        return float(bits / self.broadcast_rate_bps) if bits > 0 else 0.0

    def broadcast_end_s(self, receivers, start_s: float, bits: float) -> float:
        """When the last of ``receivers`` (problem indices) has the broadcast: each receives at its own full-band
        rate; with every client receiving on a static downlink this is the weakest client's rate, as in the
        closed form."""
        ends = self.broadcast_ends_s(receivers, start_s, bits)
        return max(ends) if ends else float(start_s)

    def broadcast_ends_s(self, receivers, start_s: float, bits: float) -> list:
        """When each of ``receivers`` has the broadcast (see :meth:`broadcast_end_s`), in their order."""
        receivers = list(receivers)
        if bits <= 0 or not receivers:
            return [float(start_s)] * len(receivers)
        if self.dl_fading is None and self.timeline is None and len(receivers) == len(self.client_ids):
            return [start_s + self.broadcast_s(bits)] * len(receivers)
        return [self.receive(k, start_s, bits, num_served=1).end_s for k in receivers]

    def gains_at(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        """K x S power gains of both bands in the block holding ``time_s`` (observing every subchannel), for
        the problem's clients."""
        ids = self.client_ids
        large = self.env.large_scale_gain if self.timeline is None else self.timeline.gains_at(time_s)
        if self.fading is None:
            return tuple(np.repeat(large[ids][:, None], self.env.band(b).num_subchannels, axis=1) for b in BANDS)
        out = []
        for band in BANDS:
            fad = self.fading[band]
            block = cm.block_index(time_s, fad.block_s)
            subs = np.arange(fad.num_subchannels)
            h = np.vstack([fad.draw(int(k), subs, block, 1) for k in ids])
            out.append(cm.gains_from_fading(large[ids], h))
        return out[0], out[1]


def _stretches(starts: np.ndarray, ends: np.ndarray, flags: np.ndarray) -> list:
    """Merge consecutive flagged segments into [(start_s, end_s)]."""
    out = []
    for s, e, f in zip(starts, ends, flags):
        if not f:
            continue
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], float(e))
        else:
            out.append((float(s), float(e)))
    return out
