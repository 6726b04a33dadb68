"""Channel models for fsllm-sim (system model, section 2).

One concept per module: ``units`` (dB/W conversions), ``noise`` (N0), ``ofdma`` (bands, Shannon
rates, water-filling), ``downlink`` (shared BS downlink), ``pathloss`` (TR 38.901 Table 7.4.1-1
and log-distance), ``los`` (Table 7.4.2-1), ``shadowing`` (log-normal, optionally correlated),
``layout`` (client placement), ``fading`` (Rayleigh/Rician Gauss-Markov block fading),
``observed_fading`` (the same law drawn lazily per client, and transfers across fading blocks),
``ergodic`` (fading-averaged spectral efficiency E[log2(1 + snr |h|^2)], Rayleigh and Rician).
Bad arguments raise ``channel_models.errors.ValidityRangeError`` (a ``ChannelModelError``, a ``ValueError``).
"""

from .downlink import downlink_rate_bps, downlink_rate_function
from .ergodic import (ergodic_rate_bps, ergodic_spectral_efficiency_rayleigh,
                      ergodic_spectral_efficiency_rician)
from .errors import ChannelModelError, ValidityRangeError
from .fading import (BlockFading, doppler_hz, gains_from_fading, gauss_markov_rho,
                     rician_k_db_to_linear, rician_k_factor_db, subchannel_correlation_factor)
from .layout import distances_2d_m, place_clients_in_disc
from .los import draw_los, los_probability
from .observed_fading import (ObservedFading, Outage, TransferError, TransferResult, bits_until, block_index,
                              transfer_over_blocks, transfer_over_steps)
from .noise import noise_power_w, noise_psd_w_per_hz
from .ofdma import (Band, client_rates_bps, min_power_for_rate_w, min_power_for_rate_w_batched,
                    nr_rb_bandwidth_hz, nr_subchannel_bandwidth_hz, subchannel_rate_bps,
                    water_filling_power_w, water_filling_power_w_batched)
from .pathloss import breakpoint_distance_m, large_scale_gain_linear, path_loss_db
from .shadowing import draw_shadowing_db, shadowing_correlation_distance_m, shadowing_std_db
from .units import db_to_linear, dbm_to_w, linear_to_db, w_to_dbm

__all__ = [
    "Band", "BlockFading", "breakpoint_distance_m", "ChannelModelError", "client_rates_bps", "db_to_linear",
    "dbm_to_w", "distances_2d_m", "ergodic_rate_bps", "ergodic_spectral_efficiency_rayleigh",
    "ergodic_spectral_efficiency_rician", "doppler_hz", "downlink_rate_bps", "downlink_rate_function", "draw_los",
    "draw_shadowing_db", "gains_from_fading", "gauss_markov_rho", "large_scale_gain_linear",
    "linear_to_db", "los_probability", "min_power_for_rate_w", "min_power_for_rate_w_batched",
    "noise_power_w", "ObservedFading", "Outage", "bits_until", "transfer_over_steps", "TransferError",
    "TransferResult", "block_index",
    "transfer_over_blocks", "noise_psd_w_per_hz", "nr_rb_bandwidth_hz", "nr_subchannel_bandwidth_hz",
    "path_loss_db", "place_clients_in_disc", "rician_k_db_to_linear", "rician_k_factor_db",
    "shadowing_correlation_distance_m", "shadowing_std_db", "subchannel_correlation_factor",
    "subchannel_rate_bps", "ValidityRangeError", "w_to_dbm", "water_filling_power_w", "water_filling_power_w_batched",
]
