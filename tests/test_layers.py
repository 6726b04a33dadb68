"""Import layering of the project, read from the source with ``ast`` (nothing is imported or run).

Rules:

* ``channel_models`` is pure physics: it imports nothing of the project outside itself;
* ``solvers`` imports no training, engine, job or CLI code;
* inside ``fsllm_sim`` only the top layers (jobs, engine, cli, benchmarks) import ``solvers``;
* only the CLI, jobs and benchmarks import jobs or the CLI;
* no import cycle between modules (a package importing its own submodules through ``__init__`` is not one).

Every import counts, including those inside functions (a lazy import still ties the layers together).
The unit tests at the end feed the checker synthetic graphs, so a checker that reports nothing fails.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fsllm_sim", "channel_models", "solvers", "plots")
TOP_LAYERS = ("fsllm_sim.jobs", "fsllm_sim.engine", "fsllm_sim.cli", "fsllm_sim.benchmarks")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    mods = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _targets(module: str, is_package: bool, node, mods) -> list[str]:
    """The project modules one import statement names (a ``from`` import may name a package and its submodules)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    outs = [target] + [f"{target}.{a.name}" for a in node.names]
    return [o for o in outs if o in mods]


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (imports of its own parent packages left out)."""
    mods = project_modules(root, packages)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(m, is_package, node, mods):
                    if t != m and not m.startswith(t + "."):
                        edges[m].add(t)
    return edges


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Every edge ``a -> b`` that breaks a rule of the module docstring."""
    bad = []
    for m in sorted(edges):
        for t in sorted(edges[m]):
            if _under(m, "channel_models") and not _under(t, "channel_models"):
                bad.append(f"{m} -> {t} (channel_models imports nothing of the project)")
            if _under(m, "solvers") and any(_under(t, x) for x in ("fsllm_sim.training", "fsllm_sim.engine",
                                                                     "fsllm_sim.jobs", "fsllm_sim.cli")):
                bad.append(f"{m} -> {t} (solvers imports no training, engine, job or CLI code)")
            if (_under(m, "fsllm_sim") and _under(t, "solvers")
                    and not any(_under(m, x) for x in TOP_LAYERS)):
                bad.append(f"{m} -> {t} (only jobs, engine, cli and benchmarks import solvers)")
            if ((_under(t, "fsllm_sim.jobs") or _under(t, "fsllm_sim.cli"))
                    and not any(_under(m, x) for x in ("fsllm_sim.jobs", "fsllm_sim.cli", "fsllm_sim.benchmarks"))):
                bad.append(f"{m} -> {t} (only the CLI, jobs and benchmarks import jobs or the CLI)")
    return bad


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), sorted.

    A component made only of a package and its own submodules is left out: a package's ``__init__``
    re-exporting its submodules is how Python packages are written, not a layering cycle.
    """
    nodes = set(edges) | {t for ts in edges.values() for t in ts}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    comps = [c for c in comps if not all(_under(x, c[0]) for x in c)]
    return sorted(comps)


# ---------------------------------------------------------------------------------------------
# The project itself
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph():
    edges = import_graph()
    assert len(edges) > 50 and "solvers.exact" in edges and "channel_models.ofdma" in edges, sorted(edges)
    return edges


def test_no_import_against_the_layering(graph):
    assert layer_violations(graph) == []


def test_no_import_cycle(graph):
    assert import_cycles(graph) == []


def test_the_graph_sees_real_imports(graph):
    """Guards the reader itself: known edges (absolute, relative, lazy) are found."""
    assert "solvers.milp_model" in graph["solvers.exact"]  # from .milp_model import ...
    assert "solvers.backends" in graph["solvers.relaxation"]  # from .backends import ...
    assert "solvers.milp_model" in graph["solvers.backends.highs"]  # from ..milp_model import ...
    assert "channel_models.ofdma" in graph["solvers.problem"]  # from channel_models.ofdma import ...
    assert "channel_models.errors" in graph["fsllm_sim.errors"]
    assert "fsllm_sim.profiles" in graph["solvers.problem"]


# ---------------------------------------------------------------------------------------------
# The checker can fail
# ---------------------------------------------------------------------------------------------

def test_a_cycle_is_reported():
    edges = {"solvers.a": {"solvers.b"}, "solvers.b": {"solvers.c"}, "solvers.c": {"solvers.a"},
             "solvers.d": {"solvers.a"}, "fsllm_sim.x": set()}
    assert import_cycles(edges) == [["solvers.a", "solvers.b", "solvers.c"]]
    assert layer_violations(edges) == []


def test_a_two_module_cycle_across_packages_is_reported():
    edges = {"fsllm_sim.errors": {"channel_models.errors"}, "channel_models.errors": {"fsllm_sim.errors"}}
    assert import_cycles(edges) == [["channel_models.errors", "fsllm_sim.errors"]]


def test_a_package_importing_its_submodules_is_not_a_cycle():
    edges = {"solvers.backends": {"solvers.backends.highs"}, "solvers.backends.highs": set()}
    assert import_cycles(edges) == []


@pytest.mark.parametrize("edge", [
    ("channel_models.shadowing", "fsllm_sim.errors"),
    ("solvers.bcd", "fsllm_sim.training.models"),
    ("solvers.bcd", "fsllm_sim.engine"),
    ("solvers.bcd", "fsllm_sim.jobs.optimize"),
    ("solvers.bcd", "fsllm_sim.cli"),
    ("fsllm_sim.profiles", "solvers.problem"),
    ("fsllm_sim.network", "fsllm_sim.jobs.run"),
    ("plots.sweep", "fsllm_sim.cli"),
])
def test_a_bad_edge_is_reported(edge):
    m, t = edge
    edges = {m: {t}, t: set()}
    bad = layer_violations(edges)
    assert len(bad) >= 1 and all(b.startswith(f"{m} -> {t} (") for b in bad), bad
    assert import_cycles(edges) == []


@pytest.mark.parametrize("edge", [
    ("solvers.problem", "fsllm_sim.profiles"),
    ("solvers.exact", "fsllm_sim.errors"),
    ("fsllm_sim.jobs.optimize", "solvers.registry"),
    ("fsllm_sim.benchmarks.solvers", "solvers.exact"),
    ("fsllm_sim.errors", "channel_models.errors"),
    ("fsllm_sim.cli", "fsllm_sim.jobs.run"),
])
def test_an_allowed_edge_is_not_reported(edge):
    m, t = edge
    assert layer_violations({m: {t}, t: set()}) == []


def test_the_reader_finds_a_cycle_and_a_bad_import_in_a_source_tree(tmp_path):
    """Relative, absolute and function-level imports of a synthetic tree are all read."""
    files = {
        "channel_models/__init__.py": "",
        "channel_models/pathloss.py": "def f():\n    from fsllm_sim.errors import ValidityRangeError\n",
        "fsllm_sim/__init__.py": "",
        "fsllm_sim/errors.py": "",
        "solvers/__init__.py": "from .milp import x\n",
        "solvers/milp.py": "from .backends.gurobi import y\nx = 1\n",
        "solvers/backends/__init__.py": "",
        "solvers/backends/gurobi.py": "from ..exact import z\ny = 2\n",
        "solvers/exact.py": "import solvers.milp\nz = 3\n",
    }
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    edges = import_graph(tmp_path, ("fsllm_sim", "channel_models", "solvers"))
    assert edges["solvers.backends.gurobi"] == {"solvers.exact"}
    assert import_cycles(edges) == [["solvers.backends.gurobi", "solvers.exact", "solvers.milp"]]
    assert layer_violations(edges) == [
        "channel_models.pathloss -> fsllm_sim.errors (channel_models imports nothing of the project)"]
