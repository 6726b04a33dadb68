"""Compiled inner loops of :class:`channel_models.ObservedFading`: the Gauss-Markov recursion, the rate of each
block and the search for a transfer's end, fused into one pass over the blocks (numba).

Why compiled: a transfer spans hundreds of fading blocks, and in numpy every block-subchannel coefficient passes
through a dozen array operations (two normals, the AR(1) filter, |h|^2, the rate, a cumulative sum, a search), each
with its own call overhead: about 0.3 us a coefficient, most of a large run's event loop. One pass in compiled code
costs a few nanoseconds a coefficient and stops at the block where the transfer ends, so no block is drawn past it.

The law is the AR(1) of :mod:`channel_models.fading` exactly, per subchannel (independent subchannels; the
correlated case of a coherence bandwidth stays in numpy):

* d[n] = rho^m d[n - m] + sqrt(1 - rho^(2m)) a w, w ~ CN(0, 1), a^2 = 1 / (K + 1), m >= 1 blocks since the last
  observation (m = 1 inside a transfer; a longer skip is exact in law in one step);
* a subchannel never observed starts from the stationary law a w, and its specular phase is the angle of a CN(0, 1)
  draw (uniform on [0, 2 pi) by circular symmetry);
* observing the last observed block again returns it and draws nothing.

Normals come from the client's buffer ``z`` (filled from its own seeded stream by numpy), read in
order from ``pos``: per block and subchannel, (Re w, Im w), and two more before them when the subchannel is fresh
(its phase; not after a state forgotten by ``release``, which keeps the phase). Everything else is
deterministic, so a rerun draws the same numbers.

Each kernel has a pure-Python twin (``.py_func``) that performs the same floating-point operations in the same
order; the tests compare them bit for bit. Without numba (not installed) the Python twins run (slow; the module
says so once).
"""
from __future__ import annotations

import math

import numpy as np

from ._compiled import COMPILED, njit  # noqa: F401 (COMPILED: whether the kernels are compiled)

DONE, NEED_NORMALS, FULL, UNTIL, BACKWARDS = 0, 1, 2, 3, 4  # why transfer_blocks returned


@njit(cache=True)
def _power(x, m):
    """x^m for an integer m >= 1 by repeated squaring: plain IEEE products, so the compiled code and its Python
    twin give the same bits (the libraries' pow functions may differ in the last place)."""
    out = 1.0
    while m > 0:
        if m & 1:
            out *= x
        x *= x
        m >>= 1
    return out


@njit(cache=True)
def _step(block, start_s, block_s, stop_block, until_s, bits, delivered, rate):
    """One block's segment [max(start_s, n T_c), min((n + 1) T_c, until_s)) at ``rate``: whether it is the last
    allowed (the block holding until_s), the bits delivered by its end, whether the transfer ends in it and
    when."""
    seg_start = block * block_s
    if start_s > seg_start:
        seg_start = start_s
    seg_stop = (block + 1) * block_s
    last_block = block >= stop_block
    if last_block:
        seg_stop = until_s if until_s > seg_start else seg_start
    total = delivered + (seg_stop - seg_start) * rate
    ends = total >= bits and rate > 0.0
    end = 0.0
    if ends:
        end = seg_start + (bits - delivered) / rate
        if end < seg_start:
            end = seg_start
        if end > seg_stop:
            end = seg_stop
    return last_block, total, ends, end


NEVER, FORGOTTEN = -1, -2  # ``last`` of a subchannel never observed (no phase yet), or whose state was forgotten


