"""The compiled fading kernels (channel_models.fading_kernels) against their pure-Python twins, bit for bit, and the
law of the fading on the kernel's transfer path (mean power, autocorrelation at lags of 1 and 10 blocks).

The twins are the kernels' own Python source run by the interpreter (``.py_func``, with the helpers they call
swapped for their twins too), so an optimisation of the compiled code that changes a result (a fused multiply-add,
a reordered sum) fails here."""

import math

import numpy as np
import pytest

import channel_models as cm
from channel_models import fading_kernels as kn
from channel_models.fading import gauss_markov_rho

N0 = 10 ** (-174 / 10) * 1e-3


def _compiled_then_twin(monkeypatch, name):
    """The compiled kernel ``name``, then (after a first call of it) a callable that swaps the module's helpers for
    their Python twins and runs the kernel's own twin (so what the twin calls is Python too)."""
    compiled = getattr(kn, name)

    def twin(*args):
        for helper in ("_advance_block", "_one_subchannel", "_power", "_step", "transfer_blocks"):
            monkeypatch.setattr(kn, helper, getattr(kn, helper).py_func)
        try:
            return compiled.py_func(*args)
        finally:
            monkeypatch.undo()
    return compiled, twin


def _case(seed, subs, fresh):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(4000)
    idx = np.arange(subs, dtype=np.int64)
    last = np.full(subs, kn.NEVER, dtype=np.int64) if fresh else rng.integers(0, 50, subs).astype(np.int64)
    if not fresh:
        last[0] = kn.FORGOTTEN if subs > 1 else last[0]
    state = rng.standard_normal((subs, 4)) * 0.5
    return z, idx, last, state


