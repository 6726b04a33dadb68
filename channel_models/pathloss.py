"""Large-scale path loss, 3GPP TR 38.901 Table 7.4.1-1 (UMa, UMi-Street Canyon, RMa), plus the
log-distance macro model 128.1 + 37.6 log10(d_km) (TR 36.814 Table A.2.1.1-2, 2 GHz) that many
papers use.

Choices, all documented here because they are not free parameters of the table:

* Distances: d_3D = sqrt(d_2D^2 + (h_BS - h_UT)^2). The LOS branch is PL1 for
  10 m <= d_2D <= d_BP and PL2 beyond (the table's ranges are in d_2D).
* Breakpoint (table Note 1): UMa/UMi use d'_BP = 4 h'_BS h'_UT f_c / c with effective heights
  h' = h - h_E. For UMi h_E = 1 m by the table. For UMa the table draws h_E = 1 m with probability
  1/(1 + C(d_2D, h_UT)), and C = 0 for h_UT < 13 m, so h_E = 1 m is exact for the usual UT
  heights; for h_UT >= 13 m we keep h_E = 1 m (its most likely value) instead of drawing, which
  keeps the path loss deterministic. RMa uses the real heights: d_BP = 2 pi h_BS h_UT f_c / c.
  c = 3.0e8 m/s as the table's note fixes it.
* NLOS is max(PL_LOS, PL'_NLOS) as the table prescribes, so NLOS is never below LOS.
* Validity ranges raise ``ValidityRangeError``: f_c in [0.5, 100] GHz (UMa, UMi) or [0.5, 30] GHz
  (RMa) per Note 2; d_2D in [10, 5000] m (UMa, UMi, RMa NLOS) or [10, 10000] m (RMa LOS);
  h_BS = 25 m (UMa) and 10 m (UMi) as the table fixes them, [10, 150] m (RMa); h_UT in
  [1.5, 22.5] m (UMa, UMi) or [1, 10] m (RMa); RMa street width W and building height h in
  [5, 50] m (defaults 20 m and 5 m).
* Log-distance: d in km from d_2D; f_c, heights and the LOS state are ignored (the model has
  none). Its source gives no range; we accept d_2D in [10, 10000] m, the span of macro layouts.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_range

SPEED_OF_LIGHT_3GPP_MPS = 3.0e8
SCENARIOS = ("uma", "umi", "rma", "log-distance")

# Effective environment height for the UMa/UMi breakpoint (see module docstring).
H_E_M = 1.0


def _d_3d_m(d_2d_m, h_bs_m, h_ut_m):
    return np.sqrt(d_2d_m**2 + (h_bs_m - h_ut_m) ** 2)


def _check_common(where, scenario, d_2d_m, fc_ghz, h_bs_m, h_ut_m, los):
    """Validate a 3GPP scenario's inputs; returns float arrays (d, fc, hbs, hut) and bool los."""
    los_arr = np.asarray(los, dtype=bool)
    fc = check_range(where, "fc_ghz", fc_ghz, 0.5, 30.0 if scenario == "rma" else 100.0, "GHz")
    if scenario == "uma":
        hbs = check_range(where, "h_bs_m", h_bs_m, 25.0, 25.0, "m")
        hut = check_range(where, "h_ut_m", h_ut_m, 1.5, 22.5, "m")
        d = check_range(where, "d_2d_m", d_2d_m, 10.0, 5000.0, "m")
    elif scenario == "umi":
        hbs = check_range(where, "h_bs_m", h_bs_m, 10.0, 10.0, "m")
        hut = check_range(where, "h_ut_m", h_ut_m, 1.5, 22.5, "m")
        d = check_range(where, "d_2d_m", d_2d_m, 10.0, 5000.0, "m")
    else:
        hbs = check_range(where, "h_bs_m", h_bs_m, 10.0, 150.0, "m")
        hut = check_range(where, "h_ut_m", h_ut_m, 1.0, 10.0, "m")
        d = np.asarray(d_2d_m, dtype=float)
        d_b, los_b = np.broadcast_arrays(d, los_arr)
        # RMa LOS reaches 10 km but NLOS only 5 km: check each link against its own range.
        check_range(where, "d_2d_m (LOS)", d_b[los_b], 10.0, 10000.0, "m")
        check_range(where, "d_2d_m (NLOS)", d_b[~los_b], 10.0, 5000.0, "m")
    return d, fc, hbs, hut, los_arr


def breakpoint_distance_m(scenario: str, fc_ghz, h_bs_m, h_ut_m):
    """Breakpoint distance of the LOS model (Table 7.4.1-1 Note 1); d'_BP for UMa/UMi, d_BP for RMa."""
    where = f"breakpoint_distance_m({scenario})"
    check_choice(where, "scenario", scenario, ("uma", "umi", "rma"))
    fc_hz = np.asarray(fc_ghz, dtype=float) * 1e9
    hbs = np.asarray(h_bs_m, dtype=float)
    hut = np.asarray(h_ut_m, dtype=float)
    if scenario == "rma":
        return 2.0 * np.pi * hbs * hut * fc_hz / SPEED_OF_LIGHT_3GPP_MPS
    return 4.0 * (hbs - H_E_M) * (hut - H_E_M) * fc_hz / SPEED_OF_LIGHT_3GPP_MPS


