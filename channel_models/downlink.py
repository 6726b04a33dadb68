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
    return (bw / n) * np.log1p(p * g / (n0 * bw)) / _LN2