@pytest.mark.parametrize("subs, fresh, gains, outage, until", [
    (1, True, None, None, None),  # the one-subchannel fast path after the first block
    (1, False, None, None, 0.9),  # skipped blocks, stopped by until_s
    (3, False, None, None, None),
    (3, True, "per-block", None, None),  # a moving client's gain per block
    (2, False, None, (2e5, None), None),  # outage by rate
    (2, False, "per-block", (None, 0.3), 0.7),  # outage by SNR, per-block gains, until_s
])
def test_transfer_kernel_equals_its_python_twin(monkeypatch, subs, fresh, gains, outage, until):
    out = []
    for fn in _compiled_then_twin(monkeypatch, "transfer_blocks"):
        z, idx, last, state = _case(7, subs, fresh)
        g = np.ones(1) if gains is None else np.random.default_rng(3).uniform(0.2, 2.0, 300)
        scale = np.linspace(1.0, 3.0, subs)
        bw_ln2 = np.full(subs, 1e5 / math.log(2))
        rates = np.empty(300)
        dead = np.empty(300, dtype=np.int64) if outage else np.empty(0, dtype=np.int64)
        diffuse = np.empty((300, subs, 2)) if outage else np.empty((0, 1, 2))
        rate_thr, snr_thr = ((-1.0 if v is None else v) for v in (outage or (None, None)))
        stop = 1 << 62 if until is None else cm.block_index(until, 0.01)
        res = fn(z, 0, idx, last, state, 0.9, math.sqrt(0.5 * (1 - 0.81)) * 0.8, 0.8, 0.6, scale, bw_ln2, g, 55,
                 0.553, 0.01, 2.0e5, 0.0, math.inf if until is None else until, stop, rate_thr, snr_thr, rates, dead,
                 diffuse)
        n = res[2]
        out.append((res, rates[:n].copy(), dead[:n].copy() if outage else None, last.copy(), state.copy(),
                    diffuse[:n].copy() if outage else None))
    (a, *arrays_a), (b, *arrays_b) = out
    assert a == b and a[2] > 3
    for x, y in zip(arrays_a, arrays_b):
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_draw_kernel_equals_its_python_twin(monkeypatch):
    results = []
    for fn in _compiled_then_twin(monkeypatch, "draw_blocks"):
        z, idx, last, state = _case(11, 4, False)
        out = np.empty((20, 4, 2))
        pos = fn(z, 0, idx, last, state, 60, -0.4, math.sqrt(0.5 * (1 - 0.16)), 1.0, 0.0, out)
        results.append((pos, out, last, state))
    assert results[0][0] == results[1][0] > 0
    for x, y in zip(results[0][1:], results[1][1:]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("subs, fresh", [(1, True), (1, False), (3, False)])
def test_end_only_kernel_equals_its_twin_and_the_recording_kernel(monkeypatch, subs, fresh):
    """transfer_end (the static world's hot path) is transfer_blocks recording nothing: the same status, normals
    read, blocks, end and delivered bits, and the same state left behind, compiled and as its Python twin; and
    the normals running out mid-transfer (z of 4,000 here) stops it at a block from which a second call goes on."""
    scale = np.linspace(1.0, 3.0, subs)
    bw_ln2 = np.full(subs, 1e5 / math.log(2))
    coeffs = (0.9, math.sqrt(0.5 * (1 - 0.81)) * 0.8, 0.8, 0.6)
    bits = 3.0e5 if subs == 1 else 4.0e6  # about 200 blocks, or 1,000 blocks of 6 normals
    out = []
    for fn in (*_compiled_then_twin(monkeypatch, "transfer_end"), None):
        z, idx, last, state = _case(5, subs, fresh)
        if fn is None:  # the recording kernel
            rates = np.empty(4000)
            res = kn.transfer_blocks(z, 0, idx, last, state, *coeffs, scale, bw_ln2, np.ones(1), 55, 0.553, 0.01,
                                     bits, 0.0, math.inf, kn.NO_STOP, -1.0, -1.0, rates, np.empty(0, dtype=np.int64),
                                     np.empty((0, 1, 2)))
        else:
            res = fn(z, 0, idx, last, state, *coeffs, scale, bw_ln2, 55, 0.553, 0.01, bits, 0.0)
        out.append((res, last.copy(), state.copy()))
    for res, last, state in out[1:]:
        assert res == out[0][0]
        np.testing.assert_array_equal(last, out[0][1])
        np.testing.assert_array_equal(state, out[0][2])
    status, pos, blocks, end, delivered = out[0][0]
    if subs == 3:  # the 4,000 normals run out first
        assert status == kn.NEED_NORMALS and pos > 3990 and 0 < delivered < bits
    else:
        assert status == kn.DONE and blocks > 3 and delivered == bits and end > 0.553


def test_going_back_in_time_is_refused_by_the_kernel_path():
    f = cm.ObservedFading(1, 2, 0.0, 10.0, 0.01, np.random.SeedSequence(1))
    subs, p, bw = np.array([0]), np.array([0.1]), np.array([1e5])
    cm.transfer_over_blocks(f, 0, subs, p, bw, 1e-10, N0, 5.0, 1e6)
    with pytest.raises(cm.TransferError) as err:
        cm.transfer_over_blocks(f, 0, subs, p, bw, 1e-10, N0, 1.0, 1e6)
    assert "back in time" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("lag", [1, 10])
def test_law_on_the_kernel_transfer_path(lag):
    """At an SNR of 1e-7 the rate is B/ln2 * SNR |h|^2 to 1e-7, so the rates of one long transfer carry |h|^2:
    mean 1 and autocorrelation rho^(2 lag) (Rayleigh: corr(|h_n|^2, |h_{n+m}|^2) = |rho^m|^2), over >= 10,000 blocks
    each of 32 clients."""
    fd, tc = 6.0, 0.01  # rho = 0.965: rho^2 = 0.93, rho^20 = 0.49
    rho = float(gauss_markov_rho(fd, tc))
    f = cm.ObservedFading(32, 4, 0.0, fd, tc, np.random.SeedSequence(21))
    bw = np.array([1e5])
    power = np.array([1e-7 * N0 * 1e5])  # p G / (N0 B) = 1e-7 at G = 1
    blocks = 12_000
    x_all, y_all = [], []
    for client in range(32):
        bits = 1e5 * 1e-7 / math.log(2) * tc * blocks
        res = cm.transfer_over_blocks(f, client, np.array([client % 4]), power, bw, 1.0, N0, 0.0, bits)
        power_h = res.rates_bps[1:-1] / (1e5 * 1e-7 / math.log(2))
        assert power_h.size > 10_000
        x_all.append(power_h[:-lag])
        y_all.append(power_h[lag:])
    x, y = np.concatenate(x_all), np.concatenate(y_all)
    # the mean of |h|^2 over correlated blocks: about 0.01 standard error here
    assert np.concatenate([x, y[-lag:]]).mean() == pytest.approx(1.0, abs=0.05)
    corr = np.corrcoef(x, y)[0, 1]
    # the sample correlation of 32 chains of 12,000 correlated blocks: about 0.007 standard error here
    assert corr == pytest.approx(rho ** (2 * lag), abs=0.03)
    assert abs(rho ** (2 * lag) - rho ** (2 * lag + 2)) > 0.03  # the check tells neighbouring lags apart
