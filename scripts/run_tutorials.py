#!/usr/bin/env python
"""Run the tutorials of docs/tutorials/ as programs, so that what they show is what the code does.

    .venv/bin/python scripts/run_tutorials.py [NAME ...] [--update-figures]

Each tutorial (``docs/tutorials/NN-*.md``) runs in a fresh temporary working directory, its blocks in order:

* a fenced block whose line just above is ``<!-- file: NAME -->`` is written to NAME in that directory (a
  scenario, a sweep file, a Python module), not executed;
* every other ```` ```python ```` block is executed, all of a tutorial's blocks in ONE namespace (like a notebook);
* in a ```` ```console ```` block, each line ``$ fsllm-sim ARGS`` is run in this process as
  ``fsllm_sim.cli.main(shlex.split(ARGS))``; a nonzero status fails the tutorial. The other lines of a console
  block are the output shown to the reader: they must be what the command printed (stdout and stderr; a
  command shown without output lines is not checked). Each
  command sees the solver registry as a fresh process would (methods its scenario's plug-ins register do not
  leak into the Python blocks);
* a bare fenced block (no language) that follows a ``python`` block, with no other fenced block between, shows
  what that block printed, and must be exactly that.

Shown output may leave lines out with a line ``...`` (any number of lines, at least none) and text within a line
with ``...`` in it (a wall time: ``(feasible, ... s)``); a run directory's time stamp (``20261207T034038417286Z``)
matches any time stamp. ``--update-output`` rewrites every shown output that has no ``...`` with what was printed, so a change of the code is one rerun away from the text (the numbers
quoted in the prose are then the author's to check).

Figures: tutorial code saves PNGs under ``figures/`` of its working directory; ``--update-figures`` copies them
to docs/tutorials/figures/ (each written to a temporary file, then renamed over the old one).

NAME selects tutorials by file name, stem or prefix (``01``, ``02-rank-and-split``). Progress and the wall time
of each tutorial are printed; the first failure ends the run with one line and exit status 1.
``tests/test_tutorials.py`` (part of ``make test``) runs every tutorial through :func:`run_tutorial`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS_DIR = ROOT / "docs" / "tutorials"
FIGURES_DIR = TUTORIALS_DIR / "figures"
TUTORIAL_PATTERN = re.compile(r"^\d\d-.*\.md$")
FILE_MARKER = re.compile(r"^\s*<!--\s*file:\s*(\S+)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,})\s*([A-Za-z0-9_+-]*)\s*$")
PROMPT = "$ fsllm-sim "
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ELISION = "..."
RUN_STAMP = re.compile(r"\d{8}T\d{12}Z")


@dataclass
class Block:
    lang: str          # python, console, yaml, ... ("" for a bare fence)
    text: str
    line: int          # line of the opening fence in the markdown (1-based)
    file: str | None = None  # set by a <!-- file: NAME --> marker: write, do not run


@dataclass
class Result:
    name: str
    ok: bool
    wall_s: float = 0.0
    message: str = ""
    workdir: Path | None = None
    figures: list = field(default_factory=list)  # PNG paths in workdir/figures
    outputs: list = field(default_factory=list)  # ShownOutput of every shown output checked, in order


@dataclass
class ShownOutput:
    """One output the tutorial shows and what the code printed there (``first_line``: of the shown text)."""
    first_line: int
    shown: list
    printed: list

    @property
    def matches(self) -> bool:
        return output_matches(self.shown, self.printed)


class TutorialError(Exception):
    """One line: which tutorial, which markdown line, what went wrong."""


def tutorials(names=()) -> list[Path]:
    """The tutorial files, in order; ``names`` (file names, stems or prefixes) select some of them."""
    found = sorted(p for p in TUTORIALS_DIR.iterdir() if TUTORIAL_PATTERN.match(p.name))
    if not names:
        return found
    chosen = []
    for name in names:
        match = [p for p in found if p.name == name or p.stem == name or p.name.startswith(name)]
        if not match:
            raise TutorialError(f"no tutorial matches {name!r} (have: {', '.join(p.stem for p in found)})")
        chosen += [p for p in match if p not in chosen]
    return chosen


def parse_blocks(text: str, source: str = "tutorial") -> list[Block]:
    """The fenced blocks of a markdown text, with the file marker (if any) of the line just above each."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.groups()
        start = i
        marker = FILE_MARKER.match(lines[i - 1]) if i > 0 else None
        body = []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{ticks}\s*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        if i >= len(lines):
            raise TutorialError(f"{source}: line {start + 1}: the fenced block is never closed")
        blocks.append(Block(lang.lower(), "\n".join(body) + "\n", start + 1, marker.group(1) if marker else None))
        i += 1
    return blocks


