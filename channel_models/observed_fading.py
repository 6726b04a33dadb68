"""Block fading drawn only where something observes it, and transfers of S bits across fading blocks.

:class:`BlockFading` advances every client and subchannel one block at a time, which is what an
ergodic average needs. A discrete-event simulation looks at the channel differently: client k
looks at its own subchannels of one band while it transmits there and not at all while it
computes or waits. :class:`ObservedFading` keeps one Gauss-Markov state per client and
subchannel and advances it straight to the block being observed:

* the AR(1) d[n] = rho d[n-1] + sqrt(1 - rho^2) w[n] over m blocks is d[n+m] = rho^m d[n] +
  sqrt(1 - rho^(2m)) w', w' ~ CN(0, 1) (the m innovations summed), so skipping m unobserved blocks
  costs one draw and is exact in law;
* a subchannel never observed before starts from the stationary law CN(0, 1), like block 0 of
  :class:`BlockFading`;
* each client draws from its own random stream (a child of the band's seed sequence), so the
  fading a client sees does not depend on when the other clients happen to transmit.

With a coherence bandwidth the subchannels of a band are correlated: then a client's whole band is
advanced together (innovations correlated through the Cholesky factor of R_ij = exp(-|f_i - f_j| /
B_c); the m-block innovation has covariance (1 - rho^(2m)) R as well), which keeps the joint law
exact; only the columns asked for are returned.

:func:`transfer_over_blocks` delivers S bits from time t0: the rate is constant within a block
(powers fixed) and changes between blocks, so the transfer ends at the first t with
integral_{t0}^{t} R(u) du = S. It draws the blocks it needs in chunks (vectorised AR(1) via
``scipy.signal.lfilter``), finds the end block by a cumulative sum and leaves the client's state at
the end block: the blocks of the last chunk past the end are discarded, which is exact because
future innovations are independent of the past. Cost: a few numpy calls per transfer, whatever
the number of blocks it spans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .errors import ChannelModelError
from ._validation import broadcast_to_shape, check_integer, check_nonnegative, check_positive
from .fading import gauss_markov_rho, subchannel_correlation_factor

_LN2 = np.log(2.0)
# A transfer that needs more blocks than this is treated as a dead link (e.g. every power is zero).
MAX_TRANSFER_BLOCKS = 50_000_000


class TransferError(ChannelModelError):
    """A transfer cannot finish: no positive rate on any of its blocks within the bound."""


def _child_rng(seed_sequence: np.random.SeedSequence, client: int) -> np.random.Generator:
    child = np.random.SeedSequence(entropy=seed_sequence.entropy,
                                   spawn_key=tuple(seed_sequence.spawn_key) + (int(client),))
    return np.random.Generator(np.random.PCG64(child))


class ObservedFading:
    """Per-client Gauss-Markov Rayleigh/Rician fading of one band, drawn lazily where observed.

    rician_k_linear, doppler_hz: (K,) or scalar. block_s: T_c [s]. seed_sequence: the band's
    ``numpy.random.SeedSequence``; client k draws from its child with spawn key (..., k).
    Blocks are indexed n = floor(t / T_c); each client must be observed at non-decreasing blocks
    (observing the current block again returns the same coefficients).
    """

    def __init__(self, num_clients: int, num_subchannels: int, rician_k_linear, doppler_hz, block_s: float,
                 seed_sequence: np.random.SeedSequence, *, coherence_bandwidth_hz=None, subchannel_bandwidth_hz=None):
        where = "ObservedFading"
        k = int(check_integer(where, "num_clients", num_clients, 1))
        s = int(check_integer(where, "num_subchannels", num_subchannels, 1))
        kf = check_nonnegative(where, "rician_k_linear",
                               broadcast_to_shape(where, "rician_k_linear", rician_k_linear, (k,)))
        fd = check_nonnegative(where, "doppler_hz", broadcast_to_shape(where, "doppler_hz", doppler_hz, (k,)), "Hz")
        self.block_s = float(check_positive(where, "block_s", block_s, "s"))
        self.num_clients, self.num_subchannels = k, s
        self.rho = np.asarray(gauss_markov_rho(fd, self.block_s), dtype=float)
        self._diffuse_amp = np.sqrt(1.0 / (kf + 1.0))
        self._spec_amp = np.sqrt(kf / (kf + 1.0))
        self._seed = seed_sequence
        self._factor = None
        if coherence_bandwidth_hz is not None:
            bw = broadcast_to_shape(where, "subchannel_bandwidth_hz", subchannel_bandwidth_hz, (s,))
            self._factor = subchannel_correlation_factor(bw, coherence_bandwidth_hz)
        self._recent = None
        self._rng: dict[int, np.random.Generator] = {}
        # per client: last observed block per subchannel (-1: never), diffuse part there, specular part
        self._last: dict[int, np.ndarray] = {}
        self._diffuse: dict[int, np.ndarray] = {}
        self._specular: dict[int, np.ndarray] = {}
        self.blocks_drawn = 0

    @property
    def correlated(self) -> bool:
        return self._factor is not None

    def _client_state(self, client: int):
        if client not in self._rng:
            if not 0 <= client < self.num_clients:
                raise TransferError(f"ObservedFading: client={client} is outside 0..{self.num_clients - 1}")
            rng = _child_rng(self._seed, client)
            self._rng[client] = rng
            self._last[client] = np.full(self.num_subchannels, -1, dtype=np.int64)
            self._diffuse[client] = np.zeros(self.num_subchannels, dtype=complex)
            phase = rng.random(self.num_subchannels) * (2.0 * np.pi)
            self._specular[client] = self._spec_amp[client] * np.exp(1j * phase)
        return self._rng[client], self._last[client], self._diffuse[client]

    def _normals(self, rng: np.random.Generator, shape) -> np.ndarray:
        """CN(0, 1) innovations of the given shape (..., S_cols), frequency-correlated when configured."""
        w = rng.standard_normal(tuple(shape) + (2,)).view(complex)[..., 0] / np.sqrt(2.0)
        if self._factor is not None:
            w = w @ self._factor.T
        return w

    def _columns(self, subchannels: np.ndarray) -> np.ndarray:
        """Which subchannels a draw advances: the requested ones, or the whole band when correlated."""
        return np.arange(self.num_subchannels) if self._factor is not None else subchannels

    def _start(self, client: int, cols: np.ndarray, block: int) -> np.ndarray:
        """Diffuse part at ``block`` on ``cols`` (scaled by the diffuse amplitude), advancing exactly."""
        rng, last, diffuse = self._client_state(client)
        prev = last[cols]
        if np.any(prev > block):
            raise TransferError(f"ObservedFading: client {client} observed at block {block} after block "
                                f"{int(prev.max())}; observations must not go back in time")
        amp = self._diffuse_amp[client]
        rho = self.rho[client]
        steps = block - prev
        fresh = prev < 0
        # rho^m and sqrt(1 - rho^(2m)); a never-observed subchannel is stationary (rho^inf = 0)
        with np.errstate(over="ignore", under="ignore"):
            decay = np.where(fresh, 0.0, np.power(rho, np.where(fresh, 1, steps).astype(float)))
        if self._factor is None:
            innovation = self._normals(rng, (cols.size,))
        else:
            innovation = self._normals(rng, (1, self.num_subchannels))[0]
        value = decay * diffuse[cols] + np.sqrt(np.maximum(0.0, 1.0 - decay ** 2)) * amp * innovation
        # observing the same block again: keep the coefficients already seen
        same = steps == 0
        return np.where(same & ~fresh, diffuse[cols], value)

    def draw(self, client: int, subchannels, first_block: int, num_blocks: int) -> np.ndarray:
        """Coefficients h (num_blocks, len(subchannels)) of blocks first_block .. first_block + num_blocks - 1.

        The client's state moves to the last block drawn; :meth:`keep` moves it back to an earlier
        block of this draw.
        """
        client = int(client)
        subs = np.asarray(subchannels, dtype=np.int64)
        n = int(num_blocks)
        cols = self._columns(subs)
        d0 = self._start(client, cols, int(first_block))
        rho = self.rho[client]
        if n > 1:
            innov = self._normals(self._rng[client], (n - 1, cols.size))
            x = (np.sqrt(1.0 - rho * rho) * self._diffuse_amp[client]) * innov
            rest, _ = lfilter([1.0], [1.0, -rho], x, axis=0, zi=(rho * d0)[None, :])
            diffuse = np.vstack([d0[None, :], rest])
        else:
            diffuse = d0[None, :]
        self._set(client, cols, first_block + n - 1, diffuse[-1])
        self._recent = (client, int(first_block), cols, diffuse)
        self.blocks_drawn += n * cols.size
        pick = np.searchsorted(cols, subs) if self._factor is not None else slice(None)
        return diffuse[:, pick] + self._specular[client][subs][None, :]

    def keep(self, client: int, block: int) -> None:
        """Move the client's state back to ``block`` of its latest :meth:`draw` (the rows after it are
        forgotten, which is exact: they depend on the past only through that block)."""
        recent = self._recent
        if recent is None or recent[0] != int(client) or not 0 <= block - recent[1] < recent[3].shape[0]:
            raise TransferError(f"ObservedFading.keep: block {block} of client {client} is not in its latest draw")
        _, first, cols, diffuse = recent
        self._set(int(client), cols, int(block), diffuse[block - first])

    def _set(self, client: int, cols: np.ndarray, block: int, diffuse_row: np.ndarray) -> None:
        self._last[client][cols] = block
        self._diffuse[client][cols] = diffuse_row


@dataclass(frozen=True)
class TransferResult:
    """End time of a transfer and its piecewise-constant rate: segment i runs [starts_s[i], ends_s[i])."""

    end_s: float
    starts_s: np.ndarray
    ends_s: np.ndarray
    rates_bps: np.ndarray


def _block_rates_bps(h: np.ndarray, snr_scale: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray:
    """Client rate per block: sum_i B_i log2(1 + (p_i G / (N0 B_i)) |h_i|^2)."""
    power = h.real * h.real + h.imag * h.imag
    return (np.log1p(power * snr_scale[None, :]) * bandwidth_hz[None, :]).sum(axis=1) / _LN2


def block_index(time_s: float, block_s: float) -> int:
    """Index n of the block [n T_c, (n+1) T_c) that holds ``time_s`` (robust to rounding at edges)."""
    n = int(np.floor(time_s / block_s))
    if (n + 1) * block_s <= time_s:
        n += 1
    elif n * block_s > time_s:
        n -= 1
    return n


def transfer_over_blocks(fading: ObservedFading, client: int, subchannels, power_w, bandwidth_hz,
                         large_scale_gain: float, noise_psd_w_per_hz: float, start_s: float, bits: float,
                         *, chunk_blocks: int | None = None) -> TransferResult:
    """Deliver ``bits`` from ``start_s`` on ``subchannels`` with fixed powers over a block-fading channel.

    power_w, bandwidth_hz: (len(subchannels),) [W], [Hz]. Returns the end time and the rate of every
    block segment the transfer used (the first and last segments are partial blocks).
    """
    subs = np.asarray(subchannels, dtype=np.int64)
    p = np.asarray(power_w, dtype=float)
    bw = np.asarray(bandwidth_hz, dtype=float)
    if bits <= 0:
        return TransferResult(float(start_s), np.empty(0), np.empty(0), np.empty(0))
    if subs.size == 0:
        raise TransferError(f"client {client} has no subchannel to send {bits:g} bits on")
    tc = fading.block_s
    snr_scale = p * float(large_scale_gain) / (noise_psd_w_per_hz * bw)
    if chunk_blocks is None:
        mean_rate = float(np.sum(bw * np.log1p(snr_scale)) / _LN2)
        expected = bits / (mean_rate * tc) if mean_rate > 0 else 64.0
        chunk_blocks = int(min(1 << 16, max(8, np.ceil(1.3 * expected) + 4)))
    n0 = block_index(start_s, tc)
    first_len = (n0 + 1) * tc - start_s
    delivered = 0.0
    block = n0
    starts, ends, rates = [], [], []
    drawn = 0
    while True:
        h = fading.draw(client, subs, block, chunk_blocks)
        r = _block_rates_bps(h, snr_scale, bw)
        lengths = np.full(chunk_blocks, tc)
        seg_start = block * tc + np.arange(chunk_blocks) * tc
        if block == n0:
            lengths[0] = first_len
            seg_start[0] = start_s
        cum = delivered + np.cumsum(r * lengths)
        j = int(np.searchsorted(cum, bits, side="left"))
        if j < chunk_blocks and r[j] > 0:
            before = cum[j - 1] if j > 0 else delivered
            end = seg_start[j] + (bits - before) / r[j]
            end = min(max(end, seg_start[j]), seg_start[j] + lengths[j])
            fading.keep(client, block + j)
            seg_end = seg_start[: j + 1] + lengths[: j + 1]
            seg_end[j] = end
            starts.append(seg_start[: j + 1])
            ends.append(seg_end)
            rates.append(r[: j + 1])
            break
        starts.append(seg_start)
        ends.append(seg_start + lengths)
        rates.append(r)
        delivered = float(cum[-1])
        block += chunk_blocks
        drawn += chunk_blocks
        if drawn > MAX_TRANSFER_BLOCKS:
            raise TransferError(f"client {client}: {bits:g} bits not delivered within {MAX_TRANSFER_BLOCKS} "
                                f"fading blocks (is every power zero?)")
    return TransferResult(float(end), np.concatenate(starts), np.concatenate(ends), np.concatenate(rates))
