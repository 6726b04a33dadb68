"""Reading training text from Shakespeare or from user files into :class:`Document` lists.

Formats (``FORMATS``; ``auto`` picks one from the source):

* ``shakespeare``: source ``"shakespeare"`` (the shipped e-texts, see :mod:`.shakespeare`) or a
  folder of e-texts in the same layout (``*_gut.txt`` plus optional ``metadata.txt``).
* ``text``: a ``.txt`` file, or a folder searched recursively for ``*.txt`` (sorted by relative
  path). Each blank-line separated paragraph is a document, so a file can be spread over clients;
  the group is the file's relative path.
* ``jsonl``: one JSON object per non-blank line with a non-empty string ``text``; an optional
  string ``group`` sets the document's group (default: the file name).
* ``csv`` (alias ``e2e-csv``): E2E NLG style, with columns ``mr`` (meaning representation) and ``ref`` (reference
  text); each row becomes ``"meaning representation: <mr>\\nreference: <ref>"``. An optional
  ``group`` column sets the group (default: the file name).

Files are read as UTF-8 (a leading byte-order mark is ignored). Every problem raises
:class:`fsllm_sim.errors.DataError` naming the file, the line or row, and what is allowed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fsllm_sim.errors import ConfigError, DataError

from .documents import GROUP_DEFAULT, Document
from .shakespeare import load_shakespeare

FORMATS = ("auto", "shakespeare", "text", "jsonl", "csv", "e2e-csv")
# "e2e-csv" is the name the scenario schema (fsllm_sim.config) uses for the same reader as "csv".
FORMAT_ALIASES = {"e2e-csv": "csv"}
SHAKESPEARE_SOURCE = "shakespeare"
E2E_MR_COLUMN = "mr"
E2E_REF_COLUMN = "ref"
GROUP_FILE = "file"


def format_e2e_pair(mr: str, ref: str) -> str:
    """The data-to-text training string of one E2E (meaning representation, reference) pair."""
    return f"meaning representation: {mr.strip()}\nreference: {ref.strip()}"


def infer_format(source: str) -> str:
    """``shakespeare`` for the built-in corpus, else from the path: folder -> text, or by suffix."""
    if source == SHAKESPEARE_SOURCE:
        return "shakespeare"
    path = Path(source)
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist")
    if path.is_dir():
        return "text"
    suffix = path.suffix.lower()
    by_suffix = {".txt": "text", ".jsonl": "jsonl", ".csv": "csv"}
    if suffix not in by_suffix:
        raise DataError(
            f"data.path: cannot infer the format of {path} from its suffix '{suffix}': "
            "allowed are a folder, .txt, .jsonl, .csv (or pass format=text|jsonl|csv)"
        )
    return by_suffix[suffix]


def _read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"data.path: {path} is not UTF-8 text (byte {exc.start})") from None


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, trailing spaces stripped, empty ones dropped."""
    blocks: list[str] = []
    current: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


def read_text_file(path: Path, name: str) -> list[Document]:
    """One document per paragraph of ``path``; ``name`` is the group (relative path)."""
    return [
        Document(text=p, source=f"{name}#{i}", groups={GROUP_FILE: name, GROUP_DEFAULT: name})
        for i, p in enumerate(paragraphs(_read_utf8(path)))
    ]


def read_text_source(path: Path) -> list[Document]:
    """A ``.txt`` file, or every ``*.txt`` under a folder (sorted by relative path)."""
    if path.is_file():
        files = [(path, path.name)]
    else:
        found = sorted(path.rglob("*.txt"))
        if not found:
            raise DataError(f"data.path: folder {path} has no .txt files")
        files = [(f, f.relative_to(path).as_posix()) for f in found]
    documents = [doc for f, name in files for doc in read_text_file(f, name)]
    if not documents:
        raise DataError(f"data.path: {path} contains no text (only blank lines)")
    return documents