def _normal(line: str) -> str:
    return RUN_STAMP.sub("<stamp>", line.rstrip())


def _line_matches(shown: str, printed: str) -> bool:
    """``...`` inside a shown line stands for any text (a wall time, say); elsewhere the lines are equal."""
    if ELISION not in shown:
        return shown == printed
    pattern = ".*".join(re.escape(piece) for piece in shown.split(ELISION))
    return re.fullmatch(pattern, printed) is not None


def output_matches(shown: list, printed: list) -> bool:
    """Shown lines equal printed lines (trailing blanks and run time stamps aside); a shown ``...`` line stands
    for any number of printed lines."""
    shown = [_normal(x) for x in shown]
    printed = [_normal(x) for x in printed]
    while printed and not printed[-1]:
        printed.pop()
    while shown and not shown[-1]:
        shown.pop()
    if ELISION not in shown:
        return len(shown) == len(printed) and all(map(_line_matches, shown, printed))
    parts = [[]]
    for line in shown:
        if line == ELISION:
            parts.append([])
        else:
            parts[-1].append(line)
    head, *middle, tail = parts
    def run_matches(part, lines):
        return len(part) == len(lines) and all(map(_line_matches, part, lines))

    if len(printed) < len(head) + len(tail) or not run_matches(head, printed[:len(head)]):
        return False
    if tail and not run_matches(tail, printed[len(printed) - len(tail):]):
        return False
    pos, end = len(head), len(printed) - len(tail)
    for part in middle:
        for start in range(pos, end - len(part) + 1):
            if run_matches(part, printed[start:start + len(part)]):
                pos = start + len(part)
                break
        else:
            return False
    return True


def _first_difference(shown: list, printed: list) -> str:
    for i, (a, b) in enumerate(zip(shown, printed)):
        if not _line_matches(_normal(a), _normal(b)):
            return f"shown line {i + 1} is {a.strip()!r}, printed {b.strip()!r}"
    return f"shown {len(shown)} lines, printed {len(printed)}"


def figure_links(text: str) -> list[str]:
    """The ``figures/x.png`` images a markdown text shows."""
    return re.findall(r"!\[[^\]]*\]\((figures/[^)\s]+)\)", text)


class _Registry:
    """Snapshot of the solver registry (methods, certified set, imported plug-ins) to restore later."""

    def __init__(self):
        from solvers import plugins, registry

        self.plugins, self.registry = plugins, registry
        self.methods = dict(registry.METHODS)
        self.certified = set(registry.CERTIFIED_METHODS)
        self.loaded = dict(plugins._loaded)

    def restore(self):
        self.registry.METHODS.clear()
        self.registry.METHODS.update(self.methods)
        self.registry.CERTIFIED_METHODS.clear()
        self.registry.CERTIFIED_METHODS.update(self.certified)
        self.plugins._loaded.clear()
        self.plugins._loaded.update(self.loaded)


