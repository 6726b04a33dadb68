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
integral_{t0}^{t} R(u) du = S. On independent subchannels it runs in one compiled pass
(:mod:`channel_models.fading_kernels`: the recursion, the rate and the search fused, a few
nanoseconds a block-subchannel coefficient) that draws blocks up to the end block and no further and
leaves the client's state there. With a coherence bandwidth it draws the blocks in chunks (vectorised
AR(1) via ``scipy.signal.lfilter``), finds the end block by a cumulative sum and discards the blocks of
the last chunk past the end, which is exact because future innovations are independent of the past.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .errors import ChannelModelError
from ._validation import broadcast_to_shape, check_integer, check_nonnegative, check_positive
from . import fading_kernels as kernels
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


# a client's normal buffer holds this many: a refill every few transfers, 8 KiB of fresh memory a client (a larger
# buffer's first fill into new pages cost twice an in-place refill, and its unread rest is never used)
MIN_NORMALS = 1024
_EMPTY = np.empty(0)
_EMPTY.flags.writeable = False


class _Client:
    """One client's fading on independent subchannels: its stream and its buffer of normals, and one row per
    subchannel it has observed (sorted ``subs``): the block last observed there (``last``) and (Re d, Im d, Re s,
    Im s) there (``state``: diffuse and specular parts)."""

    __slots__ = ("rng", "z", "pos", "subs", "last", "state", "recent", "link", "coeffs")

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.z = np.empty(0)
        self.pos = 0
        self.subs = np.empty(0, dtype=np.int64)
        self.last = np.empty(0, dtype=np.int64)
        self.state = np.empty((0, 4))
        self.recent = None  # (first_block, rows, diffuse (n, S, 2)) of the latest draw or kept transfer
        # (subs, power, bandwidth, gain, scale, B / ln 2, state rows, mean-gain rate) of the link in use: its
        # arrays are fixed for a round, so they are its key
        self.link = None
        self.coeffs = None  # (rho, sqrt((1 - rho^2) / 2) a, a, specular amplitude)

    def rows(self, subs: np.ndarray) -> np.ndarray:
        """The state rows of ``subs`` (strictly increasing), added (never observed) where missing."""
        at = np.searchsorted(self.subs, subs)
        if at.size and (at[-1] >= self.subs.size or np.any(self.subs[np.minimum(at, self.subs.size - 1)] != subs)):
            known = np.union1d(self.subs, subs)
            moved = np.searchsorted(known, self.subs)
            last = np.full(known.size, kernels.NEVER, dtype=np.int64)
            state = np.zeros((known.size, 4))
            last[moved], state[moved] = self.last, self.state
            self.subs, self.last, self.state = known, last, state
            self.recent = self.link = None  # their rows moved
            at = np.searchsorted(known, subs)
        return at

    def ensure(self, need: int) -> None:
        """At least ``need`` normals left in the buffer (the unread ones kept first: the stream's order)."""
        if self.pos + need <= self.z.size:
            return
        rest = self.z[self.pos:]
        if need <= self.z.size:  # refilled in place (warm memory, no new pages)
            z = self.z
            z[:rest.size] = rest.copy()
        else:
            z = np.empty(max(MIN_NORMALS, need))
            z[:rest.size] = rest
        self.rng.standard_normal(out=z[rest.size:])  # numpy's own fill: no per-call cost of handing numba the rng
        self.z, self.pos = z, 0