def read_jsonl(path: Path) -> list[Document]:
    """Documents from a JSON-lines file with a ``text`` field (optional ``group``)."""
    documents: list[Document] = []
    for line_no, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(
                f"{where}: expected a JSON object with a string 'text', got {type(record).__name__}"
            )
        if "text" not in record:
            raise DataError(
                f"{where}: missing field 'text' (each line must be an object with a string 'text')"
            )
        text = record["text"]
        if not isinstance(text, str) or not text.strip():
            shown = type(text).__name__ if not isinstance(text, str) else "an empty string"
            raise DataError(f"{where}: field 'text' must be a non-empty string, got {shown}")
        group = record.get("group", path.name)
        if not isinstance(group, str) or not group:
            raise DataError(f"{where}: field 'group' must be a non-empty string, got {group!r}")
        documents.append(
            Document(
                text=text,
                source=f"{path.name}:{line_no}",
                groups={GROUP_FILE: path.name, GROUP_DEFAULT: group},
            )
        )
    if not documents:
        raise DataError(f"data.path: {path} has no JSON lines")
    return documents


def read_e2e_csv(path: Path) -> list[Document]:
    """Documents from an E2E-style CSV (columns ``mr`` and ``ref``; optional ``group``)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in (E2E_MR_COLUMN, E2E_REF_COLUMN) if c not in columns]
            if missing:
                raise DataError(
                    f"{path.name}: CSV needs columns '{E2E_MR_COLUMN}' and '{E2E_REF_COLUMN}' "
                    f"(E2E format), found {columns}"
                )
            reader.fieldnames = columns
            rows = list(reader)
        except UnicodeDecodeError as exc:
            raise DataError(f"data.path: {path} is not UTF-8 text (byte {exc.start})") from None
        except csv.Error as exc:
            raise DataError(f"{path.name}: malformed CSV ({exc})") from None
    documents: list[Document] = []
    for row_no, row in enumerate(rows, start=1):
        where = f"{path.name} row {row_no}"
        mr, ref = row.get(E2E_MR_COLUMN) or "", row.get(E2E_REF_COLUMN) or ""
        for column, value in ((E2E_MR_COLUMN, mr), (E2E_REF_COLUMN, ref)):
            if not value.strip():
                raise DataError(
                    f"{where}: empty '{column}' (every row needs a non-empty mr and ref)"
                )
        group = (row.get("group") or "").strip() or path.name
        documents.append(
            Document(
                text=format_e2e_pair(mr, ref),
                source=f"{path.name}:{row_no}",
                groups={GROUP_FILE: path.name, GROUP_DEFAULT: group},
            )
        )
    if not documents:
        raise DataError(f"data.path: {path} has a header but no rows")
    return documents


def load_documents(source: str, format: str = "auto") -> tuple[list[Document], str]:
    """Documents of ``source`` and the format used (``auto`` resolved).

    Args:
        source: ``"shakespeare"`` or a path (folder of .txt, .txt, .jsonl, .csv).
        format: one of ``FORMATS``.
    """
    if format not in FORMATS:
        raise ConfigError(f"data.format: '{format}' is not one of {', '.join(FORMATS)}")
    resolved = infer_format(source) if format == "auto" else FORMAT_ALIASES.get(format, format)
    if source == SHAKESPEARE_SOURCE:
        if resolved != "shakespeare":
            raise ConfigError(
                f"data.format: source=shakespeare needs format=auto or shakespeare, got '{format}'"
            )
        return load_shakespeare(), resolved
    path = Path(source)
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist")
    if resolved == "shakespeare":
        if not path.is_dir():
            raise DataError(
                f"data.path: format=shakespeare needs a folder of *_gut.txt e-texts, {path} is a file"
            )
        return load_shakespeare(path), resolved
    if resolved == "text":
        return read_text_source(path), resolved
    if path.is_dir():
        raise DataError(f"data.path: format={resolved} needs a file, {path} is a folder")
    if resolved == "jsonl":
        return read_jsonl(path), resolved
    return read_e2e_csv(path), resolved