def _run_console(block: Block, name: str, echo=print) -> list:
    """Run each ``$ fsllm-sim`` line; the ShownOutput of each (the lines under it up to the next prompt)."""
    from fsllm_sim.cli import main

    lines = block.text.splitlines()
    outputs = []
    for offset, line in enumerate(lines):
        if not line.startswith(PROMPT):
            continue
        where = f"{name}: line {block.line + 1 + offset}"
        argv = shlex.split(line[len(PROMPT):], comments=True)
        echo(f"  {line}")
        snapshot = _Registry()  # like a fresh process: its plug-ins stay out of the Python namespace
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                status = main(argv)
        except SystemExit as exc:  # argparse: a bad flag
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            snapshot.restore()
        if status:
            raise TutorialError(f"{where}: `{line.strip()}` exited with status {status}")
        shown = []
        for later in lines[offset + 1:]:
            if later.startswith(PROMPT):
                break
            shown.append(later)
        if any(x.strip() for x in shown):  # a command shown without its output is not checked
            outputs.append(ShownOutput(block.line + 2 + offset, shown, captured.getvalue().splitlines()))
    return outputs


def _run_python(block: Block, name: str, namespace: dict) -> str:
    """Execute the block in ``namespace``; what it printed."""
    filename = f"<{name}: python block at line {block.line}>"
    captured = io.StringIO()
    try:
        code = compile(block.text, filename, "exec")
        with contextlib.redirect_stdout(captured):
            exec(code, namespace)
    except SystemExit as exc:
        if exc.code:
            raise TutorialError(f"{name}: line {block.line}: the python block exited with status {exc.code}") from None
    except Exception as exc:
        line = block.line
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename == filename:
                line = block.line + frame.lineno
                break
        if isinstance(exc, SyntaxError) and exc.lineno:
            line = block.line + exc.lineno
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise TutorialError(f"{name}: line {line}: {type(exc).__name__}: {detail}") from None
    return captured.getvalue()