@njit(cache=True)
def _advance_block(z, pos, idx, last, state, block, rho, c_one, amp, spec_amp, h, diffuse_only):
    """Move the subchannels ``idx`` of one client to ``block`` and write their coefficients (the diffuse parts alone
    with ``diffuse_only``) into h (S, 2); returns the new ``pos``: -1 when ``z`` holds too few normals, -2 when a
    subchannel was observed after ``block`` (nothing changed then)."""
    need = 0
    for i in range(idx.size):
        prev = last[idx[i]]
        if prev > block:
            return -2
        if prev == NEVER:
            need += 4
        elif prev < block:
            need += 2
    if pos + need > z.size:
        return -1
    half = math.sqrt(0.5)
    for i in range(idx.size):
        j = idx[i]
        prev = last[j]
        if prev < 0:  # the stationary law; a subchannel never observed first draws its specular phase
            if prev == NEVER:
                phase = math.atan2(z[pos + 1], z[pos])
                state[j, 2] = spec_amp * math.cos(phase)
                state[j, 3] = spec_amp * math.sin(phase)
                pos += 2
            state[j, 0] = half * amp * z[pos]
            state[j, 1] = half * amp * z[pos + 1]
            pos += 2
        elif block > prev:
            m = block - prev
            if m == 1:
                c, decay = c_one, rho
            else:
                decay = _power(rho, m)
                c = math.sqrt(0.5 * (1.0 - decay * decay)) * amp
            state[j, 0] = decay * state[j, 0] + c * z[pos]
            state[j, 1] = decay * state[j, 1] + c * z[pos + 1]
            pos += 2
        last[j] = block
        if diffuse_only:
            h[i, 0] = state[j, 0]
            h[i, 1] = state[j, 1]
        else:
            h[i, 0] = state[j, 0] + state[j, 2]
            h[i, 1] = state[j, 1] + state[j, 3]
    return pos


@njit(cache=True)
def draw_blocks(z, pos, idx, last, state, first_block, rho, c_one, amp, spec_amp, out):
    """Diffuse parts of blocks first_block .. first_block + n - 1 into out (n, S, 2); returns the new ``pos``
    (< 0 as :func:`_advance_block`, with the blocks before the failing one drawn)."""
    n = out.shape[0]
    for b in range(n):
        pos = _advance_block(z, pos, idx, last, state, first_block + b, rho, c_one, amp, spec_amp, out[b], True)
        if pos < 0:
            return pos
    return pos


@njit(cache=True)
def transfer_blocks(z, pos, idx, last, state, rho, c_one, amp, spec_amp, scale, bw_ln2, gains, block, start_s,
                    block_s, bits, delivered, until_s, stop_block, rate_thr, snr_thr, rates_out, dead_out,
                    diffuse_out):  # pragma: no cover - compiled (its twin is tested)
    """Integrate a transfer block by block from ``block`` (the block holding ``start_s`` on the first call) until
    ``bits`` have arrived, ``stop_block`` (the block holding ``until_s``) ends, ``z`` runs out of normals or the
    output arrays are full.

    scale (S,): p_i / (N0 B_i) times the large-scale gain, which is ``gains[0]`` for every block when ``gains`` has
    one entry, else ``gains[b]`` for the b-th block of this call. bw_ln2 (S,): B_i / ln 2. rate_thr, snr_thr: the
    outage thresholds (< 0: none). Writes each block's rate [bit/s] (and its count of subchannels in outage, and
    the diffuse parts reached, (n, S, 2), when those arrays are not empty; an empty ``rates_out`` records nothing
    and never fills) and returns (status, pos, blocks_done, end_s, delivered); BACKWARDS: a subchannel was observed
    after ``block``."""
    s = idx.size
    h = np.empty((s, 2))
    per_block = gains.size > 1
    keep_dead = dead_out.size > 0
    keep_diffuse = diffuse_out.shape[0] > 0
    keep_rates = rates_out.size > 0
    cap = rates_out.size
    n = 0
    while True:
        if keep_rates and n == cap:
            return FULL, pos, n, 0.0, delivered
        if n == 0:  # the first block of the call may skip, repeat a block or start a subchannel
            new_pos = _advance_block(z, pos, idx, last, state, block, rho, c_one, amp, spec_amp, h, False)
            if new_pos < 0:
                return (NEED_NORMALS if new_pos == -1 else BACKWARDS), pos, n, 0.0, delivered
            pos = new_pos
        elif s == 1 and not (per_block or keep_dead or keep_diffuse or rate_thr >= 0.0 or snr_thr >= 0.0):
            return _one_subchannel(z, pos, idx[0], last, state, rho, c_one, scale[0] * gains[0], bw_ln2[0], block,
                                   start_s, block_s, bits, delivered, until_s, stop_block, rates_out, n)
        else:  # the next block of every subchannel: one AR(1) step
            if pos + 2 * s > z.size:
                return NEED_NORMALS, pos, n, 0.0, delivered
            for i in range(s):
                j = idx[i]
                d_re = rho * state[j, 0] + c_one * z[pos]
                d_im = rho * state[j, 1] + c_one * z[pos + 1]
                pos += 2
                state[j, 0] = d_re
                state[j, 1] = d_im
                last[j] = block
                h[i, 0] = d_re + state[j, 2]
                h[i, 1] = d_im + state[j, 3]
        g = gains[n] if per_block else gains[0]
        rate = 0.0
        dead = 0
        for i in range(s):
            snr = (h[i, 0] * h[i, 0] + h[i, 1] * h[i, 1]) * (scale[i] * g)
            r = math.log1p(snr) * bw_ln2[i]
            if (rate_thr >= 0.0 and r < rate_thr) or (snr_thr >= 0.0 and snr < snr_thr):
                r = 0.0
                dead += 1
            rate += r
        if keep_rates:
            rates_out[n] = rate
        if keep_dead:
            dead_out[n] = dead
        if keep_diffuse:
            for i in range(s):
                diffuse_out[n, i, 0] = state[idx[i], 0]
                diffuse_out[n, i, 1] = state[idx[i], 1]
        last_block, total, ends, end = _step(block, start_s, block_s, stop_block, until_s, bits, delivered, rate)
        n += 1
        if ends:
            return DONE, pos, n, end, bits
        delivered = total
        if last_block:
            return UNTIL, pos, n, until_s, delivered
        block += 1


