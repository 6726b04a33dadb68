"""The radio environment of a scenario: where clients stand, their large-scale gains and their bands.

Built once per run from the scenario's ``clients`` and ``channel`` sections, each random aspect
drawn from its own named stream (placement, los, shadowing), so for example switching shadowing
off leaves the placement and LOS draws unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

import channel_models as cm

from .seeding import stream

KMH_TO_MPS = 1000.0 / 3600.0


@dataclass(frozen=True)
class RadioEnvironment:
    positions_m: np.ndarray          # (K, 2), BS at the origin
    distance_2d_m: np.ndarray        # (K,)
    los: np.ndarray                  # (K,) bool
    path_loss_db: np.ndarray         # (K,)
    shadowing_db: np.ndarray         # (K,)
    large_scale_gain: np.ndarray     # (K,) linear, 10^(-(PL + X)/10)
    rician_k_linear: np.ndarray      # (K,), 0 for Rayleigh
    doppler_hz: float
    block_s: float
    coherence_bandwidth_hz: Optional[float]
    s_band: cm.Band
    f_band: cm.Band
    noise_psd_w_per_hz: float
    p_max_w: np.ndarray              # (K,) per client and band
    p_total_s_w: Optional[float]
    p_total_f_w: Optional[float]
    downlink_power_w: float
    downlink_bandwidth_hz: float
    fading_enabled: bool
    # mobility.model: trace: the parsed paths {client: (t_s (n,), xy_m (n, 2))}, read once for the whole run
    mobility_traces: Optional[dict] = field(default=None, compare=False, hash=False, repr=False)

    @property
    def num_clients(self) -> int:
        return int(self.distance_2d_m.size)

    def band(self, name: str) -> cm.Band:
        return {"s": self.s_band, "f": self.f_band}[name]

    def average_gains(self, band: str) -> np.ndarray:
        """K×S mean power gains: E|h|² = 1, so the mean is the large-scale gain on every subchannel."""
        return np.repeat(self.large_scale_gain[:, None], self.band(band).num_subchannels, axis=1)

    def fading(self, band: str, rng: np.random.Generator) -> cm.BlockFading:
        """A fading process over one band's subchannels for every client."""
        b = self.band(band)
        return cm.BlockFading(self.num_clients, b.num_subchannels, self.rician_k_linear, self.doppler_hz,
                              self.block_s, rng, coherence_bandwidth_hz=self.coherence_bandwidth_hz,
                              subchannel_bandwidth_hz=b.bandwidth_hz)

    def observed_fading(self, band: str, seed_sequence: np.random.SeedSequence) -> cm.ObservedFading:
        """The same fading law as :meth:`fading`, drawn per client only where observed (the event engine's)."""
        b = self.band(band)
        return cm.ObservedFading(self.num_clients, b.num_subchannels, self.rician_k_linear, self.doppler_hz,
                                 self.block_s, seed_sequence, coherence_bandwidth_hz=self.coherence_bandwidth_hz,
                                 subchannel_bandwidth_hz=b.bandwidth_hz)

    def downlink_rate_bps(self, num_served: int | None = None, gain=None) -> np.ndarray:
        """Per-client downlink rate when ``num_served`` clients share the BS power and band equally."""
        n = self.num_clients if num_served is None else num_served
        g = self.large_scale_gain if gain is None else gain
        return cm.downlink_rate_bps(g, self.downlink_power_w, self.downlink_bandwidth_hz, self.noise_psd_w_per_hz, n)

    def broadcast_rate_bps(self, gain=None) -> float:
        """Rate of the aggregated-adapter broadcast: one transmission to all, so the weakest client sets it."""
        g = self.large_scale_gain if gain is None else gain
        return float(cm.downlink_rate_bps(np.min(g), self.downlink_power_w, self.downlink_bandwidth_hz,
                                          self.noise_psd_w_per_hz, 1))

    def mean_snr_db(self, band: str) -> np.ndarray:
        """Per-client mean SNR on one subchannel at the full power cap (a link-budget figure)."""
        b = self.band(band)
        bw = float(np.mean(b.bandwidth_hz))
        return cm.linear_to_db(self.p_max_w * self.large_scale_gain / (self.noise_psd_w_per_hz * bw))


