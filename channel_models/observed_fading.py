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

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .errors import ChannelModelError
from ._validation import broadcast_to_shape, check_integer, check_nonnegative, check_positive
from .fading import gauss_markov_rho, subchannel_correlation_factor

_LN2 = np.log(2.0)
_ONE = (1.0,)
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

    def _check_subchannels(self, subchannels) -> np.ndarray:
        subs = np.asarray(subchannels, dtype=np.int64)
        if subs.ndim != 1:
            subs = subs.reshape(-1)
        if subs.size:
            if subs[0] < 0 or subs[-1] >= self.num_subchannels or (subs.size > 1 and np.any(subs[1:] <= subs[:-1])):
                raise TransferError(f"ObservedFading: subchannels {subs.tolist()[:8]} must be strictly increasing "
                                    f"indices in 0..{self.num_subchannels - 1}")
        return subs

    def draw(self, client: int, subchannels, first_block: int, num_blocks: int) -> np.ndarray:
        """Coefficients h (num_blocks, len(subchannels)) of blocks first_block .. first_block + num_blocks - 1.

        ``subchannels``: strictly increasing indices. The client's state moves to the last block drawn;
        :meth:`keep` moves it back to an earlier block of this draw.
        """
        client, first_block, n = int(client), int(first_block), int(num_blocks)
        if n < 1:
            raise TransferError(f"ObservedFading.draw: num_blocks={num_blocks} must be >= 1")
        subs = self._check_subchannels(subchannels)
        rng, last, state = self._client_state(client)
        factor = self._factor
        if factor is None and subs.size == 1:
            return self._draw_one(client, int(subs[0]), first_block, n, rng, last, state)
        cols = subs if factor is None else np.arange(self.num_subchannels)
        prev = last[cols]
        steps = first_block - prev
        if np.any(steps < 0):
            raise TransferError(f"ObservedFading: client {client} observed at block {first_block} after block "
                                f"{int(prev.max())}; observations must not go back in time")
        rho, amp = self.rho[client], self._diffuse_amp[client]
        # all innovations in one draw: row 0 advances from the last observation, rows 1.. one block each
        w = rng.standard_normal((n, cols.size, 2)).view(complex)[..., 0]
        if factor is not None:
            w = w @ factor.T
        x = w * (amp * np.sqrt(0.5 * (1.0 - rho * rho)))
        fresh = prev < 0
        # rho^m over the m skipped blocks and sqrt(1 - rho^(2m)); never observed: stationary (rho^inf = 0)
        decay = np.where(fresh, 0.0, rho ** np.where(fresh, 0, steps).astype(float))
        first = decay * state[cols] + np.sqrt(0.5 * (1.0 - decay * decay)) * amp * w[0]
        # observing the same block again gives the coefficients already seen
        x[0] = np.where((steps == 0) & ~fresh, state[cols], first)
        diffuse = lfilter([1.0], [1.0, -rho], x, axis=0) if n > 1 else x
        self._set(client, cols, first_block + n - 1, diffuse[-1])
        self._recent = (client, first_block, cols, diffuse)
        if factor is not None:
            diffuse = diffuse[:, subs]
        return diffuse + self._specular[client][subs]

    def _draw_one(self, client, sub, first_block, n, rng, last, state) -> np.ndarray:
        """:meth:`draw` for one independent subchannel, in scalars (the common case of a crowded band)."""
        prev = int(last[sub])
        if prev > first_block:
            raise TransferError(f"ObservedFading: client {client} observed at block {first_block} after block "
                                f"{prev}; observations must not go back in time")
        rho, amp = float(self.rho[client]), float(self._diffuse_amp[client])
        w = rng.standard_normal(2 * n).view(complex)
        x = w * (amp * math.sqrt(0.5 * (1.0 - rho * rho)))
        if prev < 0:
            x[0] = math.sqrt(0.5) * amp * w[0]
        elif prev == first_block:
            x[0] = state[sub]
        else:
            decay = rho ** (first_block - prev)
            x[0] = decay * state[sub] + math.sqrt(0.5 * (1.0 - decay * decay)) * amp * w[0]
        diffuse = (lfilter(_ONE, (1.0, -rho), x) if n > 1 else x)[:, None]
        cols = np.array([sub])
        last[sub] = first_block + n - 1
        state[sub] = diffuse[-1, 0]
        self._recent = (client, first_block, cols, diffuse)
        return diffuse + self._specular[client][sub]

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
    rates = np.log1p(power * snr_scale)
    if rates.shape[1] == 1:
        return rates[:, 0] * (bandwidth_hz[0] / _LN2)
    return (rates * bandwidth_hz).sum(axis=1) / _LN2


