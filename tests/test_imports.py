"""Where classes and functions live after the layering fixes, and that the old import paths still work.

* the MILP model (``solvers.milp_model``), its backends (``solvers.backends``) and the methods using
  them (``solvers.exact``, ``solvers.relaxation``) import one way; ``solvers.milp`` and
  ``solvers.gurobi_backend`` only re-export;
* ``channel_models`` owns its exceptions; ``fsllm_sim.errors`` re-exports the same classes;
* ``SplitRankProfile`` lives in ``fsllm_sim.profiles``; ``solvers.problem`` re-exports it.

The static import graph is checked in ``tests/test_layers.py``; here each module is also imported first
in a fresh interpreter, where an import cycle would show as a partially initialised module.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["solvers.backends.gurobi", "solvers.relaxation", "solvers.milp",
                                    "solvers.gurobi_backend", "fsllm_sim.errors", "solvers.problem"])
def test_module_imports_first_in_a_fresh_interpreter(module):
    res = _fresh(f"import {module}")
    assert res.returncode == 0, res.stderr


def test_channel_models_import_nothing_of_the_project_at_run_time():
    res = _fresh("import sys, channel_models, channel_models.errors\n"
                 "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fsllm_sim', 'solvers', 'plots'))\n"
                 "assert not bad, bad\n")
    assert res.returncode == 0, res.stderr


def test_old_milp_and_gurobi_paths_re_export_the_same_objects():
    from solvers import backends, exact, gurobi_backend, milp, milp_model, registry
    from solvers.backends import gurobi, highs

    for name in ("INF", "RATE_UNIT_BPS", "LinearModel", "MilpResult", "safe_lp_bound", "AllocationModel"):
        assert getattr(milp, name) is getattr(milp_model, name), name
    assert milp.solve_highs is highs.solve_highs and milp.HighsBackend is highs.HighsBackend
    assert milp.make_backend is backends.make_backend
    for name in ("SIZE_LIMITED_LICENCE", "GurobiBackend", "licence_excess", "solve_gurobi_model"):
        assert getattr(gurobi_backend, name) is getattr(gurobi, name), name
    assert gurobi_backend.solve_gurobi is exact.solve_gurobi
    assert registry.get_method("gurobi").__doc__.startswith("solvers.exact:solve_gurobi")
    assert isinstance(backends.make_backend("highs"), highs.HighsBackend)
    assert isinstance(backends.make_backend("gurobi"), gurobi.GurobiBackend)
    with pytest.raises(ValueError, match="unknown MILP backend 'cplex'"):
        backends.make_backend("cplex")


def test_validity_range_error_is_one_class_owned_by_channel_models():
    import channel_models
    import fsllm_sim.errors as fe
    from channel_models import errors as ce

    assert fe.ValidityRangeError is ce.ValidityRangeError is channel_models.ValidityRangeError
    assert fe.ChannelModelError is ce.ChannelModelError
    assert issubclass(ce.ValidityRangeError, ce.ChannelModelError) and issubclass(ce.ChannelModelError, ValueError)
    assert ce.ValidityRangeError.__module__ == "channel_models.errors"
    # the CLI's one-line errors: FsllmError and the channel models' own
    assert fe.USER_ERRORS == (fe.FsllmError, ce.ChannelModelError)
    with pytest.raises(fe.ValidityRangeError, match="numerology_mu=5"):
        channel_models.nr_subchannel_bandwidth_hz(12, 5)
    try:
        channel_models.path_loss_db("uma", [100.0], 200.0, 25.0, 1.5, [True])
    except fe.USER_ERRORS as exc:
        assert isinstance(exc, ce.ValidityRangeError) and "\n" not in str(exc)
    else:
        pytest.fail("a carrier of 200 GHz is outside UMa's validity range")


def test_split_rank_profile_lives_in_fsllm_sim_profiles():
    import solvers
    import solvers.problem
    from fsllm_sim.errors import SolverError
    from fsllm_sim.profiles import SplitRankProfile

    assert solvers.problem.SplitRankProfile is SplitRankProfile is solvers.SplitRankProfile
    assert SplitRankProfile.__module__ == "fsllm_sim.profiles"
    ok = [[1.0]]
    prof = SplitRankProfile(splits=[2], ranks=[4], client_forward_flops=ok, client_backward_flops=ok,
                            server_flops=ok, activation_bits=ok, adapter_bits=ok)
    assert prof.index(2, 4) == (0, 0)
    with pytest.raises(SolverError, match=r"profile.server_flops has shape \(1, 2\), expected"):
        SplitRankProfile(splits=[2], ranks=[4], client_forward_flops=ok, client_backward_flops=ok,
                         server_flops=[[1.0, 2.0]], activation_bits=ok, adapter_bits=ok)
