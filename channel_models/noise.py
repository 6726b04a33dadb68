"""Receiver noise: thermal noise density plus the receiver noise figure.

N0 = -174 dBm/Hz (kT at 290 K) + NF dB, the convention of the system model (section 2) and of
3GPP link budgets; the noise power over a bandwidth B is N0 * B.
"""

from __future__ import annotations

from ._validation import check_range, check_positive
from .units import dbm_to_w

THERMAL_PSD_DBM_PER_HZ = -174.0


def noise_psd_w_per_hz(
    thermal_psd_dbm_per_hz: float = THERMAL_PSD_DBM_PER_HZ, noise_figure_db: float = 7.0
) -> float:
    """Noise power spectral density N0 in W/Hz."""
    check_range("noise_psd_w_per_hz", "thermal_psd_dbm_per_hz", thermal_psd_dbm_per_hz,
                -300.0, 0.0, "dBm/Hz")
    # A noise figure below 0 dB would mean a receiver quieter than thermal noise: not physical.
    check_range("noise_psd_w_per_hz", "noise_figure_db", noise_figure_db, 0.0, 100.0, "dB")
    return float(dbm_to_w(thermal_psd_dbm_per_hz + noise_figure_db))


def noise_power_w(
    bandwidth_hz,
    thermal_psd_dbm_per_hz: float = THERMAL_PSD_DBM_PER_HZ,
    noise_figure_db: float = 7.0,
):
    """Noise power N0 * B in W over ``bandwidth_hz`` (scalar or array)."""
    bw = check_positive("noise_power_w", "bandwidth_hz", bandwidth_hz, "Hz")
    return noise_psd_w_per_hz(thermal_psd_dbm_per_hz, noise_figure_db) * bw
