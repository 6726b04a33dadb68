"""OFDMA bands, Shannon rates and per-client power allocation (system model, section 2).

Rate on subchannel i of bandwidth B_i with power p_i and linear gain g_i, noise PSD N0:

    c_i = B_i log2(1 + p_i g_i / (N0 B_i))

Subchannel widths follow 5G NR resource blocks (3GPP TS 38.211 section 4.4.4.1: 12 subcarriers
of 15 kHz * 2^mu, mu = 0..4 for data).

Power allocation for one client (concave objective, linear budget) is classic water-filling.
The KKT conditions give p_i = B_i * (mu - N0/g_i)^+ with a water level mu in W/Hz, so the
"floor" of subchannel i is f_i = N0/g_i and its "width" is B_i. Sorting the floors makes the
total power piecewise linear in mu, and the water level has a closed form on each piece; the
active set is a prefix of the sorted floors (shown in ``_active_prefix``), so the solution is
exact to rounding, not iterative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (broadcast_to_shape, check_integer, check_ndim, check_nonnegative,
                          check_positive, check_range, check_shape)

_LN2 = np.log(2.0)


# --------------------------------------------------------------------------------------------
# Bands
# --------------------------------------------------------------------------------------------

def nr_rb_bandwidth_hz(numerology_mu: int) -> float:
    """Bandwidth of one NR resource block: 12 subcarriers of 15 kHz * 2^mu (TS 38.211 4.4.4.1)."""
    mu = int(check_integer("nr_rb_bandwidth_hz", "numerology_mu", numerology_mu, 0, 4))
    return 12 * 15e3 * 2.0**mu


def nr_subchannel_bandwidth_hz(num_rbs: int, numerology_mu: int) -> float:
    """Bandwidth of a subchannel made of ``num_rbs`` contiguous resource blocks."""
    # 275 RBs is the largest NR carrier (TS 38.101 tables of maximum transmission bandwidth).
    n = int(check_integer("nr_subchannel_bandwidth_hz", "num_rbs", num_rbs, 1, 275))
    return n * nr_rb_bandwidth_hz(numerology_mu)


@dataclass(frozen=True, eq=False)
class Band:
    """A set of OFDMA subchannels with (possibly unequal) bandwidths.

    ``bandwidth_hz`` is stored as a read-only float64 copy so the frozen dataclass is really
    immutable (a shared writable array could be changed behind the band's back).
    """

    name: str
    bandwidth_hz: np.ndarray

    def __post_init__(self):
        where = f"Band({self.name})"
        bw = check_ndim(where, "bandwidth_hz", self.bandwidth_hz, 1)
        bw = check_positive(where, "bandwidth_hz", bw, "Hz")
        check_range(where, "number of subchannels", bw.size, 1, np.inf)
        bw = np.array(bw, dtype=float, copy=True)
        bw.setflags(write=False)
        object.__setattr__(self, "bandwidth_hz", bw)

    @property
    def num_subchannels(self) -> int:
        return int(self.bandwidth_hz.size)

    @property
    def total_bandwidth_hz(self) -> float:
        return float(self.bandwidth_hz.sum())

    @classmethod
    def uniform(cls, name: str, num_subchannels: int, subchannel_bandwidth_hz: float) -> "Band":
        """``num_subchannels`` subchannels of equal width."""
        n = int(check_integer(f"Band.uniform({name})", "num_subchannels", num_subchannels, 1))
        check_positive(f"Band.uniform({name})", "subchannel_bandwidth_hz", subchannel_bandwidth_hz, "Hz")
        return cls(name, np.full(n, float(subchannel_bandwidth_hz)))

    @classmethod
    def nr(cls, name: str, num_subchannels: int, rbs_per_subchannel: int = 1,
           numerology_mu: int = 1) -> "Band":
        """Equal NR subchannels of ``rbs_per_subchannel`` resource blocks at numerology ``mu``."""
        return cls.uniform(name, num_subchannels,
                           nr_subchannel_bandwidth_hz(rbs_per_subchannel, numerology_mu))

    def __eq__(self, other):
        if not isinstance(other, Band):
            return NotImplemented
        return self.name == other.name and np.array_equal(self.bandwidth_hz, other.bandwidth_hz)

    def __hash__(self):
        return hash((self.name, self.bandwidth_hz.tobytes()))


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------

def subchannel_rate_bps(bandwidth_hz, power_w, gain, noise_psd_w_per_hz):
    """Shannon rate B log2(1 + p g / (N0 B)) in bit/s; all arguments broadcast."""
    bw = check_positive("subchannel_rate_bps", "bandwidth_hz", bandwidth_hz, "Hz")
    p = check_nonnegative("subchannel_rate_bps", "power_w", power_w, "W")
    g = check_nonnegative("subchannel_rate_bps", "gain", gain)
    n0 = check_positive("subchannel_rate_bps", "noise_psd_w_per_hz", noise_psd_w_per_hz, "W/Hz")
    # log1p keeps precision at low SNR, where log2(1 + x) would round x away.
    return bw * np.log1p(p * g / (n0 * bw)) / _LN2


def client_rates_bps(assign, power_w, gain, bandwidth_hz, noise_psd_w_per_hz, num_clients: int):
    """Per-client rate R_k = sum of the rates of the subchannels assigned to k.

    assign: int array (S,), client index of each subchannel, -1 = unused (its power is ignored).
    power_w: (S,) power on each subchannel. gain: (K, S) linear gains. bandwidth_hz: (S,) or scalar.
    Returns a (K,) array in bit/s.
    """
    where = "client_rates_bps"
    k = int(check_integer(where, "num_clients", num_clients, 1))
    a = check_integer(where, "assign", check_ndim(where, "assign", assign, 1), -1, k - 1)
    s = a.size
    g = check_shape(where, "gain", gain, (k, s))
    p = broadcast_to_shape(where, "power_w", power_w, (s,))
    bw = broadcast_to_shape(where, "bandwidth_hz", bandwidth_hz, (s,))
    used = a >= 0
    idx = np.nonzero(used)[0]
    c = subchannel_rate_bps(bw[idx], p[idx], g[a[idx], idx], noise_psd_w_per_hz)
    return np.bincount(a[idx], weights=c, minlength=k).astype(float)


# --------------------------------------------------------------------------------------------
# Water-filling
# --------------------------------------------------------------------------------------------

def _prepare(where, gain, bandwidth_hz, noise_psd_w_per_hz, mask):
    g = check_ndim(where, "gain", gain, 2)
    g = check_nonnegative(where, "gain", g)
    bw = broadcast_to_shape(where, "bandwidth_hz", bandwidth_hz, g.shape)
    bw = check_positive(where, "bandwidth_hz", bw, "Hz")
    n0 = float(check_positive(where, "noise_psd_w_per_hz", noise_psd_w_per_hz, "W/Hz"))
    usable = g > 0
    if mask is not None:
        usable &= broadcast_to_shape(where, "mask", np.asarray(mask, dtype=bool), g.shape) != 0
    with np.errstate(divide="ignore"):
        floor = np.where(usable, n0 / np.where(usable, g, 1.0), np.inf)
    return floor, bw


def _active_prefix(floor_sorted, level_per_prefix):
    """Number of active subchannels per row.

    With floors sorted ascending, let mu_m be the water level that fits the budget on the first
    m of them. mu_{m+1} is a weighted mean of mu_m and f_{m+1}, so mu_{m+1} > f_{m+1} iff
    mu_m > f_{m+1}; once the test fails it fails for every larger m. Hence the active set is
    the prefix where mu_m > f_m, and its length is a plain count.
    """
    return np.sum(np.isfinite(floor_sorted) & (level_per_prefix > floor_sorted), axis=1)


def _sorted_cumsums(floor, bw, weight_fn):
    order = np.argsort(floor, axis=1, kind="stable")
    f_s = np.take_along_axis(floor, order, axis=1)
    b_s = np.take_along_axis(bw, order, axis=1)
    finite = np.isfinite(f_s)
    b_fin = np.where(finite, b_s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(finite, b_s * weight_fn(np.where(finite, f_s, 1.0)), 0.0)
    return f_s, np.cumsum(b_fin, axis=1), np.cumsum(w, axis=1)


def water_filling_power_w_batched(gain, bandwidth_hz, noise_psd_w_per_hz, p_max_w, mask=None):
    """Water-filling for many clients at once.

    gain: (K, S) linear gains; bandwidth_hz: broadcastable to (K, S); p_max_w: (K,) or scalar;
    mask: optional (K, S) bool, True where client k may use subchannel i (its assignment).
    Returns (K, S) powers in W; masked-out and zero-gain subchannels get 0.
    """
    where = "water_filling_power_w"
    floor, bw = _prepare(where, gain, bandwidth_hz, noise_psd_w_per_hz, mask)
    k = floor.shape[0]
    p_max = broadcast_to_shape(where, "p_max_w", p_max_w, (k,))
    p_max = check_nonnegative(where, "p_max_w", p_max, "W")
    f_s, cum_b, cum_bf = _sorted_cumsums(floor, bw, lambda f: f)
    with np.errstate(invalid="ignore", divide="ignore"):
        level_m = (p_max[:, None] + cum_bf) / cum_b
    m = _active_prefix(f_s, level_m)
    level = np.take_along_axis(level_m, np.maximum(m - 1, 0)[:, None], axis=1)[:, 0]
    level = np.where(m > 0, level, 0.0)
    return bw * np.maximum(level[:, None] - floor, 0.0)


def water_filling_power_w(gain, bandwidth_hz, noise_psd_w_per_hz, p_max_w):
    """Rate-maximising powers for one client's subchannels (1-D arrays) under sum p <= p_max_w.

    Maximises sum_i B_i log2(1 + p_i g_i / (N0 B_i)); the budget is always used in full when any
    subchannel has positive gain. Deep-faded subchannels (floor above the water level) get 0.
    """
    where = "water_filling_power_w"
    g = check_ndim(where, "gain", gain, 1)
    bw = broadcast_to_shape(where, "bandwidth_hz", bandwidth_hz, g.shape)
    return water_filling_power_w_batched(g[None, :], bw[None, :], noise_psd_w_per_hz, p_max_w)[0]


def min_power_for_rate_w_batched(gain, bandwidth_hz, noise_psd_w_per_hz, rate_bps, mask=None):
    """Least total power reaching ``rate_bps`` (K,) for each of K clients.

    Same KKT structure as water-filling (p_i = B_i (mu - f_i)^+), but the level fixes the rate:
    sum_active B_i log2(mu / f_i) = R, i.e. log2 mu = (R + sum B_i log2 f_i) / sum B_i, computed in
    the log domain because mu/f_i can span many decades.
    Returns (powers_w (K, S), total_w (K,)). A client with rate > 0 but no usable subchannel gets
    inf powers and inf total (the infimum over an empty set), which lets a caller's bisection treat
    it as infeasible without a special case.
    """
    where = "min_power_for_rate_w"
    floor, bw = _prepare(where, gain, bandwidth_hz, noise_psd_w_per_hz, mask)
    k = floor.shape[0]
    rate = broadcast_to_shape(where, "rate_bps", rate_bps, (k,))
    rate = check_nonnegative(where, "rate_bps", rate, "bit/s")
    f_s, cum_b, cum_blog = _sorted_cumsums(floor, bw, np.log2)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_level_m = (rate[:, None] + cum_blog) / cum_b
        log_f_s = np.log2(f_s)
    # A zero rate needs no power; the log round trip would otherwise leave ~1e-17 W of dust.
    m = np.where(rate > 0, _active_prefix(log_f_s, log_level_m), 0)
    log_level = np.take_along_axis(log_level_m, np.maximum(m - 1, 0)[:, None], axis=1)[:, 0]
    level = np.where(m > 0, np.exp2(log_level), 0.0)
    powers = bw * np.maximum(level[:, None] - floor, 0.0)
    infeasible = (m == 0) & (rate > 0)
    powers[infeasible] = np.inf
    return powers, powers.sum(axis=1)


def min_power_for_rate_w(gain, bandwidth_hz, noise_psd_w_per_hz, rate_bps):
    """Least total power (and its per-subchannel split) for one client to reach ``rate_bps``.

    Returns (powers_w (S,), total_w float). See ``min_power_for_rate_w_batched``.
    """
    where = "min_power_for_rate_w"
    g = check_ndim(where, "gain", gain, 1)
    bw = broadcast_to_shape(where, "bandwidth_hz", bandwidth_hz, g.shape)
    powers, total = min_power_for_rate_w_batched(g[None, :], bw[None, :], noise_psd_w_per_hz, rate_bps)
    return powers[0], float(total[0])
