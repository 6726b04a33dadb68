"""Block-fading generator speed against a bare draw of the same complex normals.

The reference is the least any generator of K x S fresh complex Gaussians per block must do:
two ``rng.standard_normal((K, S))`` calls (real and imaginary part) per block, in float64,
numpy's default. BlockFading adds the Gauss-Markov update, the Rician specular part and a fresh
output array per block. Its default dtype is complex64 (see ``channel_models.fading``); the
complex128 variant and a float32 bare draw are timed too, so both the headline ratio and the
like-for-like ratios are visible. Everything runs in one process, interleaved, several times,
and each keeps its best time, so machine load affects all alike. Target: ratio <= 1.5.
"""

from __future__ import annotations

import time

import numpy as np

from channel_models.fading import BlockFading, doppler_hz, rician_k_db_to_linear

TARGET_RATIO = 1.5


def _time_bare(num_clients, num_subchannels, num_blocks, seed, dtype) -> float:
    rng = np.random.default_rng(seed)
    shape = (num_clients, num_subchannels)
    start = time.perf_counter()
    for _ in range(num_blocks):
        rng.standard_normal(shape, dtype=dtype)
        rng.standard_normal(shape, dtype=dtype)
    return time.perf_counter() - start


def _time_block_fading(num_clients, num_subchannels, num_blocks, seed, dtype) -> float:
    rng = np.random.default_rng(seed)
    # Half the clients LOS (Rician, K = 9 dB), half Rayleigh, spread of speeds: the general path.
    k_linear = np.where(np.arange(num_clients) % 2 == 0, rician_k_db_to_linear(9.0), 0.0)
    speeds_mps = np.linspace(0.5, 15.0, num_clients)
    fading = BlockFading(num_clients, num_subchannels, k_linear, doppler_hz(speeds_mps, 3.5e9),
                         0.01, rng, dtype=dtype)
    start = time.perf_counter()
    for _ in fading.blocks(num_blocks):
        pass
    return time.perf_counter() - start


def run(num_clients: int = 1000, num_subchannels: int = 256, num_blocks: int = 100, seed: int = 0,
        repeats: int = 5) -> dict:
    """Best-of-``repeats`` times (s) and ratios; ``ratio`` is default BlockFading / bare float64."""
    args = (num_clients, num_subchannels, num_blocks, seed)
    timers = {
        "bare_s": lambda: _time_bare(*args, np.float64),
        "bare_float32_s": lambda: _time_bare(*args, np.float32),
        "block_fading_s": lambda: _time_block_fading(*args, np.complex64),
        "block_fading_complex128_s": lambda: _time_block_fading(*args, np.complex128),
    }
    best = {name: np.inf for name in timers}
    for _ in range(repeats):
        for name, timer in timers.items():
            best[name] = min(best[name], timer())
    return {
        "num_clients": num_clients,
        "num_subchannels": num_subchannels,
        "num_blocks": num_blocks,
        "repeats": repeats,
        **best,
        "ratio": best["block_fading_s"] / best["bare_s"],
        "ratio_complex64_vs_bare_float32": best["block_fading_s"] / best["bare_float32_s"],
        "ratio_complex128": best["block_fading_complex128_s"] / best["bare_s"],
        "target_ratio": TARGET_RATIO,
    }


def main() -> None:
    r = run()
    print(f"block fading: {r['num_clients']} clients x {r['num_subchannels']} subchannels x "
          f"{r['num_blocks']} blocks (best of {r['repeats']})")
    print(f"{'generator':<34}{'time (s)':>10}{'vs bare f64':>13}{'vs bare f32':>13}")
    rows = [
        ("bare standard_normal x2, float64", r["bare_s"]),
        ("bare standard_normal x2, float32", r["bare_float32_s"]),
        ("BlockFading complex64 (default)", r["block_fading_s"]),
        ("BlockFading complex128", r["block_fading_complex128_s"]),
    ]
    for name, t in rows:
        print(f"{name:<34}{t:>10.3f}{t / r['bare_s']:>13.2f}{t / r['bare_float32_s']:>13.2f}")
    verdict = "meets" if r["ratio"] <= TARGET_RATIO else "misses"
    print(f"ratio (default vs bare float64) {r['ratio']:.2f} {verdict} the target <= {TARGET_RATIO}")


if __name__ == "__main__":
    main()
