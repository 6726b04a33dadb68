"""Lazily observed block fading (ObservedFading) and transfers across fading blocks, checked against
independent references: marginal laws (KS tests against scipy.stats), Gauss-Markov correlation
rho^m = J0(2 pi f_D T_c)^m for consecutive and skipped blocks, frequency correlation
exp(-|f_i - f_j| / B_c), per-client random streams, keep(), transfer bookkeeping against Shannon
rates computed here, and block_index at float block edges.

Sampling tolerances: for jointly CN(0, 1) x, y with real correlation c, Re(y conj x) has variance
(1 + c^2) / 2, so an average over N independent pairs has standard deviation sqrt((1 + c^2) / (2N));
every check uses 5 of those (a false alarm below 1e-6 per check; the seeds are fixed anyway).
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats

import channel_models.observed_fading as observed_fading_module
from channel_models import (ChannelModelError, ObservedFading, TransferError, block_index,
                            transfer_over_blocks)

K_RICIAN = 10 ** 0.9  # 9 dB


def j0_ref(fd, tc):
    """J0(2 pi f_D T_c) from the integral (1/pi) int_0^pi cos(x sin t) dt, independent of scipy.special."""
    x = 2 * math.pi * fd * tc
    return integrate.quad(lambda th: math.cos(x * math.sin(th)), 0, math.pi, epsabs=1e-13)[0] / math.pi


def corr_tol(c, n):
    return 5.0 * math.sqrt((1.0 + c * c) / (2.0 * n))


def draw_all(fading, clients, subs, first, num=1):
    """(clients, num, len(subs)) coefficients, one draw per client."""
    return np.stack([fading.draw(c, subs, first, num) for c in range(clients)])


def shannon_bps(h, power_w, bw_hz, gain, n0):
    """sum_i B_i log2(1 + p_i G |h_i|^2 / (N0 B_i)), written out independently of the module."""
    h = np.asarray(h)
    return float(sum(b * math.log2(1.0 + p * gain * abs(x) ** 2 / (n0 * b)) for x, p, b in zip(h, power_w, bw_hz)))


# -- 1. marginal laws ----------------------------------------------------------------------------

@pytest.mark.parametrize("k_lin", [0.0, K_RICIAN])
def test_marginal_law(k_lin):
    clients, s = 2000, 4
    fading = ObservedFading(clients, s, k_lin, 20.0, 0.01, np.random.SeedSequence(11))
    subs = np.arange(s)
    # a fresh block, then the second row of a 3-block draw after a skip (AR(1) and lfilter paths)
    first = draw_all(fading, clients, subs, 3)[:, 0]
    later = np.stack([fading.draw(c, subs, 10, 3)[1] for c in range(clients)])
    for h in (first, later):
        p = (np.abs(h) ** 2).ravel()
        n = p.size
        # Var|h|^2 = 1 for Exp(1); for the Rician law it is (2K + 1) / (K + 1)^2 < 1.
        assert p.mean() == pytest.approx(1.0, abs=5.0 / math.sqrt(n))
        if k_lin == 0.0:
            assert stats.kstest(p, stats.expon().cdf).pvalue > 1e-3
        else:
            law = stats.ncx2(df=2, nc=2 * k_lin, scale=1.0 / (2 * (k_lin + 1)))
            assert law.mean() == pytest.approx(1.0, rel=1e-12)
            assert stats.kstest(p, law.cdf).pvalue > 1e-3
            # the test can fail: the Rician power is not Exp(1)
            assert stats.kstest(p, stats.expon().cdf).pvalue < 1e-6


# -- 2. time correlation, consecutive and skipped ------------------------------------------------

@pytest.mark.parametrize("fd, m", [(10.0, 7), (61.0, 3)])  # rho ~ 0.90 and rho ~ -0.40 (J0 past its zero)
def test_time_correlation_consecutive_and_skip(fd, m):
    clients, s, tc, n0 = 1000, 64, 0.01, 5
    rho = j0_ref(fd, tc)
    subs = np.arange(s)
    n = clients * s

    # m = 1: one draw of two blocks
    f1 = ObservedFading(clients, s, 0.0, fd, tc, np.random.SeedSequence(21))
    h = draw_all(f1, clients, subs, n0, 2)
    lag1 = np.mean(h[:, 1] * np.conj(h[:, 0]))
    assert lag1.real == pytest.approx(rho, abs=corr_tol(rho, n))
    assert abs(lag1.imag) < corr_tol(0.0, n)

    # lag m in one skipping step: block n0, then block n0 + m alone
    f2 = ObservedFading(clients, s, 0.0, fd, tc, np.random.SeedSequence(22))
    a = draw_all(f2, clients, subs, n0)[:, 0]
    b = draw_all(f2, clients, subs, n0 + m)[:, 0]
    skip = np.mean(b * np.conj(a))
    target = rho ** m
    assert skip.real == pytest.approx(target, abs=corr_tol(target, n))
    assert abs(skip.imag) < corr_tol(0.0, n)
    # exact in law: b - rho^m a is CN(0, 1 - rho^(2m)) and independent of a
    resid = (b - target * a).ravel()
    assert stats.kstest(np.abs(resid) ** 2 / (1 - target ** 2), stats.expon().cdf).pvalue > 1e-3
    assert stats.kstest(np.abs(b.ravel()) ** 2, stats.expon().cdf).pvalue > 1e-3
    assert abs(np.mean(resid * np.conj(a.ravel()))) < corr_tol(0.0, n) * math.sqrt(2)
    assert abs(np.corrcoef(np.abs(resid) ** 2, np.abs(a.ravel()) ** 2)[0, 1]) < 5 / math.sqrt(n)

    # stepping one block at a time to n0 + m gives the same correlation as the skip
    f3 = ObservedFading(clients, s, 0.0, fd, tc, np.random.SeedSequence(23))
    steps = np.stack([np.concatenate([f3.draw(c, subs, n0 + i, 1) for i in range(m + 1)]) for c in range(clients)])
    stepped = np.mean(steps[:, m] * np.conj(steps[:, 0]))
    assert stepped.real == pytest.approx(target, abs=corr_tol(target, n))
    assert abs(stepped.real - skip.real) < corr_tol(target, n) * math.sqrt(2)
    # and the stepped path is a Gauss-Markov chain: each step correlates rho with the previous one
    for i in range(1, m + 1):
        c1 = np.mean(steps[:, i] * np.conj(steps[:, i - 1])).real
        assert c1 == pytest.approx(rho, abs=corr_tol(rho, n))
    assert stats.ks_2samp(np.real(b * np.conj(a)).ravel(),
                          np.real(steps[:, m] * np.conj(steps[:, 0])).ravel()).pvalue > 1e-3


def test_rician_lag_keeps_specular_part():
    # E[h[n+m] conj h[n]] = K/(K+1) + rho^m/(K+1): the specular part does not decay.
    clients, s, tc, fd, m = 500, 128, 0.01, 10.0, 4
    rho = j0_ref(fd, tc)
    fading = ObservedFading(clients, s, K_RICIAN, fd, tc, np.random.SeedSequence(24))
    subs = np.arange(s)
    a = draw_all(fading, clients, subs, 2)[:, 0]
    b = draw_all(fading, clients, subs, 2 + m)[:, 0]
    q, v, c = K_RICIAN / (K_RICIAN + 1), 1 / (K_RICIAN + 1), rho ** m
    # b a* = q + Re(s (d_a + d_b)*) + d_b d_a*: Var Re = q v (1 + c) + v^2 (1 + c^2) / 2
    sd = math.sqrt((q * v * (1 + c) + v * v * (1 + c * c) / 2) / (clients * s))
    assert np.mean(b * np.conj(a)).real == pytest.approx(q + v * c, abs=5 * sd)


# -- 3. same block twice, going back in time -----------------------------------------------------

def test_same_block_twice_and_going_back():
    fading = ObservedFading(3, 5, 2.0, 30.0, 0.01, np.random.SeedSequence(31))
    subs = np.arange(5)
    h1 = fading.draw(0, subs, 5, 1)
    h2 = fading.draw(0, subs, 5, 1)
    np.testing.assert_array_equal(h1, h2)
    rows = fading.draw(0, subs, 5, 4)  # blocks 5..8, the first one already seen
    np.testing.assert_array_equal(rows[0], h1[0])
    np.testing.assert_array_equal(fading.draw(0, subs, 8, 1)[0], rows[3])
    # a subset of the subchannels at the current block: same values
    np.testing.assert_array_equal(fading.draw(0, [1, 3], 8, 1)[0], rows[3, [1, 3]])
    with pytest.raises(TransferError) as info:
        fading.draw(0, subs, 7, 1)
    assert isinstance(info.value, ChannelModelError) and isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "\n" not in msg and "block 7" in msg and "block 8" in msg
    # only that client is constrained
    fading.draw(1, subs, 0, 1)


# -- 4. never-observed subchannels start stationary ----------------------------------------------

@pytest.mark.parametrize("k_lin", [0.0, K_RICIAN])
def test_first_draw_at_large_block_is_stationary(k_lin):
    clients, s = 1000, 8
    fading = ObservedFading(clients, s, k_lin, 5.0, 0.01, np.random.SeedSequence(41))
    subs = np.arange(s)
    h = draw_all(fading, clients, subs, 10 ** 6)[:, 0]
    p = (np.abs(h) ** 2).ravel()
    assert np.all(np.isfinite(p))
    assert p.mean() == pytest.approx(1.0, abs=5.0 / math.sqrt(p.size))
    law = stats.expon() if k_lin == 0 else stats.ncx2(df=2, nc=2 * k_lin, scale=1.0 / (2 * (k_lin + 1)))
    assert stats.kstest(p, law.cdf).pvalue > 1e-3
    # a subchannel seen at block 0 and next at 10^6: rho^(10^6) = 0, still the stationary law
    g = ObservedFading(clients, s, 0.0, 5.0, 0.01, np.random.SeedSequence(42))
    a = draw_all(g, clients, subs, 0)[:, 0]
    b = draw_all(g, clients, subs, 10 ** 6)[:, 0]
    n = clients * s
    assert np.mean(np.abs(b) ** 2) == pytest.approx(1.0, abs=5.0 / math.sqrt(n))
    assert abs(np.mean(b * np.conj(a))) < corr_tol(0.0, n) * math.sqrt(2)
    assert stats.kstest((np.abs(b) ** 2).ravel(), stats.expon().cdf).pvalue > 1e-3


# -- 5. keep -------------------------------------------------------------------------------------

def test_keep_moves_state_back():
    clients, s, tc, fd, first = 1000, 16, 0.01, 10.0, 3
    rho = j0_ref(fd, tc)
    fading = ObservedFading(clients, s, 0.0, fd, tc, np.random.SeedSequence(51))
    subs = np.arange(s)
    old, new = [], []
    for c in range(clients):
        rows = fading.draw(c, subs, first, 50)
        fading.keep(c, first + 10)
        old.append(rows)
        new.append(fading.draw(c, subs, first + 11, 1)[0])
    old, new = np.stack(old), np.stack(new)
    n = clients * s
    kept = old[:, 10]
    c_kept = np.mean(new * np.conj(kept)).real
    assert c_kept == pytest.approx(rho, abs=corr_tol(rho, n))
    # the forgotten row 11 is not reused: new and old block 11 share only the kept past (rho^2)
    c_old = np.mean(new * np.conj(old[:, 11])).real
    assert c_old == pytest.approx(rho ** 2, abs=corr_tol(rho ** 2, n))
    resid = (new - rho * kept).ravel()
    assert stats.kstest(np.abs(resid) ** 2 / (1 - rho ** 2), stats.expon().cdf).pvalue > 1e-3

    # keep at the current block returns that block on the next observation
    rows = fading.draw(0, subs, 100, 5)
    fading.keep(0, 102)
    np.testing.assert_array_equal(fading.draw(0, subs, 102, 1)[0], rows[2])
    # outside the latest draw (before, after) or another client: TransferError, one line
    fading.draw(1, subs, 200, 50)
    for client, block in [(1, 199), (1, 250), (0, 210)]:
        with pytest.raises(TransferError) as info:
            fading.keep(client, block)
        assert "\n" not in str(info.value) and "not in its latest draw" in str(info.value)
    fading.keep(1, 249)  # the last row is in range


# -- 6. per-client streams -----------------------------------------------------------------------

@pytest.mark.parametrize("correlated", [False, True])
def test_clients_independent_of_draw_order(correlated):
    kw = dict(coherence_bandwidth_hz=1e6, subchannel_bandwidth_hz=360e3) if correlated else {}
    seed = np.random.SeedSequence(61)
    subs = np.arange(6)
    a = ObservedFading(4, 6, 3.0, 40.0, 0.01, seed, **kw)
    b = ObservedFading(4, 6, 3.0, 40.0, 0.01, seed, **kw)
    a0 = a.draw(0, subs, 2, 30)
    a.keep(0, 20)
    a1 = a.draw(1, subs, 7, 3)
    a1_later = a.draw(1, subs, 40, 2)
    b1 = b.draw(1, subs, 7, 3)
    b1_later = b.draw(1, subs, 40, 2)
    b0 = b.draw(0, subs, 2, 30)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a1_later, b1_later)
    np.testing.assert_array_equal(a0, b0)
    assert not np.allclose(a1[0], a0[0])  # different clients, different streams
    other = ObservedFading(4, 6, 3.0, 40.0, 0.01, np.random.SeedSequence(62), **kw)
    assert not np.allclose(other.draw(1, subs, 7, 3), a1)


# -- 7. frequency correlation --------------------------------------------------------------------

def test_coherence_bandwidth_correlation_and_skip():
    clients, s, bw, bc, tc, fd, m = 8000, 4, 360e3, 1.0e6, 0.01, 10.0, 5
    rho = j0_ref(fd, tc)
    fading = ObservedFading(clients, s, 0.0, fd, tc, np.random.SeedSequence(71),
                            coherence_bandwidth_hz=bc, subchannel_bandwidth_hz=bw)
    subs = np.arange(s)
    rows = draw_all(fading, clients, subs, 2, 2)  # a fresh block and one lfilter step
    skip = draw_all(fading, clients, subs, 3 + m)[:, 0]  # m blocks after the last row
    x0, x1 = rows[:, 0], rows[:, 1]
    for i in range(s):
        for j in range(s):
            r = math.exp(-abs(i - j) * bw / bc)  # adjacent: exp(-B / B_c)
            for h in (x0, x1, skip):
                cov = np.mean(h[:, j] * np.conj(h[:, i]))
                assert cov.real == pytest.approx(r, abs=corr_tol(r, clients))
                assert abs(cov.imag) < corr_tol(0.0, clients)
            for lagged, past, c in ((x1, x0, rho * r), (skip, x1, rho ** m * r)):
                got = np.mean(lagged[:, j] * np.conj(past[:, i])).real
                assert got == pytest.approx(c, abs=corr_tol(c, clients))
    # adjacent pairs pooled: clearly the exp(-B/B_c) law, not independence
    adj = np.mean(skip[:, 1:] * np.conj(skip[:, :-1])).real
    assert adj == pytest.approx(math.exp(-bw / bc), abs=corr_tol(math.exp(-bw / bc), clients))

    # observing one subchannel advances the whole band: the others are then at that block too
    g = ObservedFading(2, s, 0.0, fd, tc, np.random.SeedSequence(72),
                       coherence_bandwidth_hz=bc, subchannel_bandwidth_hz=bw)
    one = g.draw(0, [2], 9, 1)
    assert one.shape == (1, 1)
    full = g.draw(0, subs, 9, 1)
    np.testing.assert_array_equal(full[0, 2], one[0, 0])
    with pytest.raises(TransferError):
        g.draw(0, [0], 8, 1)


# -- 8. transfers --------------------------------------------------------------------------------

N0 = 4e-21  # W/Hz
GAIN = 1e-10


def test_transfer_static_channel_matches_shannon():
    s, tc = 4, 0.01
    power = np.array([0.1, 0.05, 0.0, 0.2])
    bw = np.array([180e3, 360e3, 180e3, 720e3])
    seed = np.random.SeedSequence(81)
    fading = ObservedFading(2, s, 1.5, 0.0, tc, seed)  # f_D = 0: rho = 1, h frozen after block 0
    assert fading.rho[0] == 1.0
    start, bits = 0.0537, 3.0e6
    res = transfer_over_blocks(fading, 1, np.arange(s), power, bw, GAIN, N0, start, bits)
    h = ObservedFading(2, s, 1.5, 0.0, tc, seed).draw(1, np.arange(s), block_index(start, tc), 1)[0]
    rate = shannon_bps(h, power, bw, GAIN, N0)
    assert res.end_s == pytest.approx(start + bits / rate, rel=1e-12)
    assert res.end_s - start > 3 * tc  # it spans several blocks
    np.testing.assert_allclose(res.rates_bps, rate, rtol=1e-12)
    # the state stays where the transfer ended: the coefficients there are still h
    np.testing.assert_allclose(fading.draw(1, np.arange(s), block_index(res.end_s, tc), 1)[0], h, rtol=1e-14)


@pytest.mark.parametrize("chunk", [None, 5])
def test_transfer_bookkeeping(chunk):
    s, tc, fd = 3, 1e-3, 50.0
    power = np.array([0.05, 0.1, 0.02])
    bw = np.full(s, 360e3)
    fading = ObservedFading(3, s, 0.0, fd, tc, np.random.SeedSequence(82))
    subs = np.arange(s)
    start, bits = 12.34567, 4.0e6
    res = transfer_over_blocks(fading, 2, subs, power, bw, GAIN, N0, start, bits, chunk_blocks=chunk)
    starts, ends, rates = res.starts_s, res.ends_s, res.rates_bps
    assert starts.size == ends.size == rates.size >= 10
    assert np.sum(rates * (ends - starts)) == pytest.approx(bits, rel=1e-9)
    assert starts[0] == start and ends[-1] == res.end_s
    np.testing.assert_array_equal(ends[:-1], starts[1:])  # tiling, bit-exact
    assert np.all(ends > starts) and np.all(rates > 0)
    blocks = np.array([block_index(t, tc) for t in starts])
    np.testing.assert_array_equal(blocks, block_index(start, tc) + np.arange(starts.size))
    for k, (a, b) in enumerate(zip(starts, ends)):
        n = int(blocks[k])
        assert n * tc <= a and b <= (n + 1) * tc
        if 0 < k < starts.size - 1:
            assert a == n * tc and b == (n + 1) * tc
    # the state is at the end block: its coefficients give the last segment's rate
    h_end = fading.draw(2, subs, int(blocks[-1]), 1)[0]
    assert rates[-1] == pytest.approx(shannon_bps(h_end, power, bw, GAIN, N0), rel=1e-12)

    # (c) a second transfer from later in the block where the first ended: same rate there
    res2_start = res.end_s + 0.3 * ((blocks[-1] + 1) * tc - res.end_s)
    res2 = transfer_over_blocks(fading, 2, subs, power, bw, GAIN, N0, res2_start, 1.0e6, chunk_blocks=chunk)
    assert block_index(res2_start, tc) == blocks[-1]
    assert res2.rates_bps[0] == rates[-1]
    assert res2.starts_s[0] == res2_start
    assert np.sum(res2.rates_bps * (res2.ends_s - res2.starts_s)) == pytest.approx(1.0e6, rel=1e-9)
    # and one starting exactly where the first ended
    fading2 = ObservedFading(3, s, 0.0, fd, tc, np.random.SeedSequence(82))
    r1 = transfer_over_blocks(fading2, 2, subs, power, bw, GAIN, N0, start, bits, chunk_blocks=chunk)
    assert r1.end_s == res.end_s  # reproducible
    r2 = transfer_over_blocks(fading2, 2, subs, power, bw, GAIN, N0, r1.end_s, 1.0e5, chunk_blocks=chunk)
    assert block_index(r1.end_s, tc) == blocks[-1]  # not on an edge
    assert r2.starts_s[0] == r1.end_s and r2.rates_bps[0] == r1.rates_bps[-1]


def test_transfer_mean_rate_is_ergodic():
    # Long transfer, nearly independent blocks: the average full-block rate is the ergodic
    # Rayleigh rate B/ln2 * int ln(1 + a x) e^-x dx, a = p G / (N0 B), computed by quadrature.
    s, tc, fd = 2, 1e-3, 300.0
    rho = j0_ref(fd, tc)
    power = np.array([0.05, 0.2])
    bw = np.full(s, 360e3)
    a = power * GAIN / (N0 * bw)
    per_sub = [integrate.quad(lambda x, ai=ai: math.log1p(ai * x) * math.exp(-x), 0, np.inf)[0] for ai in a]
    ergodic = float(sum(b * v for b, v in zip(bw, per_sub)) / math.log(2))
    fading = ObservedFading(1, s, 0.0, fd, tc, np.random.SeedSequence(83))
    res = transfer_over_blocks(fading, 0, np.arange(s), power, bw, GAIN, N0, 0.0, ergodic * 20000 * tc,
                               chunk_blocks=97)
    full = res.rates_bps[1:-1]
    assert full.size > 15000
    # |h|^2 correlates rho^2 between blocks: variance of the mean inflated by (1 + rho^2) / (1 - rho^2)
    sd = full.std() * math.sqrt((1 + rho ** 2) / (1 - rho ** 2) / full.size)
    assert full.mean() == pytest.approx(ergodic, abs=5 * sd)


def test_transfer_chunk_edges_keep_the_chain():
    # Nearly static channel (rho ~ 0.999) drawn in chunks of 5 blocks: the rate change across a
    # chunk edge has the same law as inside a chunk (a restart at chunk edges would be ~30x larger).
    s, tc, fd, chunk = 2, 1e-3, 10.0, 5
    power = np.array([0.05, 0.2])
    bw = np.full(s, 360e3)
    fading = ObservedFading(1, s, 0.0, fd, tc, np.random.SeedSequence(85))
    res = transfer_over_blocks(fading, 0, np.arange(s), power, bw, GAIN, N0, 0.0, 3.0e7, chunk_blocks=chunk)
    r = res.rates_bps
    assert r.size > 2000
    d = np.abs(np.diff(r))  # d[k]: block k -> k + 1 (block 0 is the first chunk's first block)
    at_edge = (np.arange(d.size) + 1) % chunk == 0
    assert stats.ks_2samp(d[at_edge], d[~at_edge]).pvalue > 1e-3


def test_transfer_zero_bits_and_dead_link(monkeypatch):
    fading = ObservedFading(2, 3, 0.0, 10.0, 0.01, np.random.SeedSequence(84))
    res = transfer_over_blocks(fading, 0, [0, 1, 2], [1.0, 1.0, 1.0], [1e5] * 3, GAIN, N0, 1.234, 0.0)
    assert res.end_s == 1.234 and res.starts_s.size == res.ends_s.size == res.rates_bps.size == 0
    monkeypatch.setattr(observed_fading_module, "MAX_TRANSFER_BLOCKS", 2000)
    with pytest.raises(TransferError) as info:
        transfer_over_blocks(fading, 1, [0, 1, 2], [0.0, 0.0, 0.0], [1e5] * 3, GAIN, N0, 0.5, 1e3)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value) and "2000" in str(info.value)
    with pytest.raises(TransferError):
        transfer_over_blocks(fading, 1, [], [], [], GAIN, N0, 0.5, 1e3)


# -- 9. block_index at edges ---------------------------------------------------------------------

@pytest.mark.parametrize("tc", [0.1, 0.01, 1e-3, 0.3, 1.0 / 3.0, 7e-4])
def test_block_index_at_edges(tc):
    rng = np.random.default_rng(91)
    ns = np.unique(np.concatenate([np.arange(0, 400), rng.integers(0, 10 ** 6, 1500),
                                   [10 ** 6 - 1, 10 ** 6]]))
    for n in ns:
        n = int(n)
        edge = n * tc  # the same float transfer_over_blocks uses as the edge of block n
        assert block_index(edge, tc) == n
        assert block_index((n + 0.5) * tc, tc) == n
        if n > 0:
            assert block_index(np.nextafter(edge, -np.inf), tc) == n - 1
    # the ones where t / T_c rounds below the integer
    bad = [n for n in range(1, 2000) if math.floor((n * tc) / tc) != n]
    for n in bad:
        assert block_index(n * tc, tc) == n


def test_bad_draw_arguments_are_one_line_channel_errors():
    import channel_models as cm

    f = cm.ObservedFading(1, 4, 0.0, 10.0, 0.01, np.random.SeedSequence(0))
    for subs, blocks in (([0, 1], 0), ([1, 1], 1), ([-1], 1), ([4], 1)):
        with pytest.raises(cm.ChannelModelError) as err:
            f.draw(0, subs, 5, blocks)
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(cm.ChannelModelError):
        cm.transfer_over_blocks(f, 0, [0], [0.1], [360e3], 1e-10, 1e-20, 0.0, 1e6, chunk_blocks=0)


def test_blocks_drawn_counts_every_coefficient_drawn():
    """The cost counter: blocks x subchannels of each draw (the whole band when the subchannels are correlated),
    including the single-subchannel path and the draws a transfer makes: exactly its blocks, none past its end."""
    f = ObservedFading(3, 8, 0.0, 10.0, 0.01, np.random.SeedSequence(5))
    f.draw(0, [2], 0, 7)
    f.draw(1, [0, 3, 5], 4, 10)
    assert f.blocks_drawn == 7 + 30
    res = transfer_over_blocks(f, 2, [1, 4], [0.1, 0.1], [1e5, 1e5], 1e-9, 4e-21, 0.0, 5e5, chunk_blocks=6)
    assert res.completed and res.rates_bps.size > 6  # across chunk edges
    assert f.blocks_drawn == 37 + 2 * res.rates_bps.size
    corr = ObservedFading(1, 8, 0.0, 10.0, 0.01, np.random.SeedSequence(6), coherence_bandwidth_hz=1e6,
                          subchannel_bandwidth_hz=1e5)
    corr.draw(0, [1, 2], 0, 3)
    assert corr.blocks_drawn == 3 * 8


@pytest.mark.parametrize("k_lin, s", [(0.0, 1), (K_RICIAN, 1), (0.0, 3)])
def test_end_only_transfer_equals_the_full_transfer(monkeypatch, k_lin, s):
    """transfer_end_s (the static world's hot path) gives the end time of transfer_over_blocks bit for bit and
    leaves the same state: over a client's transfers with gaps between them, one restarting in the block where the
    last ended, and transfers longer than the client's normal buffer (refilled mid-transfer; a buffer of 64
    normals here, refilled dozens of times a transfer, must not change a bit either)."""
    tc, fd = 1e-3, 30.0
    power, bw = np.linspace(0.02, 0.1, s), np.full(s, 360e3)
    subs = np.arange(s)
    plan = [(0.0123, 2.0e6), (0.0901, 5.0e5), (None, 3.0e6), (1.5, 8.0e6), (1.5004, 1.0e4)]

    def run(end_only, min_normals):
        monkeypatch.setattr(observed_fading_module, "MIN_NORMALS", min_normals)
        fading = ObservedFading(2, s, k_lin, fd, tc, np.random.SeedSequence(83))
        ends, last_end = [], 0.0
        for start, bits in plan:
            start = last_end if start is None else max(start, last_end)
            if end_only:
                end = fading.transfer_end_s(1, subs, power, bw, GAIN, N0, start, bits)
            else:
                end = transfer_over_blocks(fading, 1, subs, power, bw, GAIN, N0, start, bits).end_s
            ends.append(end)
            last_end = end
        after = fading.draw(1, subs, block_index(last_end, tc) + 7, 3)  # the state (and stream) left behind
        return ends, after, fading.blocks_drawn

    reference = run(False, 4096)
    assert len(set(reference[0])) == len(plan) and reference[2] > 3000  # thousands of blocks over the plan
    for end_only, min_normals in ((True, 1024), (True, 64), (False, 64)):
        ends, after, drawn = run(end_only, min_normals)
        assert ends == reference[0]
        np.testing.assert_array_equal(after, reference[1])
        assert drawn == reference[2]
