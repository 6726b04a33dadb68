"""Path loss against 3GPP TR 38.901 Table 7.4.1-1, re-derived here point by point with ``math``."""

import math

import numpy as np
import pytest

from channel_models import breakpoint_distance_m, large_scale_gain_linear, path_loss_db
from fsllm_sim.errors import ValidityRangeError

C = 3.0e8  # the table's note fixes c = 3.0e8 m/s


def ref_uma(d2, fc, hbs, hut, los):
    d3 = math.sqrt(d2 * d2 + (hbs - hut) ** 2)
    dbp = 4 * (hbs - 1.0) * (hut - 1.0) * fc * 1e9 / C
    if d2 <= dbp:
        pl_los = 28.0 + 22 * math.log10(d3) + 20 * math.log10(fc)
    else:
        pl_los = (28.0 + 40 * math.log10(d3) + 20 * math.log10(fc)
                  - 9 * math.log10(dbp * dbp + (hbs - hut) ** 2))
    if los:
        return pl_los
    return max(pl_los, 13.54 + 39.08 * math.log10(d3) + 20 * math.log10(fc) - 0.6 * (hut - 1.5))


def ref_umi(d2, fc, hbs, hut, los):
    d3 = math.sqrt(d2 * d2 + (hbs - hut) ** 2)
    dbp = 4 * (hbs - 1.0) * (hut - 1.0) * fc * 1e9 / C
    if d2 <= dbp:
        pl_los = 32.4 + 21 * math.log10(d3) + 20 * math.log10(fc)
    else:
        pl_los = (32.4 + 40 * math.log10(d3) + 20 * math.log10(fc)
                  - 9.5 * math.log10(dbp * dbp + (hbs - hut) ** 2))
    if los:
        return pl_los
    return max(pl_los, 35.3 * math.log10(d3) + 22.4 + 21.3 * math.log10(fc) - 0.3 * (hut - 1.5))


def ref_rma(d2, fc, hbs, hut, los, w=20.0, h=5.0):
    d3 = math.sqrt(d2 * d2 + (hbs - hut) ** 2)
    dbp = 2 * math.pi * hbs * hut * fc * 1e9 / C

    def pl1(d):
        return (20 * math.log10(40 * math.pi * d * fc / 3) + min(0.03 * h ** 1.72, 10) * math.log10(d)
                - min(0.044 * h ** 1.72, 14.77) + 0.002 * math.log10(h) * d)

    pl_los = pl1(d3) if d2 <= dbp else pl1(dbp) + 40 * math.log10(d3 / dbp)
    if los:
        return pl_los
    pl_nlos = (161.04 - 7.1 * math.log10(w) + 7.5 * math.log10(h)
               - (24.37 - 3.7 * (h / hbs) ** 2) * math.log10(hbs)
               + (43.42 - 3.1 * math.log10(hbs)) * (math.log10(d3) - 3)
               + 20 * math.log10(fc) - (3.2 * math.log10(11.75 * hut) ** 2 - 4.97))
    return max(pl_los, pl_nlos)


CASES = [
    # scenario, reference, fc_ghz, h_bs, h_ut, distances (both sides of the breakpoint)
    ("uma", ref_uma, 3.5, 25.0, 1.5, [10, 35, 80, 150, 300, 559, 561, 800, 1500, 3000, 5000]),
    ("uma", ref_uma, 2.0, 25.0, 3.0, [10, 50, 200, 700, 1200, 1279, 1281, 2500, 4000, 5000]),
    ("uma", ref_uma, 28.0, 25.0, 1.5, [10, 50, 200, 700, 1200, 2500, 4000, 4470, 4490, 5000]),
    ("umi", ref_umi, 3.5, 10.0, 1.5, [10, 20, 50, 100, 209, 211, 400, 800, 2000, 5000]),
    ("umi", ref_umi, 0.9, 10.0, 10.0, [10, 30, 60, 120, 200, 400, 700, 1200, 3000, 5000]),
    ("rma", ref_rma, 3.5, 35.0, 1.5, [10, 50, 300, 1000, 2500, 3800, 3900, 4500, 4800, 5000]),
    ("rma", ref_rma, 0.7, 35.0, 1.5, [10, 40, 100, 400, 700, 760, 800, 1500, 3000, 5000]),
]


@pytest.mark.parametrize("scenario,ref,fc,hbs,hut,dists", CASES)
@pytest.mark.parametrize("los", [True, False])
def test_path_loss_matches_table_pointwise(scenario, ref, fc, hbs, hut, dists, los):
    got = path_loss_db(scenario, np.array(dists, float), fc, hbs, hut, np.full(len(dists), los))
    want = [ref(float(d), fc, hbs, hut, los) for d in dists]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("scenario,ref,fc,hbs,hut,dists", CASES)
def test_breakpoint_is_crossed_by_the_cases(scenario, ref, fc, hbs, hut, dists):
    d_bp = float(breakpoint_distance_m(scenario, fc, hbs, hut))
    assert min(dists) < d_bp < max(dists)


def test_rma_los_beyond_5km_to_10km():
    dists = [5500, 7000, 8500, 10000]
    got = path_loss_db("rma", np.array(dists, float), 3.5, 35.0, 1.5, True)
    np.testing.assert_allclose(got, [ref_rma(d, 3.5, 35.0, 1.5, True) for d in dists], atol=1e-9)


