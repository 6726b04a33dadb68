"""Declarative scenario fields: a default, a unit, a doc line and the allowed range, in one place.

Every configuration dataclass declares its fields with :func:`param` (a leaf value) or :func:`section`
(a nested dataclass). The loader validates against this metadata, and the scenario reference document is
generated from it, so the checks and the documentation cannot drift apart.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Optional, Sequence


@dataclass(frozen=True)
class Spec:
    doc: str
    unit: str = ""
    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    choices: Optional[Sequence[Any]] = None
    nullable: bool = False
    kind: str = "float"  # float | int | str | bool | list[int] | list[float] | list[str] | path | list[section]
    item_type: Optional[type] = None  # list[section]: the dataclass of each item
    max_items: Optional[int] = None  # list[section]: at most this many items

    def allowed(self) -> str:
        """Human description of the allowed values, used in errors and in the reference document."""
        if self.choices is not None:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif self.kind in ("float", "int", "list[int]", "list[float]"):
            lo = f">= {_num(self.ge)}" if self.ge is not None else (f"> {_num(self.gt)}" if self.gt is not None else "")
            hi = f"<= {_num(self.le)}" if self.le is not None else (f"< {_num(self.lt)}" if self.lt is not None else "")
            noun = {"float": "a number", "int": "an integer", "list[int]": "a list of integers, each",
                    "list[float]": "a list of numbers, each"}[self.kind]
            text = " ".join(p for p in (noun, lo, "and" if lo and hi else "", hi) if p)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "list[str]":
            text = "a list of strings"
        elif self.kind == "path":
            text = "a file path"
        elif self.kind == "list[section]":
            text = f"a list of at most {self.max_items} mappings, each with the fields below"
        else:
            text = "a string"
        return text + (" or null" if self.nullable else "")


def _num(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:g}"


def param(default, doc: str, *, unit: str = "", kind: str | None = None, ge=None, gt=None, le=None, lt=None,
          choices=None, nullable: bool = False):
    """A leaf field. ``kind`` is inferred from the default when not given."""
    if kind is None:
        if isinstance(default, bool):
            kind = "bool"
        elif isinstance(default, int):
            kind = "int"
        elif isinstance(default, float):
            kind = "float"
        elif isinstance(default, (list, tuple)):
            kind = "list[int]" if all(isinstance(v, int) for v in default) else "list[str]"
        else:
            kind = "str"
    spec = Spec(doc=doc, unit=unit, ge=ge, gt=gt, le=le, lt=lt, choices=tuple(choices) if choices else None,
                nullable=nullable, kind=kind)
    if isinstance(default, list):
        value = tuple(default)
        return field(default=value, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def section_list(cls, doc: str, *, max_items: int = 16):
    """A list of nested sections of the same kind (e.g. client groups), empty by default."""
    spec = Spec(doc=doc, kind="list[section]", item_type=cls, max_items=max_items)
    return field(default=(), metadata={"spec": spec})


def section(cls, doc: str):
    """A nested configuration section."""
    return field(default_factory=cls, metadata={"section": doc})


def iter_fields(cls):
    """Yield (name, Spec or None, section doc or None, default) for each field of a config dataclass."""
    for f in fields(cls):
        spec = f.metadata.get("spec")
        sec = f.metadata.get("section")
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        yield f, spec, sec, default


def is_config(obj) -> bool:
    return is_dataclass(obj)