def _uma(d2, d3, fc, hbs, hut, los):
    d_bp = breakpoint_distance_m("uma", fc, hbs, hut)
    lg_d3, lg_fc = np.log10(d3), np.log10(fc)  # once: a moving client's timeline evaluates this every step
    pl1 = 28.0 + 22.0 * lg_d3 + 20.0 * lg_fc
    pl2 = (28.0 + 40.0 * lg_d3 + 20.0 * lg_fc
           - 9.0 * np.log10(d_bp**2 + (hbs - hut) ** 2))
    pl_los = np.where(d2 <= d_bp, pl1, pl2)
    pl_nlos = 13.54 + 39.08 * lg_d3 + 20.0 * lg_fc - 0.6 * (hut - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def _umi(d2, d3, fc, hbs, hut, los):
    d_bp = breakpoint_distance_m("umi", fc, hbs, hut)
    lg_d3, lg_fc = np.log10(d3), np.log10(fc)
    pl1 = 32.4 + 21.0 * lg_d3 + 20.0 * lg_fc
    pl2 = (32.4 + 40.0 * lg_d3 + 20.0 * lg_fc
           - 9.5 * np.log10(d_bp**2 + (hbs - hut) ** 2))
    pl_los = np.where(d2 <= d_bp, pl1, pl2)
    pl_nlos = 35.3 * lg_d3 + 22.4 + 21.3 * lg_fc - 0.3 * (hut - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def _rma_pl1(d3, fc, h):
    return (20.0 * np.log10(40.0 * np.pi * d3 * fc / 3.0)
            + np.minimum(0.03 * h**1.72, 10.0) * np.log10(d3)
            - np.minimum(0.044 * h**1.72, 14.77)
            + 0.002 * np.log10(h) * d3)


def _rma(d2, d3, fc, hbs, hut, los, w, h):
    d_bp = breakpoint_distance_m("rma", fc, hbs, hut)
    # PL2 continues PL1 from the breakpoint, evaluated at d_BP as the table writes it.
    pl_los = np.where(d2 <= d_bp, _rma_pl1(d3, fc, h),
                      _rma_pl1(d_bp, fc, h) + 40.0 * np.log10(d3 / d_bp))
    pl_nlos = (161.04 - 7.1 * np.log10(w) + 7.5 * np.log10(h)
               - (24.37 - 3.7 * (h / hbs) ** 2) * np.log10(hbs)
               + (43.42 - 3.1 * np.log10(hbs)) * (np.log10(d3) - 3.0)
               + 20.0 * np.log10(fc)
               - (3.2 * np.log10(11.75 * hut) ** 2 - 4.97))
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def log_distance_path_loss_db(d_2d_m):
    """128.1 + 37.6 log10(d / 1 km), d_2D in [10, 10000] m."""
    d = check_range("path_loss_db(log-distance)", "d_2d_m", d_2d_m, 10.0, 10000.0, "m")
    return 128.1 + 37.6 * np.log10(d / 1000.0)


def path_loss_db(scenario: str, d_2d_m, fc_ghz, h_bs_m, h_ut_m, los, *,
                 street_width_m: float = 20.0, building_height_m: float = 5.0):
    """Path loss in dB for each link; all array arguments broadcast together.

    ``los`` is a bool array (True = LOS). For "log-distance" ``fc_ghz``, the heights and ``los``
    are ignored. ``street_width_m`` and ``building_height_m`` are RMa's W and h.
    """
    check_choice("path_loss_db", "scenario", scenario, SCENARIOS)
    where = f"path_loss_db({scenario})"
    if scenario == "log-distance":
        pl = log_distance_path_loss_db(d_2d_m)
        return np.broadcast_to(pl, np.broadcast_shapes(pl.shape, np.shape(los))).copy()
    d2, fc, hbs, hut, los_arr = _check_common(where, scenario, d_2d_m, fc_ghz, h_bs_m, h_ut_m, los)
    d3 = _d_3d_m(d2, hbs, hut)
    if scenario == "uma":
        return _uma(d2, d3, fc, hbs, hut, los_arr)
    if scenario == "umi":
        return _umi(d2, d3, fc, hbs, hut, los_arr)
    w = check_range(where, "street_width_m", street_width_m, 5.0, 50.0, "m")
    h = check_range(where, "building_height_m", building_height_m, 5.0, 50.0, "m")
    return _rma(d2, d3, fc, hbs, hut, los_arr, w, h)


def large_scale_gain_linear(path_loss_db, shadowing_db=0.0):
    """Linear large-scale gain 10^(-(PL + X)/10) (system model, section 2)."""
    total_db = np.asarray(path_loss_db, dtype=float) + np.asarray(shadowing_db, dtype=float)
    return np.power(10.0, -total_db / 10.0)
