"""Small-scale block fading: Rayleigh/Rician per client and subchannel with Gauss-Markov time
correlation (system model, section 2).

* Doppler f_D = v f_c / c and the one-block correlation rho = J0(2 pi f_D T_c) (Clarke/Jakes
  spectrum, whose autocorrelation is J0 of the time lag), with T_c the block length.
* h = sqrt(K/(K+1)) exp(j phi) + sqrt(1/(K+1)) d, so E|h|^2 = 1. The specular (LOS) part has a
  fixed amplitude and a phase phi drawn once, uniform, per client x subchannel: phase rotation
  of the direct path over a few blocks is not modelled because |h|^2 statistics (all that the
  rates need) do not depend on it, and a per-subchannel phase avoids making subchannels
  artificially coherent. Rician K-factor means per scenario come from TR 38.901 Table 7.5-6.
* The diffuse part d ~ CN(0, 1) follows d[n] = rho d[n-1] + sqrt(1 - rho^2) w[n], w ~ CN(0, 1)
  i.i.d.; the first block is drawn from the stationary law CN(0, 1), so statistics do not
  depend on the block index.
* Optional frequency correlation: with a coherence bandwidth B_c, the innovations (and the first
  block) are correlated across subchannels as exp(-|f_i - f_j| / B_c) between subchannel centres
  through a Cholesky factor; a linear AR(1) with such innovations keeps that covariance in
  every block. Without B_c subchannels fade independently.

Performance (see ``fsllm_sim.benchmarks.fading``): the state is held as an interleaved real
array (K, S, 2) that the generator fills in one ``standard_normal(out=...)`` call; the AR(1)
update runs in place with pre-scaled per-client coefficients, and the only allocation per block
is the returned array (a fresh array, so a caller can keep old blocks).

Precision: the default is complex64, as in Sionna. Fading enters the simulator only through
|h|^2 in Shannon rates, where float32's 6e-8 relative error is far below any modelling error;
the AR(1) recursion does not accumulate rounding because |rho| < 1 damps it; and
``gains_from_fading`` squares in float64. Single precision halves the memory traffic of the hot
loop, which keeps it near the cost of drawing the normals themselves (about 1.1x a bare float64
draw, against about 1.4x for complex128). ``dtype=np.complex128`` is available.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy.constants import c as SPEED_OF_LIGHT_MPS
from scipy.special import j0

from .errors import ValidityRangeError

from ._validation import (broadcast_to_shape, check_choice, check_integer, check_nonnegative,
                          check_positive, check_range)
from .units import db_to_linear

# TR 38.901 Table 7.5-6: Rician K-factor (dB), mean and std, LOS links only.
_K_FACTOR_DB = {"uma": (9.0, 3.5), "umi": (9.0, 5.0), "rma": (7.0, 4.0)}


def doppler_hz(speed_mps, carrier_hz):
    """Maximum Doppler shift f_D = v f_c / c."""
    v = check_nonnegative("doppler_hz", "speed_mps", speed_mps, "m/s")
    fc = check_positive("doppler_hz", "carrier_hz", carrier_hz, "Hz")
    return v * fc / SPEED_OF_LIGHT_MPS


def gauss_markov_rho(doppler_hz, block_s):
    """Correlation between consecutive blocks, J0(2 pi f_D T_c).

    J0 turns negative for f_D T_c > 0.38 (fast users, long blocks); it is kept as is, because
    that is the Clarke correlation at that lag and any |rho| <= 1 gives a valid AR(1).
    """
    fd = check_nonnegative("gauss_markov_rho", "doppler_hz", doppler_hz, "Hz")
    t = check_positive("gauss_markov_rho", "block_s", block_s, "s")
    return j0(2.0 * np.pi * fd * t)


def rician_k_db_to_linear(k_db):
    """Linear K-factor; -inf dB gives 0 (Rayleigh)."""
    k = check_range("rician_k_db_to_linear", "k_db", k_db, -np.inf, np.inf, "dB", high_open=True)
    return db_to_linear(k)


def rician_k_factor_db(scenario: str) -> tuple[float, float]:
    """(mean, std) of the LOS K-factor in dB per TR 38.901 Table 7.5-6."""
    check_choice("rician_k_factor_db", "scenario", scenario, tuple(_K_FACTOR_DB))
    return _K_FACTOR_DB[scenario]


def subchannel_correlation_factor(subchannel_bandwidth_hz, coherence_bandwidth_hz) -> np.ndarray:
    """Lower Cholesky factor L of R_ij = exp(-|f_i - f_j| / B_c) over adjacent subchannel centres."""
    where = "subchannel_correlation_factor"
    bw = np.atleast_1d(check_positive(where, "subchannel_bandwidth_hz", subchannel_bandwidth_hz, "Hz"))
    bc = float(check_positive(where, "coherence_bandwidth_hz", coherence_bandwidth_hz, "Hz"))
    centres = np.cumsum(bw) - bw / 2.0
    corr = np.exp(-np.abs(centres[:, None] - centres[None, :]) / bc)
    # exp(-|x|) is a strictly positive-definite kernel on the line and the centres are
    # distinct, so the factor exists; tiny B_c only makes R closer to the identity.
    return np.linalg.cholesky(corr)


class BlockFading:
    """Generator of complex block-fading coefficients h (K, S) with E|h|^2 = 1.

    rician_k_linear: (K,) or scalar, 0 = Rayleigh. doppler_hz: (K,) or scalar. block_s: T_c.
    coherence_bandwidth_hz with subchannel_bandwidth_hz ((S,) or scalar) correlates subchannels.
    Everything random comes from ``rng``, so the same seed (and dtype) gives the same blocks.
    dtype: complex64 (default, see the module docstring) or complex128.
    """

    def __init__(self, num_clients: int, num_subchannels: int, rician_k_linear, doppler_hz,
                 block_s: float, rng: np.random.Generator, *, coherence_bandwidth_hz=None,
                 subchannel_bandwidth_hz=None, dtype=np.complex64):
        where = "BlockFading"
        k = int(check_integer(where, "num_clients", num_clients, 1))
        s = int(check_integer(where, "num_subchannels", num_subchannels, 1))
        kf = check_nonnegative(where, "rician_k_linear",
                               broadcast_to_shape(where, "rician_k_linear", rician_k_linear, (k,)))
        fd = check_nonnegative(where, "doppler_hz",
                               broadcast_to_shape(where, "doppler_hz", doppler_hz, (k,)), "Hz")
        self.block_s = float(check_positive(where, "block_s", block_s, "s"))
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.complex64), np.dtype(np.complex128)):
            raise ValidityRangeError(f"{where}: dtype={dtype} is not one of complex64, complex128")
        if not isinstance(rng, np.random.Generator):
            raise ValidityRangeError(f"{where}: rng={rng!r} is not a numpy.random.Generator")
        self.num_clients, self.num_subchannels = k, s
        self.rician_k_linear = kf.copy()
        self.doppler_hz = fd.copy()
        self.rho = gauss_markov_rho(fd, self.block_s)
        self._rng = rng
        self._dtype = dtype
        self._real = np.float32 if dtype == np.complex64 else np.float64

        self._freq_factor = None
        if coherence_bandwidth_hz is not None:
            if subchannel_bandwidth_hz is None:
                raise ValidityRangeError(
                    f"{where}: subchannel_bandwidth_hz is required with coherence_bandwidth_hz")
            bw = broadcast_to_shape(where, "subchannel_bandwidth_hz", subchannel_bandwidth_hz, (s,))
            self._freq_factor = subchannel_correlation_factor(bw, coherence_bandwidth_hz)

        diffuse_amp = np.sqrt(1.0 / (kf + 1.0))
        # Per real component: CN(0, 1) has variance 1/2 in each of real and imaginary part.
        self._first_scale = (diffuse_amp / np.sqrt(2.0)).astype(self._real)[:, None, None]
        self._rho_r = self.rho.astype(self._real)[:, None, None]
        self._innov_scale = (diffuse_amp * np.sqrt(1.0 - self.rho**2) / np.sqrt(2.0)
                             ).astype(self._real)[:, None, None]

        self._has_specular = bool(np.any(kf > 0))
        spec_amp = np.sqrt(kf / (kf + 1.0))
        phase = rng.random((k, s)) * (2.0 * np.pi)
        self._specular = (spec_amp[:, None] * np.exp(1j * phase)).astype(dtype)
        self._spec_f = self._specular.view(self._real).reshape(k, s, 2)

        self._noise = np.empty((k, s, 2), dtype=self._real)
        self._state = None  # scaled diffuse part sqrt(1/(K+1)) d, interleaved re/im

    @property
    def specular(self) -> np.ndarray:
        """The fixed LOS component sqrt(K/(K+1)) exp(j phi), (K, S) complex (a copy)."""
        return self._specular.copy()

    @property
    def diffuse(self) -> np.ndarray:
        """Scattered part sqrt(1/(K+1)) d of the latest block, (K, S) complex (a copy)."""
        if self._state is None:
            raise ValidityRangeError("BlockFading.diffuse: no block has been drawn yet")
        return self._state.view(self._dtype)[..., 0].copy()

    def _draw_innovation(self) -> np.ndarray:
        w = self._noise
        self._rng.standard_normal(out=w, dtype=self._real)
        if self._freq_factor is None:
            return w
        # Correlate along the subchannel axis: (S, S) applied to every client and component.
        return np.ascontiguousarray(
            np.moveaxis(np.tensordot(self._freq_factor, w, axes=([1], [1])), 0, 1),
            dtype=self._real)

    def next_block(self) -> np.ndarray:
        """Advance one block and return h (K, S) complex."""
        w = self._draw_innovation()
        if self._state is None:
            self._state = np.multiply(w, self._first_scale)
        else:
            state = self._state
            np.multiply(state, self._rho_r, out=state)
            np.multiply(w, self._innov_scale, out=w)
            np.add(state, w, out=state)
        out = np.add(self._state, self._spec_f) if self._has_specular else self._state.copy()
        return out.view(self._dtype)[..., 0]

    def blocks(self, n: int) -> Iterator[np.ndarray]:
        """Yield the next ``n`` blocks."""
        count = int(check_integer("BlockFading.blocks", "n", n, 0))
        for _ in range(count):
            yield self.next_block()


def gains_from_fading(large_scale_gain_linear, h) -> np.ndarray:
    """Power gains g_{k,i} = G_k |h_{k,i}|^2, (K, S) float64."""
    g = check_nonnegative("gains_from_fading", "large_scale_gain_linear", large_scale_gain_linear)
    h = np.asarray(h)
    if g.ndim != 1 or h.ndim != 2 or h.shape[0] != g.shape[0]:
        raise ValidityRangeError(
            f"gains_from_fading: shapes {g.shape} and {h.shape} do not match (K,) and (K, S)")
    power = np.square(h.real, dtype=np.float64) + np.square(h.imag, dtype=np.float64)
    return g[:, None] * power