def test_literal_values_checked_by_hand():
    # UMa LOS, d = 100 m < d'_BP = 4*24*0.5*3.5e9/3e8 = 560 m:
    # d_3D = sqrt(100^2 + 23.5^2) = 102.7241; 28 + 22*2.011672 + 20*0.544068 = 83.1381 dB.
    assert path_loss_db("uma", 100.0, 3.5, 25.0, 1.5, True) == pytest.approx(83.1381, abs=1e-3)
    assert breakpoint_distance_m("uma", 3.5, 25.0, 1.5) == pytest.approx(560.0)
    # UMa NLOS, d = 1000 m: 13.54 + 39.08*log10(1000.2761) + 10.8814 = 141.666 dB.
    assert path_loss_db("uma", 1000.0, 3.5, 25.0, 1.5, False) == pytest.approx(141.666, abs=1e-3)
    # UMa LOS beyond the breakpoint, d = 1000 m: 28 + 40*3.00012 + 10.8814 - 9*log10(314152.25)
    assert path_loss_db("uma", 1000.0, 3.5, 25.0, 1.5, True) == pytest.approx(109.412, abs=1e-3)
    # UMi LOS, d = 50 m (d'_BP = 210 m): 32.4 + 21*log10(50.7174) + 10.8814 = 79.090 dB.
    assert path_loss_db("umi", 50.0, 3.5, 10.0, 1.5, True) == pytest.approx(79.090, abs=1e-3)
    # RMa LOS, d = 1000 m < d_BP = 2*pi*35*1.5*3.5e9/3e8 = 3848.45 m:
    # 20*log10(40*pi*1000.561*3.5/3) + 0.4779*3.00024 - 0.70092 + 0.002*0.69897*1000.561 = 105.459.
    assert breakpoint_distance_m("rma", 3.5, 35.0, 1.5) == pytest.approx(3848.45, abs=0.01)
    assert path_loss_db("rma", 1000.0, 3.5, 35.0, 1.5, True) == pytest.approx(105.459, abs=2e-3)


def test_log_distance_literals_and_los_ignored():
    d = np.array([100.0, 500.0, 1000.0, 2000.0])
    want = [90.5, 116.7814, 128.1, 139.4186]
    for los in (True, False):
        got = path_loss_db("log-distance", d, 3.5, 25.0, 1.5, los)
        np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("scenario,hbs,hut", [("uma", 25.0, 1.5), ("umi", 10.0, 1.5), ("rma", 35.0, 1.5)])
def test_nlos_never_below_los(scenario, hbs, hut):
    d = np.geomspace(10.0, 5000.0, 200)
    pl_los = path_loss_db(scenario, d, 3.5, hbs, hut, True)
    pl_nlos = path_loss_db(scenario, d, 3.5, hbs, hut, False)
    assert np.all(pl_nlos >= pl_los)
    assert np.all(np.diff(pl_los) > 0) and np.all(np.diff(pl_nlos) > 0)


def test_broadcasting_mixed_los_and_heights():
    d = np.array([[50.0, 800.0], [120.0, 3000.0]])
    los = np.array([[True, False], [False, True]])
    hut = np.array([1.5, 12.0])
    got = path_loss_db("uma", d, 3.5, 25.0, hut, los)
    for i in range(2):
        for j in range(2):
            assert got[i, j] == pytest.approx(ref_uma(d[i, j], 3.5, 25.0, hut[j], los[i, j]), abs=1e-9)


def test_large_scale_gain():
    assert large_scale_gain_linear(100.0, 3.0) == pytest.approx(10 ** (-10.3))
    np.testing.assert_allclose(large_scale_gain_linear([80.0, 120.0]), [1e-8, 1e-12])


@pytest.mark.parametrize("call,fragment", [
    (lambda: path_loss_db("uma", 5.0, 3.5, 25.0, 1.5, True),
     "path_loss_db(uma): d_2d_m=5.0 outside the validity range [10, 5000] m"),
    (lambda: path_loss_db("uma", 6000.0, 3.5, 25.0, 1.5, False), "d_2d_m=6000.0"),
    (lambda: path_loss_db("umi", 100.0, 120.0, 10.0, 1.5, True),
     "fc_ghz=120.0 outside the validity range [0.5, 100] GHz"),
    (lambda: path_loss_db("rma", 100.0, 35.0, 35.0, 1.5, True),
     "fc_ghz=35.0 outside the validity range [0.5, 30] GHz"),
    (lambda: path_loss_db("uma", 100.0, 3.5, 30.0, 1.5, True),
     "h_bs_m=30.0 outside the validity range [25, 25] m"),
    (lambda: path_loss_db("umi", 100.0, 3.5, 10.0, 30.0, True), "h_ut_m=30.0"),
    (lambda: path_loss_db("rma", 100.0, 3.5, 200.0, 1.5, True),
     "h_bs_m=200.0 outside the validity range [10, 150] m"),
    (lambda: path_loss_db("rma", 7000.0, 3.5, 35.0, 1.5, False),
     "d_2d_m (NLOS)=7000.0 outside the validity range [10, 5000] m"),
    (lambda: path_loss_db("rma", 11000.0, 3.5, 35.0, 1.5, True), "d_2d_m (LOS)=11000.0"),
    (lambda: path_loss_db("rma", 100.0, 3.5, 35.0, 1.5, True, street_width_m=60.0), "street_width_m=60.0"),
    (lambda: path_loss_db("log-distance", 5.0, 3.5, 25.0, 1.5, False), "d_2d_m=5.0"),
    (lambda: path_loss_db("uma", np.nan, 3.5, 25.0, 1.5, True), "d_2d_m=nan"),
    (lambda: path_loss_db("indoor", 100.0, 3.5, 25.0, 1.5, True), "scenario='indoor'"),
])
def test_validity_errors_name_argument_value_and_range(call, fragment):
    with pytest.raises(ValidityRangeError) as info:
        call()
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg
