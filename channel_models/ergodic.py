"""Ergodic (fading-averaged) spectral efficiency E[log2(1 + snr |h|^2)] with E|h|^2 = 1 (spec sections 2, 4).

The closed form of spec section 4 with mean gains uses log2(1 + snr), which over-states the mean rate
under fading (Jensen: log is concave). These functions give the mean over the small-scale fading law:

* :func:`ergodic_spectral_efficiency_rayleigh`: |h|^2 ~ Exp(1), closed form exp(1/snr) E1(1/snr) / ln 2,
  with the scaled exponential integral e^x E1(x) evaluated stably (asymptotic series for large x);
* :func:`ergodic_spectral_efficiency_rician`: Rician |h| with K-factor K (linear), E|h|^2 = 1, by the
  MGF identity ln(1 + y) = ∫_0^∞ (e^{-z} / z)(1 - e^{-y z}) dz, so that
  E[ln(1 + snr X)] = ∫_0^∞ (e^{-z} / z)(1 - M(snr z)) dz with M(t) = E[e^{-t X}]
  = (K+1)/(K+1+t) · exp(-K t / (K+1+t)). After z = e^v the integrand is analytic in a strip of
  half-width π/2 and decays (double) exponentially at both ends, so the trapezoid rule on a uniform
  grid in v converges exponentially (step 0.1: error far below 1e-12). It is vectorised over any
  broadcastable (snr, K) arrays, e.g. (K clients, S subchannels). At K = 0 it equals the Rayleigh form.

Results are in bit/s/Hz. Bad arguments raise :class:`channel_models.errors.ValidityRangeError`.
"""
from __future__ import annotations

import numpy as np
from scipy.special import exp1

from ._validation import check_nonnegative, check_positive

_LN2 = np.log(2.0)
# Above this x, e^x E1(x) is taken from its asymptotic series (exp(x) would overflow near 709).
_ASYMPTOTIC_X = 500.0
_TRAPEZOID_STEP = 0.1


def scaled_exp1(x) -> np.ndarray:
    """e^x · E1(x) for x > 0, stable for any large x (asymptotic series above x = 500, rel. error < 1e-13)."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    big = x > _ASYMPTOTIC_X
    small = ~big
    out[small] = np.exp(x[small]) * exp1(x[small])
    xb = x[big]
    inv = 1.0 / xb
    # e^x E1(x) ~ (1/x) Σ (-1)^n n! / x^n; 6 terms: truncation ≈ 720 / x^7 relative.
    out[big] = inv * (1 + inv * (-1 + inv * (2 + inv * (-6 + inv * (24 + inv * (-120))))))
    return out


def ergodic_spectral_efficiency_rayleigh(snr_linear) -> np.ndarray:
    """E[log2(1 + snr |h|^2)] for |h|^2 ~ Exp(1), in bit/s/Hz: exp(1/snr) E1(1/snr) / ln 2 (0 at snr = 0)."""
    snr = check_nonnegative("ergodic_spectral_efficiency_rayleigh", "snr_linear", snr_linear)
    shape = snr.shape
    snr = np.atleast_1d(snr)
    out = np.zeros_like(snr)
    pos = snr > 0
    out[pos] = scaled_exp1(1.0 / snr[pos]) / _LN2
    return out.reshape(shape)


def _rician_log_mgf(t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """ln E[exp(-t X)] for X = |h|^2, Rician with K-factor k and E[X] = 1 (accurate for small t too)."""
    a = k + 1.0
    return -np.log1p(t / a) - k * t / (a + t)


def ergodic_spectral_efficiency_rician(snr_linear, k_factor_linear) -> np.ndarray:
    """E[log2(1 + snr |h|^2)] for Rician fading with K-factor ``k_factor_linear`` (linear, >= 0; 0 = Rayleigh)
    and E|h|^2 = 1, in bit/s/Hz. Arguments broadcast against each other (e.g. snr (K, S) with k (K, 1))."""
    where = "ergodic_spectral_efficiency_rician"
    snr = check_nonnegative(where, "snr_linear", snr_linear)
    k = check_nonnegative(where, "k_factor_linear", k_factor_linear)
    snr, k = np.broadcast_arrays(snr, k)
    shape = snr.shape
    s = snr.ravel()
    kk = k.ravel()
    out = np.zeros(s.shape, dtype=float)
    pos = s > 0
    if np.any(pos):
        sp, kp = s[pos], kk[pos]
        # Grid in v = ln z: the integrand ~ snr e^v for v << -ln snr and ~ exp(-e^v) for v >> 0.
        v_lo = min(-np.log(sp.max()), 0.0) - 40.0
        v = np.arange(v_lo, 4.5, _TRAPEZOID_STEP)
        z = np.exp(v)
        weight = np.exp(-z)  # e^{-z} / z · dz/dv = e^{-z}
        out_pos = np.empty(sp.shape)
        chunk = max(1, 2_000_000 // v.size)  # bound the temporary (chunk, len(v)) array
        for i in range(0, sp.size, chunk):
            t = sp[i:i + chunk, None] * z[None, :]
            integrand = -np.expm1(_rician_log_mgf(t, kp[i:i + chunk, None]))
            out_pos[i:i + chunk] = _TRAPEZOID_STEP * (integrand * weight).sum(axis=1)
        out[pos] = out_pos / _LN2
    return out.reshape(shape)


def ergodic_rate_bps(power_w, gain_linear, bandwidth_hz, noise_psd_w_per_hz, k_factor_linear=0.0) -> np.ndarray:
    """B · E[log2(1 + p G |h|^2 / (N0 B))] in bit/s, with G the large-scale (mean) gain; broadcasts."""
    where = "ergodic_rate_bps"
    p = check_nonnegative(where, "power_w", power_w, "W")
    g = check_nonnegative(where, "gain_linear", gain_linear)
    b = check_nonnegative(where, "bandwidth_hz", bandwidth_hz, "Hz")
    n0 = check_positive(where, "noise_psd_w_per_hz", noise_psd_w_per_hz, "W/Hz")
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(b > 0, p * g / (n0 * np.where(b > 0, b, 1.0)), 0.0)
    return b * ergodic_spectral_efficiency_rician(snr, k_factor_linear)


__all__ = ["ergodic_rate_bps", "ergodic_spectral_efficiency_rayleigh", "ergodic_spectral_efficiency_rician",
           "scaled_exp1"]