def run_tutorial(path, workdir=None, *, echo=print) -> Result:
    """Run one tutorial in ``workdir`` (default: a new temporary directory, kept for the caller to inspect);
    ``echo`` shows each command as it starts. Never raises for a failing tutorial: the Result says what failed."""
    import matplotlib

    matplotlib.use("Agg")  # headless: a tutorial's figures go to files
    path = Path(path)
    name = path.stem
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"tutorial-{name}-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    old_cwd, old_path = os.getcwd(), list(sys.path)
    before_modules = set(sys.modules)
    # The tutorial's folder first, as for `python` started in it; then the checkout, so that the project's
    # packages win over same-named test folders (under `pytest`, tests/ is on the path and
    # tests/channel_models would otherwise be imported as a namespace package); relative entries keep
    # pointing where they pointed before the chdir.
    sys.path[:] = [str(work), str(ROOT)] + [os.path.abspath(p or os.curdir) for p in old_path]
    snapshot = _Registry()
    result = Result(name, ok=True, workdir=work)
    try:
        text = path.read_text(encoding="utf-8")
        blocks = parse_blocks(text, name)
        os.chdir(work)
        namespace = {"__name__": "__main__", "__file__": str(work / f"{name}.py")}
        printed = None  # the output of the last python block, until a fenced block follows it
        for block in blocks:
            if block.lang == "" and block.file is None and printed is not None:
                result.outputs.append(ShownOutput(block.line + 1, block.text.splitlines(), printed.splitlines()))
            printed = None
            if block.file is not None:
                target = (work / block.file).resolve()
                if work.resolve() not in target.parents:
                    raise TutorialError(f"{name}: line {block.line}: file {block.file!r} is outside the tutorial's folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text, encoding="utf-8")
            elif block.lang == "python":
                printed = _run_python(block, name, namespace)
            elif block.lang == "console":
                result.outputs += _run_console(block, name, echo)
        wrong = [o for o in result.outputs if not o.matches]
        if wrong:
            first = wrong[0]
            raise TutorialError(f"{name}: line {first.first_line}: the output shown is not what was printed "
                                f"({_first_difference(first.shown, first.printed)}; {len(wrong)} output(s) differ; "
                                f"scripts/run_tutorials.py --update-output rewrites them)")
    except TutorialError as exc:
        result.ok, result.message = False, str(exc)
    except Exception as exc:  # the runner's own trouble (unreadable file...): still one line
        result.ok, result.message = False, f"{name}: {type(exc).__name__}: {exc}"
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        snapshot.restore()
        for mod in set(sys.modules) - before_modules:  # the tutorial's own modules (my_allocation...)
            file = getattr(sys.modules[mod], "__file__", None) or ""
            if file and Path(file).resolve().is_relative_to(work.resolve()):
                del sys.modules[mod]
        import matplotlib.pyplot as plt

        plt.close("all")
    result.wall_s = time.perf_counter() - start
    result.figures = sorted((work / "figures").glob("*.png")) if (work / "figures").is_dir() else []
    return result


def is_png(path) -> bool:
    path = Path(path)
    with path.open("rb") as f:
        return path.stat().st_size > len(PNG_MAGIC) and f.read(len(PNG_MAGIC)) == PNG_MAGIC


def update_figures(figures, dest=FIGURES_DIR) -> list[Path]:
    """Copy figures into ``dest`` atomically (temporary file in dest, then os.replace)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in figures:
        fd, tmp = tempfile.mkstemp(prefix=f".{Path(src).name}.", dir=dest)
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest / Path(src).name)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(dest / Path(src).name)
    return written


def update_outputs(path, outputs) -> int:
    """Rewrite in ``path`` every shown output (without ``...``) that differs from what was printed; how many."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = 0
    for out in sorted(outputs, key=lambda o: o.first_line, reverse=True):
        if out.matches or any(ELISION in x for x in out.shown):
            continue
        start = out.first_line - 1
        indent = re.match(r"\s*", lines[start]).group(0) if out.shown and start < len(lines) else ""
        lines[start:start + len(out.shown)] = [indent + x.rstrip() if x.strip() else "" for x in out.printed]
        changed += 1
    if changed:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="run the tutorials of docs/tutorials/ and check they succeed")
    parser.add_argument("names", nargs="*", metavar="NAME", help="tutorials to run (default: all), e.g. 01")
    parser.add_argument("--update-figures", action="store_true",
                        help="copy the figures each tutorial writes to docs/tutorials/figures/")
    parser.add_argument("--keep", action="store_true", help="keep each tutorial's temporary folder")
    parser.add_argument("--update-output", action="store_true",
                        help="rewrite each shown output that differs from what was printed (not those with ...)")
    args = parser.parse_args(argv)
    try:
        chosen = tutorials(args.names)
    except TutorialError as exc:
        print(f"run_tutorials: {exc}", file=sys.stderr)
        return 1
    total = time.perf_counter()
    for path in chosen:
        print(f"tutorial {path.stem}: running", flush=True)
        result = run_tutorial(path)
        if args.update_output and result.outputs:
            changed = update_outputs(path, result.outputs)
            if changed:
                print(f"tutorial {path.stem}: rewrote {changed} shown output(s); rerun to check", flush=True)
                result = run_tutorial(path)
        if not result.ok:
            print(f"run_tutorials: FAILED {result.message} (after {result.wall_s:.1f} s; folder {result.workdir})",
                  file=sys.stderr)
            return 1
        shown = ", ".join(p.name for p in result.figures) or "no figures"
        if args.update_figures and result.figures:
            update_figures(result.figures)
            shown += f" -> {FIGURES_DIR.relative_to(ROOT)}/"
        print(f"tutorial {path.stem}: ok in {result.wall_s:.1f} s ({shown})", flush=True)
        if not args.keep:
            shutil.rmtree(result.workdir, ignore_errors=True)
    print(f"{len(chosen)} tutorial(s) ok in {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