def block_index(time_s: float, block_s: float) -> int:
    """Index n of the block [n T_c, (n+1) T_c) that holds ``time_s`` (robust to rounding at edges)."""
    n = int(time_s // block_s)
    if (n + 1) * block_s <= time_s:
        n += 1
    elif n * block_s > time_s:
        n -= 1
    return n


def transfer_over_blocks(fading: ObservedFading, client: int, subchannels, power_w, bandwidth_hz,
                         large_scale_gain: float, noise_psd_w_per_hz: float, start_s: float, bits: float,
                         *, chunk_blocks: int | None = None, segments: bool = True) -> TransferResult:
    """Deliver ``bits`` from ``start_s`` on ``subchannels`` with fixed powers over a block-fading channel.

    power_w, bandwidth_hz: (len(subchannels),) [W], [Hz]. Returns the end time and, with ``segments``, the
    rate of every block segment the transfer used (the first and last segments are partial blocks).
    """
    subs = np.asarray(subchannels, dtype=np.int64)
    p = np.asarray(power_w, dtype=float)
    bw = np.asarray(bandwidth_hz, dtype=float)
    empty = np.empty(0)
    if bits <= 0:
        return TransferResult(float(start_s), empty, empty, empty)
    if subs.size == 0:
        raise TransferError(f"client {client} has no subchannel to send {bits:g} bits on")
    tc = fading.block_s
    snr_scale = p * (float(large_scale_gain) / noise_psd_w_per_hz) / bw
    if chunk_blocks is not None:
        chunk_blocks = int(check_integer("transfer_over_blocks", "chunk_blocks", chunk_blocks, 1))
    else:
        # enough blocks for the mean-gain rate and some margin (fading lowers the mean rate: Jensen)
        mean_rate = float(np.dot(bw, np.log1p(snr_scale))) / _LN2
        expected = bits / (mean_rate * tc) if mean_rate > 0 else 64.0
        chunk_blocks = int(min(1 << 16, 1.3 * expected + 8))
    n0 = block_index(start_s, tc)
    delivered = 0.0
    block = n0
    starts, ends, rates = [], [], []
    while True:
        r = _block_rates_bps(fading.draw(client, subs, block, chunk_blocks), snr_scale, bw)
        # block edges computed once, so consecutive segments share their edge exactly
        edges = np.arange(block, block + chunk_blocks + 1) * tc
        seg_start, seg_stop = edges[:-1], edges[1:]
        if block == n0:
            seg_start = seg_start.copy()
            seg_start[0] = start_s
        cum = np.cumsum(r * (seg_stop - seg_start))
        cum += delivered
        j = int(cum.searchsorted(bits))
        if j < chunk_blocks and r[j] > 0:
            before = cum[j - 1] if j > 0 else delivered
            end = min(max(seg_start[j] + (bits - before) / r[j], seg_start[j]), seg_stop[j])
            fading.keep(client, block + j)
            if segments:
                seg_end = seg_stop[: j + 1].copy()
                seg_end[j] = end
                starts.append(seg_start[: j + 1])
                ends.append(seg_end)
                rates.append(r[: j + 1])
            break
        if segments:
            starts.append(seg_start)
            ends.append(seg_stop)
            rates.append(r)
        delivered = float(cum[-1])
        block += chunk_blocks
        if block - n0 > MAX_TRANSFER_BLOCKS:
            raise TransferError(f"client {client}: {bits:g} bits not delivered within {MAX_TRANSFER_BLOCKS} "
                                f"fading blocks (is every power zero?)")
    if not segments:
        return TransferResult(float(end), empty, empty, empty)
    if len(starts) == 1:
        return TransferResult(float(end), starts[0], ends[0], rates[0])
    return TransferResult(float(end), np.concatenate(starts), np.concatenate(ends), np.concatenate(rates))
