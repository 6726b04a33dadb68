"""Allocations the jobs evaluate: the equal-share reference and solutions saved by `fsllm-sim optimize`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from channel_models import water_filling_power_w_batched
from solvers.problem import Problem

from ..errors import ConfigError


def interleaved_assignment(num_clients: int, num_subchannels: int) -> np.ndarray:
    """Subchannel i goes to client i mod K: equal counts (±1) spread over the band (frequency diversity)."""
    return np.arange(num_subchannels) % num_clients


def water_filled_powers(assign: np.ndarray, gain: np.ndarray, bandwidth_hz: np.ndarray, noise_psd_w_per_hz: float,
                        p_max_w: np.ndarray) -> np.ndarray:
    """Each client water-fills its cap over its own subchannels; returns the per-subchannel power (S,)."""
    k = gain.shape[0]
    mask = assign[None, :] == np.arange(k)[:, None]
    powers = water_filling_power_w_batched(gain, np.broadcast_to(bandwidth_hz, gain.shape), noise_psd_w_per_hz,
                                           p_max_w, mask=mask)
    return powers.sum(axis=0)


def equal_share_allocation(problem: Problem) -> dict:
    """Equal subchannel counts with water-filled power on both bands (the default run's reference)."""
    k = problem.num_clients
    a_s = interleaved_assignment(k, problem.num_subchannels_s)
    a_f = interleaved_assignment(k, problem.num_subchannels_f)
    return {
        "assign_s": a_s,
        "power_s_w": water_filled_powers(a_s, problem.gain_s, problem.bandwidth_s_hz, problem.noise_psd_w_per_hz,
                                         problem.p_max_w),
        "assign_f": a_f,
        "power_f_w": water_filled_powers(a_f, problem.gain_f, problem.bandwidth_f_hz, problem.noise_psd_w_per_hz,
                                         problem.p_max_w),
    }


def load_solution_allocation(path: str | Path, problem: Problem) -> tuple[dict, int, int]:
    """Read a solution JSON written by `fsllm-sim optimize`; returns (allocation, split, rank)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--allocation: {p} does not exist")
    try:
        data = json.loads(p.read_text())
        alloc = {key: np.asarray(data[key]) for key in ("assign_s", "power_s_w", "assign_f", "power_f_w")}
        split, rank = int(data["split"]), int(data["rank"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"--allocation: {p} is not a solution file written by `fsllm-sim optimize` ({exc})") from None
    if alloc["assign_s"].shape != (problem.num_subchannels_s,) or alloc["assign_f"].shape != (problem.num_subchannels_f,):
        raise ConfigError(f"--allocation: {p} was made for another band layout "
                          f"({alloc['assign_s'].size}+{alloc['assign_f'].size} subchannels, scenario has "
                          f"{problem.num_subchannels_s}+{problem.num_subchannels_f})")
    alloc["assign_s"] = alloc["assign_s"].astype(int)
    alloc["assign_f"] = alloc["assign_f"].astype(int)
    return alloc, split, rank