def build_environment(scenario) -> RadioEnvironment:
    """Place clients and draw their large-scale channel from the scenario's seeds."""
    k = scenario.clients.count
    ch = scenario.channel
    pl_cfg = ch.path_loss
    lay = scenario.clients.layout
    positions = cm.place_clients_in_disc(stream(scenario.seed, "placement"), k, lay.radius_m, lay.min_distance_m)
    mob = getattr(scenario, "mobility", None)
    traces = None
    if mob is not None and mob.model == "trace":  # a traced client starts where its trace is at t = 0
        from channel_models.mobility import interpolate_path

        from .trace_files import read_mobility_csv

        traces = read_mobility_csv(mob.trace_path, k, radius_m=lay.radius_m, min_distance_m=lay.min_distance_m)
        for c, (t, xy) in traces.items():
            positions[c] = interpolate_path(t, xy, [0.0])[0][0]
    d2 = cm.distances_2d_m(positions)
    model = pl_cfg.model
    if pl_cfg.los == "always":
        los = np.ones(k, dtype=bool)
    elif pl_cfg.los == "never" or model == "log-distance":
        los = np.zeros(k, dtype=bool)
    else:
        los = cm.draw_los(stream(scenario.seed, "los"), cm.los_probability(model, d2, pl_cfg.ut_height_m))
    pl = cm.path_loss_db(model, d2, pl_cfg.carrier_ghz, pl_cfg.bs_height_m, pl_cfg.ut_height_m, los)
    if pl_cfg.shadowing:
        if pl_cfg.shadowing_std_db is not None:
            std = np.full(k, pl_cfg.shadowing_std_db)
        elif model == "rma":
            beyond = d2 > cm.breakpoint_distance_m("rma", pl_cfg.carrier_ghz, pl_cfg.bs_height_m, pl_cfg.ut_height_m)
            std = cm.shadowing_std_db(model, los, beyond_breakpoint=beyond)
        else:
            std = cm.shadowing_std_db(model, los)
        shadow = cm.draw_shadowing_db(stream(scenario.seed, "shadowing"), positions, std,
                                      pl_cfg.shadowing_correlation_m)
    else:
        shadow = np.zeros(k)
    fad = ch.fading
    if fad.model == "rician" or (fad.model == "auto"):
        k_lin = np.full(k, cm.rician_k_db_to_linear(fad.rician_k_db))
        if fad.model == "auto":
            k_lin = np.where(los, k_lin, 0.0)
    else:
        k_lin = np.zeros(k)
    doppler = float(cm.doppler_hz(fad.speed_kmh * KMH_TO_MPS, pl_cfg.carrier_ghz * 1e9))
    return RadioEnvironment(
        positions_m=positions,
        distance_2d_m=d2,
        los=los,
        path_loss_db=pl,
        shadowing_db=shadow,
        large_scale_gain=cm.large_scale_gain_linear(pl, shadow),
        rician_k_linear=k_lin,
        doppler_hz=doppler,
        block_s=fad.block_s,
        coherence_bandwidth_hz=fad.coherence_bandwidth_hz,
        s_band=cm.Band.uniform("s", ch.s_band.subchannels, ch.s_band.subchannel_bandwidth_hz),
        f_band=cm.Band.uniform("f", ch.f_band.subchannels, ch.f_band.subchannel_bandwidth_hz),
        noise_psd_w_per_hz=float(cm.noise_psd_w_per_hz(ch.noise.thermal_psd_dbm_per_hz, ch.noise.noise_figure_db)),
        p_max_w=np.full(k, float(cm.dbm_to_w(ch.power.client_max_dbm))),
        p_total_s_w=None if ch.power.total_cap_s_dbm is None else float(cm.dbm_to_w(ch.power.total_cap_s_dbm)),
        p_total_f_w=None if ch.power.total_cap_f_dbm is None else float(cm.dbm_to_w(ch.power.total_cap_f_dbm)),
        downlink_power_w=float(cm.dbm_to_w(ch.downlink.power_dbm)),
        downlink_bandwidth_hz=ch.downlink.bandwidth_hz,
        fading_enabled=fad.model != "none",
        mobility_traces=traces,
    )
