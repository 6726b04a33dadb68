"""User data readers (text folder, .txt, JSONL, E2E CSV), format inference and their errors."""

import json

import pytest

from fsllm_sim.errors import ConfigError, DataError
from fsllm_sim.training.data.sources import format_e2e_pair, infer_format, load_documents

E2E_CSV = (
    "mr,ref\n"
    '"name[The Eagle], eatType[coffee shop], food[French]","The Eagle is a French coffee shop."\n'
    '"name[The Mill], area[riverside]","The Mill is by the riverside."\n'
)


def test_text_folder_paragraphs_sorted_recursively(tmp_path):
    (tmp_path / "b.txt").write_text("Second file.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("Para one\nline two.   \n\n\n  \nPara two.\n")
    (tmp_path / "notes.md").write_text("ignored")
    docs, fmt = load_documents(str(tmp_path))
    assert fmt == "text"
    assert [d.text for d in docs] == ["Second file.", "Para one\nline two.", "Para two."]
    assert [d.groups["group"] for d in docs] == ["b.txt", "sub/a.txt", "sub/a.txt"]
    assert docs[2].source == "sub/a.txt#1"


def test_single_text_file(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("One.\r\n\r\nTwo.\r\n")
    docs, fmt = load_documents(str(path))
    assert fmt == "text" and [d.text for d in docs] == ["One.", "Two."]


def test_jsonl_with_optional_group(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [{"text": "first"}, {"text": "second", "group": "g2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    docs, fmt = load_documents(str(path))
    assert fmt == "jsonl"
    assert [d.text for d in docs] == ["first", "second"]
    assert [d.groups["group"] for d in docs] == ["data.jsonl", "g2"]
    assert docs[1].source == "data.jsonl:2"


def test_e2e_csv_pairs(tmp_path):
    path = tmp_path / "trainset.csv"
    path.write_text(E2E_CSV)
    docs, fmt = load_documents(str(path))
    assert fmt == "csv" and len(docs) == 2
    assert docs[0].text == (
        "meaning representation: name[The Eagle], eatType[coffee shop], food[French]\n"
        "reference: The Eagle is a French coffee shop."
    )
    assert docs[1].text == format_e2e_pair(" name[The Mill], area[riverside] ", "The Mill is by the riverside.")


def test_explicit_format_overrides_suffix(tmp_path):
    path = tmp_path / "data.log"
    path.write_text('{"text": "x"}\n')
    assert [d.text for d in load_documents(str(path), format="jsonl")[0]] == ["x"]
    path.write_text(E2E_CSV)
    docs, fmt = load_documents(str(path), format="e2e-csv")  # the scenario schema's name for csv
    assert fmt == "csv" and len(docs) == 2


def test_infer_format():
    assert infer_format("shakespeare") == "shakespeare"


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": 3}\n', r"data.jsonl line 1: field 'text' must be a non-empty string, got int"),
        ('{"text": "ok"}\n{"txt": "x"}\n', r"data.jsonl line 2: missing field 'text'"),
        ('{"text": "ok"}\n{"text": "x",}\n', r"data.jsonl line 2: invalid JSON"),
        ('["text"]\n', r"data.jsonl line 1: expected a JSON object"),
        ('{"text": "  "}\n', r"field 'text' must be a non-empty string, got an empty string"),
        ('{"text": "a", "group": 5}\n', r"field 'group' must be a non-empty string, got 5"),
        ("\n\n", r"has no JSON lines"),
    ],
)
def test_jsonl_errors(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_documents(str(path))


@pytest.mark.parametrize(
    "content, message",
    [
        ("meaning,reference\na,b\n", r"data.csv: CSV needs columns 'mr' and 'ref' \(E2E format\), found \['meaning', 'reference'\]"),
        ("mr,ref\nname[x],\n", r"data.csv row 1: empty 'ref'"),
        ("mr,ref\n", r"has a header but no rows"),
    ],
)
def test_csv_errors(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_documents(str(path))


def test_missing_path(tmp_path):
    missing = tmp_path / "y.jsonl"
    with pytest.raises(DataError, match=f"^data.path: {missing} does not exist$"):
        load_documents(str(missing))


def test_unknown_suffix_and_format(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DataError, match="cannot infer the format .* allowed are a folder, .txt, .jsonl, .csv"):
        load_documents(str(path))
    with pytest.raises(ConfigError, match="'xml' is not one of auto, shakespeare, text, jsonl, csv, e2e-csv"):
        load_documents(str(path), format="xml")
    with pytest.raises(ConfigError, match="source=shakespeare needs format=auto or shakespeare"):
        load_documents("shakespeare", format="csv")


def test_empty_and_undecodable_text(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no .txt files"):
        load_documents(str(tmp_path / "empty"))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    with pytest.raises(DataError, match="contains no text"):
        load_documents(str(blank))
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"ok\xff\xfe")
    with pytest.raises(DataError, match="is not UTF-8 text"):
        load_documents(str(binary))
    with pytest.raises(DataError, match="needs a file"):
        load_documents(str(tmp_path / "empty"), format="jsonl")
