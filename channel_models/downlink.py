"""Downlink (BS -> client) rate when the BS shares its power and band equally (system model, section 2).

With n clients served at once, each gets bandwidth B/n and power P/n, so its SNR is
(P/n) g / (N0 B/n) = P g / (N0 B): sharing leaves the SNR unchanged and divides the rate by n.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_integer, check_nonnegative, check_positive

_LN2 = np.log(2.0)


def downlink_rate_bps(gain, bs_power_w, bandwidth_hz, noise_psd_w_per_hz, num_served):
    """Per-client downlink rate (B/n) log2(1 + P g / (N0 B)) in bit/s; arguments broadcast.

    Every argument must be finite (a zero noise PSD or an infinite gain is rejected), so the
    rate is always finite: an infinitely fast downlink would hide the gradient transfer time.
    """
    where = "downlink_rate_bps"
    g = check_nonnegative(where, "gain", gain)
    p = check_nonnegative(where, "bs_power_w", bs_power_w, "W")
    bw = check_positive(where, "bandwidth_hz", bandwidth_hz, "Hz")
    n0 = check_positive(where, "noise_psd_w_per_hz", noise_psd_w_per_hz, "W/Hz")
    n = check_integer(where, "num_served", num_served, 1)
    return _rate_bps(g, p, bw, n0, n)


def _rate_bps(g, p, bw, n0, n):
    return (bw / n) * np.log1p(p * g / (n0 * bw)) / _LN2


def downlink_rate_function(bs_power_w, bandwidth_hz, noise_psd_w_per_hz, num_served):
    """:func:`downlink_rate_bps` with everything but the gain fixed and checked once: returns rate(gain) in
    bit/s, the same numbers, for a hot path whose gains are already known to be finite and non-negative (a
    moving client's large-scale gain, step after step)."""
    where = "downlink_rate_function"
    p = float(check_nonnegative(where, "bs_power_w", bs_power_w, "W"))
    bw = float(check_positive(where, "bandwidth_hz", bandwidth_hz, "Hz"))
    n0 = float(check_positive(where, "noise_psd_w_per_hz", noise_psd_w_per_hz, "W/Hz"))
    n = int(check_integer(where, "num_served", num_served, 1))

    def rate(gain):
        return _rate_bps(np.asarray(gain, dtype=float), p, bw, n0, n)

    return rate
