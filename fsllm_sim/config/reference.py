"""Generate the scenario reference document from the schema, so docs and checks share one source."""
from __future__ import annotations

from .fields import _num, iter_fields
from .schema import Scenario
from .sweep_file import sweep_reference


def _default_text(value, spec) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, tuple) and spec is not None and spec.kind == "list[section]":
        return "[]" if not value else "[...]"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _rows(cls, prefix: str):
    for f, spec, sec, default in iter_fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        if sec is not None:
            yield ("section", path, sec)
            yield from _rows(type(default), path)
        else:
            yield ("field", path, spec, default)
            if spec.kind == "list[section]":
                yield ("section", f"{path}[i]", f"Each item of `{path}`.")
                yield from _rows(spec.item_type, f"{path}[i]")


def reference_markdown() -> str:
    """Markdown listing every scenario field with its default, unit, allowed values and meaning."""
    out = [
        "# Scenario reference",
        "",
        "Generated from `fsllm_sim/config/schema.py` by `fsllm-sim reference`; do not edit by hand.",
        "Every field is optional: a missing field takes its default. Unknown fields are errors.",
        "Relative paths in a scenario file are resolved against the folder of that file.",
        "",
    ]
    table_open = False
    for row in _rows(Scenario, ""):
        if row[0] == "section":
            out += ["", f"## `{row[1]}`", "", row[2], ""]
            table_open = False
            continue
        _, path, spec, default = row
        if not table_open:
            out += ["| field | default | unit | allowed | meaning |", "|---|---|---|---|---|"]
            table_open = True
        out.append(f"| `{path}` | `{_default_text(default, spec)}` | {spec.unit or '–'} | {spec.allowed()} | {spec.doc} |")
    out += sweep_reference()  # sweep files name scenario fields by these paths
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"
