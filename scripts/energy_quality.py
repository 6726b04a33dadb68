"""bcd against the exhaustive oracle on the 100 instances of tests/solvers/test_energy_objectives.py (docs/energy.md,
"Quality"): the mean and worst gap per objective and split rule. Usage: python scripts/energy_quality.py"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import solvers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "solvers"))
from test_energy_objectives import instance  # noqa: E402  (the test's instances, not a copy of them)


def main() -> None:
    rows = []
    start = time.perf_counter()
    for seed in range(100):  # the test's loop: objective by parity, per-client splits every other pair
        objective = ("weighted", "delay-under-energy")[seed % 2]
        per_client = (seed // 2) % 2 == 1
        p = instance(1000 + seed, objective=objective, per_client=per_client)
        gap = solvers.solve(p, "bcd").objective_s / solvers.solve(p, "exact").objective_s - 1
        rows.append((objective, per_client, gap))
    gaps = np.array([g for _, _, g in rows])
    print(f"100 instances: mean gap {gaps.mean() * 100:.3f} %, worst {gaps.max() * 100:.3f} %, optimal (< 1e-9) on "
          f"{int((gaps < 1e-9).sum())}, {time.perf_counter() - start:.0f} s")
    for objective in ("weighted", "delay-under-energy"):
        for per_client in (False, True):
            g = np.array([x for o, pc, x in rows if o == objective and pc == per_client])
            print(f"{objective:<19} {'per client' if per_client else 'common':<10} mean {g.mean() * 100:.3f} %, "
                  f"worst {g.max() * 100:.3f} %")


if __name__ == "__main__":
    main()