@njit(cache=True)
def _one_subchannel(z, pos, j, last, state, rho, c_one, scale, bw_ln2, block, start_s, block_s, bits, delivered,
                    until_s, stop_block, rates_out, n):  # pragma: no cover - compiled (its twin is tested)
    """:func:`transfer_blocks` from its second block on for one subchannel without per-block gains, outage or
    kept states (the common case of a crowded band): the state in registers, the same operations in the same
    order."""
    d_re, d_im = state[j, 0], state[j, 1]
    s_re, s_im = state[j, 2], state[j, 3]
    keep_rates = rates_out.size > 0
    cap = rates_out.size
    status = DONE
    end = 0.0
    while True:
        if keep_rates and n == cap:
            status = FULL
            break
        if pos + 2 > z.size:
            status = NEED_NORMALS
            break
        d_re = rho * d_re + c_one * z[pos]
        d_im = rho * d_im + c_one * z[pos + 1]
        pos += 2
        last[j] = block
        h_re = d_re + s_re
        h_im = d_im + s_im
        snr = (h_re * h_re + h_im * h_im) * scale
        rate = math.log1p(snr) * bw_ln2
        if keep_rates:
            rates_out[n] = rate
        last_block, total, ends, end = _step(block, start_s, block_s, stop_block, until_s, bits, delivered, rate)
        n += 1
        if ends:
            delivered = bits
            break
        delivered = total
        if last_block:
            status = UNTIL
            end = until_s
            break
        block += 1
    state[j, 0] = d_re
    state[j, 1] = d_im
    return status, pos, n, end, delivered


# what a transfer at one large-scale gain that records nothing passes (from Python: a compiled kernel builds its own)
ONE_GAIN = np.ones(1)
NO_RATES = np.empty(0)
NO_DEAD = np.empty(0, dtype=np.int64)
NO_DIFFUSE = np.empty((0, 1, 2))
NO_STOP = 1 << 62  # the stop block of a transfer that runs until its bits have arrived


@njit(cache=True)
def transfer_end(z, pos, idx, last, state, rho, c_one, amp, spec_amp, scale, bw_ln2, block, start_s, block_s, bits,
                 delivered):  # pragma: no cover - compiled (its twin is tested)
    """:func:`transfer_blocks` at a fixed large-scale gain (in ``scale``), with no outage, no ``until_s`` and nothing
    recorded: the end time alone, from fewer arguments (the static world's hot path, one call a transfer)."""
    return transfer_blocks(z, pos, idx, last, state, rho, c_one, amp, spec_amp, scale, bw_ln2, np.ones(1), block,
                           start_s, block_s, bits, delivered, math.inf, NO_STOP, -1.0, -1.0, np.empty(0),
                           np.empty(0, dtype=np.int64), np.empty((0, 1, 2)))