class ObservedFading:
    """Per-client Gauss-Markov Rayleigh/Rician fading of one band, drawn lazily where observed.

    rician_k_linear, doppler_hz: (K,) or scalar. block_s: T_c [s]. seed_sequence: the band's
    ``numpy.random.SeedSequence``; client k draws from its child with spawn key (..., k).
    Blocks are indexed n = floor(t / T_c); each client must be observed at non-decreasing blocks
    (observing the current block again returns the same coefficients).

    Independent subchannels run in the compiled kernels of :mod:`channel_models.fading_kernels` and keep state only
    for the subchannels a client has observed (memory per client: its own subchannels, not the band).
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
        self._clients: dict[int, _Client] = {}  # independent subchannels
        # correlated subchannels (a coherence bandwidth): the whole band per client, in numpy
        self._recent: dict[int, tuple] = {}  # per client: (first_block, cols, diffuse) of its latest draw
        self._rng: dict[int, np.random.Generator] = {}
        self._last: dict[int, np.ndarray] = {}
        self._diffuse: dict[int, np.ndarray] = {}
        self._specular: dict[int, np.ndarray] = {}
        self.blocks_drawn = 0  # block-subchannel coefficients drawn so far (the cost of the fading, in draws)

    @property
    def independent(self) -> bool:
        """Whether the subchannels fade independently (no coherence bandwidth): the compiled path."""
        return self._factor is None

    def _client(self, client: int) -> _Client:
        c = self._clients.get(client)
        if c is None:
            if not 0 <= client < self.num_clients:
                raise TransferError(f"ObservedFading: client={client} is outside 0..{self.num_clients - 1}")
            c = self._clients[client] = _Client(_child_rng(self._seed, client))
        return c

    def _coefficients(self, client: int, c: _Client):
        """(rho, sqrt((1 - rho^2) / 2) a, a, specular amplitude) of a client."""
        if c.coeffs is None:
            rho, amp = float(self.rho[client]), float(self._diffuse_amp[client])
            c.coeffs = (rho, math.sqrt(0.5 * (1.0 - rho * rho)) * amp, amp, float(self._spec_amp[client]))
        return c.coeffs

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

    def _backwards(self, client: int, block: int, c: _Client, rows) -> TransferError:
        return TransferError(f"ObservedFading: client {client} observed at block {block} after block "
                             f"{int(c.last[rows].max())}; observations must not go back in time")

    def draw(self, client: int, subchannels, first_block: int, num_blocks: int) -> np.ndarray:
        """Coefficients h (num_blocks, len(subchannels)) of blocks first_block .. first_block + num_blocks - 1.

        ``subchannels``: strictly increasing indices. The client's state moves to the last block drawn;
        :meth:`keep` moves it back to an earlier block of this draw.
        """
        client, first_block, n = int(client), int(first_block), int(num_blocks)
        if n < 1:
            raise TransferError(f"ObservedFading.draw: num_blocks={num_blocks} must be >= 1")
        subs = self._check_subchannels(subchannels)
        if self._factor is not None:
            return self._draw_correlated(client, subs, first_block, n)
        c = self._client(client)
        rows = c.rows(subs)
        c.ensure(2 * subs.size * (n + 1))
        out = np.empty((n, subs.size, 2))
        pos = kernels.draw_blocks(c.z, c.pos, rows, c.last, c.state, first_block, *self._coefficients(client, c),
                                  out)
        if pos == -2:
            raise self._backwards(client, first_block, c, rows)
        c.pos = pos
        self.blocks_drawn += n * subs.size
        c.recent = (first_block, rows, out)
        diffuse = out.view(complex)[..., 0]
        if self._spec_amp[client] == 0:
            view = diffuse.view()  # Rayleigh: the diffuse part itself, read-only (it is kept for keep())
            view.flags.writeable = False
            return view
        return diffuse + c.state[rows, 2:4].copy().view(complex)[:, 0]

    def _draw_correlated(self, client, subs, first_block, n) -> np.ndarray:
        rng, last, state = self._client_state(client)
        factor = self._factor
        self.blocks_drawn += n * self.num_subchannels
        cols = np.arange(self.num_subchannels)
        prev = last[cols]
        steps = first_block - prev
        if np.any(steps < 0):
            raise TransferError(f"ObservedFading: client {client} observed at block {first_block} after block "
                                f"{int(prev.max())}; observations must not go back in time")
        rho, amp = self.rho[client], self._diffuse_amp[client]
        # all innovations in one draw: row 0 advances from the last observation, rows 1.. one block each
        w = rng.standard_normal((n, cols.size, 2)).view(complex)[..., 0]
        w = w @ factor.T
        x = w * (amp * np.sqrt(0.5 * (1.0 - rho * rho)))
        fresh = prev < 0
        # rho^m over the m skipped blocks and sqrt(1 - rho^(2m)); never observed: stationary (rho^inf = 0)
        decay = np.where(fresh, 0.0, rho ** np.where(fresh, 0, steps).astype(float))
        first = decay * state[cols] + np.sqrt(0.5 * (1.0 - decay * decay)) * amp * w[0]
        # observing the same block again gives the coefficients already seen
        x[0] = np.where((steps == 0) & ~fresh, state[cols], first)
        diffuse = lfilter([1.0], [1.0, -rho], x, axis=0) if n > 1 else x
        self._last[client][cols] = first_block + n - 1
        self._diffuse[client][cols] = diffuse[-1]
        self._recent[client] = (first_block, cols, diffuse)
        return diffuse[:, subs] + self._specular[client][subs]

    def keep(self, client: int, block: int) -> None:
        """Move the client's state back to ``block`` of its latest :meth:`draw` (the rows after it are
        forgotten, which is exact: they depend on the past only through that block)."""
        client, block = int(client), int(block)
        if self._factor is None:
            c = self._clients.get(client)
            recent = None if c is None else c.recent
        else:
            recent = self._recent.get(client)
        if recent is None or not 0 <= block - recent[0] < recent[2].shape[0]:
            raise TransferError(f"ObservedFading.keep: block {block} of client {client} is not in its latest draw")
        first, cols, diffuse = recent
        if self._factor is None:
            c.last[cols] = block
            c.state[cols, 0:2] = diffuse[block - first]
        else:
            self._last[client][cols] = block
            self._diffuse[client][cols] = diffuse[block - first]

    def release(self, client: int, block: int) -> None:
        """After a transfer is cut short at ``block``: :meth:`keep` that block when it is in the client's latest
        draw; otherwise forget the client's state (its next observation starts from the stationary law, the
        exact law of a block seen after a long gap; the correlation with the cut transfer is then lost)."""
        try:
            self.keep(client, block)
        except TransferError:
            c = int(client)
            if self._factor is None:
                if c in self._clients:
                    cl = self._clients[c]
                    cl.last[cl.last >= 0] = kernels.FORGOTTEN  # the specular phases stay
            elif c in self._last:
                self._last[c][:] = -1

    def set_doppler(self, client: int, doppler_hz: float) -> None:
        """Client ``client``'s Doppler from now on (a moving client's current speed): its one-block correlation
        becomes J0(2 pi f_D T_c). Blocks skipped unobserved across a change are bridged with the new rho (the
        speed is piecewise constant at the mobility update's granularity, and the skip is exact within a
        stretch of one speed)."""
        self.rho[int(client)] = float(gauss_markov_rho(float(doppler_hz), self.block_s))
        c = self._clients.get(int(client))
        if c is not None:
            c.coeffs = None

    def _link(self, c: _Client, subs, power_w, bandwidth_hz, gain, noise_psd_w_per_hz) -> tuple:
        """The client's link in use: (subs, power, bandwidth, gain, scale, B / ln 2, state rows, mean-gain rate),
        derived once per link (its arrays are fixed for a round, so they are its key)."""
        link = c.link
        if link is None or link[0] is not subs or link[1] is not power_w or link[2] is not bandwidth_hz or \
                link[3] != gain:
            if link is None or link[0] is not subs:  # checked once per link (its arrays are kept)
                self._check_subchannels(subs)
            # the large-scale gain in the scale when it is fixed; a moving client's comes per block
            scale = power_w * ((1.0 if gain is None else float(gain)) / noise_psd_w_per_hz) / bandwidth_hz
            bw_ln2 = bandwidth_hz / _LN2
            mean_rate = float(np.dot(bw_ln2, np.log1p(scale)))  # at the scale's gain (1 for a moving client)
            link = c.link = (subs, power_w, bandwidth_hz, gain, scale, bw_ln2, c.rows(subs), mean_rate)
        return link

    def transfer_end_s(self, client: int, subs: np.ndarray, power_w: np.ndarray, bandwidth_hz: np.ndarray,
                       large_scale_gain: float, noise_psd_w_per_hz: float, start_s: float, bits: float) -> float:
        """The end time of :meth:`transfer` at a fixed large-scale gain, without segments, outage or ``until_s``
        (the static world's hot path: a few microseconds of Python a transfer, whatever its blocks); bits > 0 and
        subs not empty. The same operations in the same order as :meth:`transfer`, so the same end and the same
        state after it."""
        c = self._clients.get(client)
        if c is None:
            c = self._client(int(client))
        link = self._link(c, subs, power_w, bandwidth_hz, large_scale_gain, noise_psd_w_per_hz)
        coeffs = c.coeffs or self._coefficients(client, c)
        tc = self.block_s
        block = block_index(start_s, tc)
        first, delivered = block, 0.0
        while True:
            # the kernel stops where the client's normals run out; refilled, it goes on from that block exactly
            status, c.pos, done, end, delivered = kernels.transfer_end(
                c.z, c.pos, link[6], c.last, c.state, *coeffs, link[4], link[5], block, start_s, tc, bits, delivered)
            block += done
            if status == kernels.DONE:
                break
            if status == kernels.BACKWARDS:
                raise self._backwards(client, block, c, link[6])
            c.ensure(132 * subs.size)  # NEED_NORMALS: a fresh start (4 a subchannel) and 64 blocks (128)
            if block - first > MAX_TRANSFER_BLOCKS:
                raise TransferError(f"client {client}: {bits:g} bits not delivered within {MAX_TRANSFER_BLOCKS} "
                                    f"fading blocks (is every power zero?)")
        self.blocks_drawn += (block - first) * subs.size
        c.recent = None  # nothing of this transfer to keep
        return float(end)

    def transfer(self, client: int, subs: np.ndarray, power_w: np.ndarray, bandwidth_hz: np.ndarray,
                 large_scale_gain: float, noise_psd_w_per_hz: float, start_s: float, bits: float, *,
                 chunk_blocks: int | None = None, segments: bool = True, gain_of_blocks=None, outage=None,
                 until_s: float | None = None):
        """:func:`transfer_over_blocks` on independent subchannels (checked arguments, bits > 0, subs not empty),
        in the compiled kernel: blocks are drawn up to the one where the transfer ends and no further."""
        c = self._clients.get(client)
        if c is None:
            c = self._client(int(client))
        tc = self.block_s
        n0 = block_index(start_s, tc)
        gain = None if gain_of_blocks is not None else large_scale_gain
        link = self._link(c, subs, power_w, bandwidth_hz, gain, noise_psd_w_per_hz)
        scale, bw_ln2, rows = link[4], link[5], link[6]
        s = subs.size
        if chunk_blocks is not None:
            cap = chunk_blocks
        else:
            # enough blocks for the mean-gain rate and some margin (fading lowers the mean rate: Jensen)
            if gain_of_blocks is None:
                mean_rate = link[7]
            else:
                mean_rate = float(np.dot(bw_ln2, np.log1p(scale * float(gain_of_blocks(n0, 1)[0]))))
            cap = int(min(65536.0, 1.3 * bits / (mean_rate * tc) + 8)) if mean_rate > 0 else 72
        if until_s is None:
            stop_block, until = kernels.NO_STOP, math.inf
        else:
            stop_block, until = block_index(until_s, tc), float(until_s)
        if outage is None:
            rate_thr = snr_thr = -1.0
        else:
            rate_thr = -1.0 if outage.rate_bps is None else float(outage.rate_bps)
            snr_thr = -1.0 if outage.snr_linear is None else float(outage.snr_linear)
        coeffs = self._coefficients(client, c)
        block, delivered = n0, 0.0
        rates_parts, dead_parts = [], []
        while True:
            n = cap if until_s is None else max(1, min(cap, stop_block - block + 1))
            c.ensure(2 * s * (n + 1))
            if segments:
                rates = np.empty(n)
                dead = np.empty(n, dtype=np.int64) if outage is not None else kernels.NO_DEAD
                diffuse = np.empty((n, s, 2))
            else:  # nothing recorded (and no cap on the blocks of one call)
                rates, dead, diffuse = kernels.NO_RATES, kernels.NO_DEAD, kernels.NO_DIFFUSE
            gains = kernels.ONE_GAIN if gain_of_blocks is None else np.asarray(gain_of_blocks(block, n), dtype=float)
            status, pos, done, end, delivered = kernels.transfer_blocks(  # floats (numpy scalars without numba)
                c.z, c.pos, rows, c.last, c.state, *coeffs, scale, bw_ln2, gains, block, start_s, tc, bits,
                delivered, until, stop_block, rate_thr, snr_thr, rates, dead, diffuse)
            c.pos = pos
            self.blocks_drawn += done * s
            if status == kernels.BACKWARDS:
                raise self._backwards(client, block, c, rows)
            if done and segments:
                rates_parts.append(rates[:done])
                if outage is not None:
                    dead_parts.append(dead[:done])
                c.recent = (block, rows, diffuse[:done])
            block += done
            if status <= kernels.DONE or status == kernels.UNTIL:
                break
            if status == kernels.FULL:
                cap = min(2 * cap, 1 << 16)
            if block - n0 > MAX_TRANSFER_BLOCKS:
                raise TransferError(f"client {client}: {bits:g} bits not delivered within {MAX_TRANSFER_BLOCKS} "
                                    f"fading blocks (is every power zero, or is the link in outage for good?)")
        end, delivered = float(end), float(delivered)
        if not segments:
            c.recent = None  # nothing of this transfer to keep
            return TransferResult(end, _EMPTY, _EMPTY, _EMPTY, delivered, status == kernels.DONE)
        rates = rates_parts[0] if len(rates_parts) == 1 else np.concatenate(rates_parts)
        edges = np.arange(n0, n0 + rates.size + 1) * tc
        starts, ends = edges[:-1], edges[1:].copy()
        starts[0] = start_s
        ends[-1] = end
        dead_all = None
        if dead_parts:
            dead_all = dead_parts[0] if len(dead_parts) == 1 else np.concatenate(dead_parts)
        return TransferResult(end, starts, ends, rates, delivered, status == kernels.DONE, dead_all)


@dataclass(frozen=True)
class TransferResult:
    """End time of a transfer and its piecewise-constant rate: segment i runs [starts_s[i], ends_s[i]).

    ``completed`` is False when the transfer was stopped at ``until_s`` before every bit arrived: ``end_s`` is then
    that stop time and ``bits_delivered`` the integral of the rate up to it. ``outage_subchannels`` (with an
    outage threshold) counts, per segment, the subchannels that made no progress in it."""

    end_s: float
    starts_s: np.ndarray
    ends_s: np.ndarray
    rates_bps: np.ndarray
    bits_delivered: float = math.nan
    completed: bool = True
    outage_subchannels: np.ndarray | None = None


@dataclass(frozen=True)
class Outage:
    """Link outage: a subchannel whose rate in a block is below ``rate_bps`` or whose SNR is below ``snr_linear``
    makes no progress in that block (either may be None)."""

    rate_bps: float | None = None
    snr_linear: float | None = None

    def mask(self, snr: np.ndarray, rates_bps: np.ndarray) -> np.ndarray:
        """True where a subchannel is in outage; snr and rates_bps are (blocks, S)."""
        out = np.zeros(rates_bps.shape, dtype=bool)
        if self.rate_bps is not None:
            out |= rates_bps < self.rate_bps
        if self.snr_linear is not None:
            out |= snr < self.snr_linear
        return out


def _block_rates_bps(h: np.ndarray, snr_scale: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray:
    """Client rate per block: sum_i B_i log2(1 + (p_i G / (N0 B_i)) |h_i|^2)."""
    # in place where the shapes allow: the same operations in the same order as the plain expression
    rates = h.real * h.real
    rates += h.imag * h.imag
    if np.shape(snr_scale) in (rates.shape, rates.shape[1:]):
        rates *= snr_scale
    else:
        rates = rates * snr_scale
    np.log1p(rates, out=rates)
    if rates.shape[1] == 1:
        rates = rates.reshape(-1)
        rates *= bandwidth_hz[0] / _LN2
        return rates
    return (rates * bandwidth_hz).sum(axis=1) / _LN2


def _block_rates_outage(h, snr_scale, bandwidth_hz, outage: Outage) -> tuple[np.ndarray, np.ndarray]:
    """Client rate per block with the subchannels in outage contributing nothing; and their count per block."""
    snr = (h.real * h.real + h.imag * h.imag) * snr_scale
    per_sub = np.log1p(snr) * (bandwidth_hz / _LN2)
    dead = outage.mask(snr, per_sub)
    return np.where(dead, 0.0, per_sub).sum(axis=1), dead.sum(axis=1)


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
                         *, chunk_blocks: int | None = None, segments: bool = True, gain_of_blocks=None,
                         outage: Outage | None = None, until_s: float | None = None) -> TransferResult:
    """Deliver ``bits`` from ``start_s`` on ``subchannels`` with fixed powers over a block-fading channel.

    power_w, bandwidth_hz: (len(subchannels),) [W], [Hz]. Returns the end time and, with ``segments``, the
    rate of every block segment the transfer used (the first and last segments are partial blocks).

    A changing world: ``gain_of_blocks(first_block, n)`` returns the large-scale gain (n,) [linear] of blocks
    first_block.. (a moving client; ``large_scale_gain`` is then ignored); ``outage`` zeroes the subchannels in
    outage block by block; ``until_s`` stops the transfer there if it has not ended (an abort: the result says
    how many bits had arrived, and the client's fading state is left at the block holding ``until_s``).
    """
    subs = np.asarray(subchannels, dtype=np.int64)
    p = np.asarray(power_w, dtype=float)
    bw = np.asarray(bandwidth_hz, dtype=float)
    empty = np.empty(0)
    if bits <= 0:
        return TransferResult(float(start_s), empty, empty, empty, 0.0)
    if until_s is not None and until_s <= start_s:
        return TransferResult(float(start_s), empty, empty, empty, 0.0, False)
    if subs.size == 0:
        raise TransferError(f"client {client} has no subchannel to send {bits:g} bits on")
    if chunk_blocks is not None:
        chunk_blocks = int(check_integer("transfer_over_blocks", "chunk_blocks", chunk_blocks, 1))
    if fading.independent:
        return fading.transfer(client, subs, p, bw, large_scale_gain, noise_psd_w_per_hz, start_s, bits,
                               chunk_blocks=chunk_blocks, segments=segments, gain_of_blocks=gain_of_blocks,
                               outage=outage, until_s=until_s)
    tc = fading.block_s
    base_scale = p * (1.0 / noise_psd_w_per_hz) / bw if gain_of_blocks is not None else None
    snr_scale = p * (float(large_scale_gain) / noise_psd_w_per_hz) / bw if gain_of_blocks is None else None
    if chunk_blocks is None:
        # enough blocks for the mean-gain rate and some margin (fading lowers the mean rate: Jensen)
        scale0 = snr_scale if snr_scale is not None else base_scale * float(gain_of_blocks(block_index(start_s, tc),
                                                                                          1)[0])
        mean_rate = float(np.dot(bw, np.log1p(scale0))) / _LN2
        expected = bits / (mean_rate * tc) if mean_rate > 0 else 64.0
        chunk_blocks = int(min(1 << 16, 1.3 * expected + 8))
    n0 = block_index(start_s, tc)
    stop_block = None if until_s is None else block_index(until_s, tc)
    delivered = 0.0
    block = n0
    starts, ends, rates, dead_counts = [], [], [], []
    end = None
    while True:
        n = chunk_blocks if stop_block is None else max(1, min(chunk_blocks, stop_block - block + 1))
        h = fading.draw(client, subs, block, n)
        scale = snr_scale if gain_of_blocks is None else \
            np.asarray(gain_of_blocks(block, n), dtype=float)[:, None] * base_scale
        if outage is None:
            r = _block_rates_bps(h, scale, bw)
            dead = None
        else:
            r, dead = _block_rates_outage(h, scale, bw, outage)
        # block edges computed once, so consecutive segments share their edge exactly
        edges = np.arange(block, block + n + 1) * tc
        seg_start, seg_stop = edges[:-1], edges[1:]
        if block == n0:
            seg_start = seg_start.copy()
            seg_start[0] = start_s
        last_chunk = stop_block is not None and block + n - 1 >= stop_block
        if last_chunk:
            seg_stop = seg_stop.copy()
            seg_stop[-1] = max(until_s, seg_start[-1])
        cum = seg_stop - seg_start
        cum *= r
        np.cumsum(cum, out=cum)
        cum += delivered
        j = int(cum.searchsorted(bits))
        if j < n and r[j] > 0:
            before = cum[j - 1] if j > 0 else delivered
            end = min(max(seg_start[j] + (bits - before) / r[j], seg_start[j]), seg_stop[j])
            fading.keep(client, block + j)
            if segments:
                seg_end = seg_stop[: j + 1].copy()
                seg_end[j] = end
                starts.append(seg_start[: j + 1])
                ends.append(seg_end)
                rates.append(r[: j + 1])
                if dead is not None:
                    dead_counts.append(dead[: j + 1])
            delivered = float(bits)
            break
        if segments:
            starts.append(seg_start)
            ends.append(seg_stop)
            rates.append(r)
            if dead is not None:
                dead_counts.append(dead)
        delivered = float(cum[-1])
        block += n
        if last_chunk:
            break
        if outage is not None:  # a link in outage can stall for long: look further ahead each time
            chunk_blocks = min(2 * chunk_blocks, 1 << 16)
        if block - n0 > MAX_TRANSFER_BLOCKS:
            raise TransferError(f"client {client}: {bits:g} bits not delivered within {MAX_TRANSFER_BLOCKS} "
                                f"fading blocks (is every power zero, or is the link in outage for good?)")
    completed = end is not None
    if not completed:
        end = float(until_s)
    dead_all = None
    if segments and dead_counts:
        dead_all = dead_counts[0] if len(dead_counts) == 1 else np.concatenate(dead_counts)
    if not segments:
        return TransferResult(float(end), empty, empty, empty, delivered, completed)
    if len(starts) == 1:
        return TransferResult(float(end), starts[0], ends[0], rates[0], delivered, completed, dead_all)
    return TransferResult(float(end), np.concatenate(starts), np.concatenate(ends), np.concatenate(rates), delivered,
                          completed, dead_all)


def bits_until(result: TransferResult, time_s: float) -> float:
    """Bits a transfer had delivered at ``time_s`` (the integral of its recorded segments up to then)."""
    if result.starts_s.size == 0:
        return 0.0
    lo = np.minimum(result.ends_s, time_s)
    return float(np.sum(result.rates_bps * np.clip(lo - result.starts_s, 0.0, None)))


def transfer_over_steps(rates_of_steps, step_s: float, start_s: float, bits: float, *,
                        until_s: float | None = None, max_steps: int = MAX_TRANSFER_BLOCKS) -> TransferResult:
    """Deliver ``bits`` over a rate that is constant within steps [n step_s, (n+1) step_s) and known per step:
    ``rates_of_steps(first_step, n)`` returns the rates (n,) [bit/s]. The channel without fading of a changing
    world (a moving client's large-scale gain, a link in outage); stops at ``until_s`` like
    :func:`transfer_over_blocks`. Always records the segments (few: one per step crossed)."""
    empty = np.empty(0)
    if bits <= 0:
        return TransferResult(float(start_s), empty, empty, empty, 0.0)
    if until_s is not None and until_s <= start_s:
        return TransferResult(float(start_s), empty, empty, empty, 0.0, False)
    step = block_index(start_s, step_s)
    r0 = float(np.asarray(rates_of_steps(step, 1), dtype=float)[0])
    if until_s is None:
        # the common case, a transfer that ends in the step it starts in: the loop's first step in scalars
        stop0 = (step + 1) * step_s
        if r0 > 0 and bits <= r0 * (stop0 - start_s):
            end = min(max(start_s + bits / r0, start_s), stop0)
            return TransferResult(float(end), np.array([float(start_s)]), np.array([end]), np.array([r0]),
                                  float(bits), True)
    first = step
    stop_step = None if until_s is None else block_index(until_s, step_s)
    # the first look ahead: the steps the first step's rate needs, and some margin (doubling after it)
    delivered = 0.0
    n = int(min(1 << 16, 1.3 * bits / (r0 * step_s) + 2)) if r0 > 0 else 16
    starts, ends, rates = [], [], []
    end = None
    while end is None:
        if stop_step is not None:
            n = max(1, min(n, stop_step - step + 1))
        r = np.asarray(rates_of_steps(step, n), dtype=float)
        edges = np.arange(step, step + n + 1) * step_s
        seg_start, seg_stop = edges[:-1].copy(), edges[1:].copy()
        if step == first:
            seg_start[0] = start_s
        last = stop_step is not None and step + n - 1 >= stop_step
        if last:
            seg_stop[-1] = max(until_s, seg_start[-1])
        cum = np.cumsum(r * (seg_stop - seg_start)) + delivered
        j = int(cum.searchsorted(bits))
        if j < n and r[j] > 0:
            before = cum[j - 1] if j > 0 else delivered
            end = min(max(seg_start[j] + (bits - before) / r[j], seg_start[j]), seg_stop[j])
            seg_stop[j] = end
            starts.append(seg_start[: j + 1]), ends.append(seg_stop[: j + 1]), rates.append(r[: j + 1])
            delivered = float(bits)
            break
        starts.append(seg_start), ends.append(seg_stop), rates.append(r)
        delivered = float(cum[-1])
        step += n
        n = min(2 * n, 1 << 16)
        if last:
            break
        if step - first > max_steps:
            raise TransferError(f"{bits:g} bits not delivered within {max_steps} steps of {step_s:g} s (is the link "
                                f"in outage for good?)")
    completed = end is not None
    return TransferResult(float(end if completed else until_s), np.concatenate(starts), np.concatenate(ends),
                          np.concatenate(rates), delivered, completed)
