"""Tests for residq.data.text_sources: row joining per dataset, c4 halves, errors, checksums."""

import gzip
import json

import pytest

from residq.data.locate import resolve_data_dir, text_dir
from residq.data.text_sources import (
    DATASETS,
    load_rows,
    load_text,
    load_user_text,
    verify_checksum,
)


def _write_jsonl(path, texts, compress=False):
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")


def test_wikitext_rows_keep_newlines_and_blank_lines_become_empty(tmp_path):
    (tmp_path / "wikitext2.test.raw").write_text(" \n = A = \n \n Body line .\n", encoding="utf-8")
    assert load_rows("wikitext2", "test", tmp_path) == ["", " = A = \n", "", " Body line .\n"]
    assert load_text("wikitext2", "test", tmp_path) == "\n\n = A = \n\n\n\n\n Body line .\n"


def test_text_subfolder_layout_and_valid_alias(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "wikitext2.valid.raw").write_text("x\ny\n", encoding="utf-8")
    expected = "x\n\n\ny\n"
    assert load_text("wikitext2", "validation", tmp_path) == expected
    assert load_text("wikitext2", "valid", tmp_path) == expected


def test_ptb_rows_are_stripped_lines(tmp_path):
    (tmp_path / "ptb.test.txt").write_text(" a b \n c d\n", encoding="utf-8")
    assert load_text("ptb", "test", tmp_path) == "a b\n\nc d"


def test_c4_halves_are_disjoint(tmp_path):
    _write_jsonl(tmp_path / DATASETS["c4"]["test"], ["d0", "d1", "d2", "d3", "d4"], compress=True)
    assert load_text("c4", "validation", tmp_path) == "d0\n\nd1"
    assert load_text("c4", "test", tmp_path) == "d2\n\nd3\n\nd4"


def test_missing_file_names_path_and_dataset(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_text("ptb", "validation", tmp_path)
    assert str(tmp_path / "ptb.valid.txt") in str(info.value)
    assert "'ptb'" in str(info.value)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match="c4.*ptb.*wikitext2"):
        load_text("wikitext103", "test", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'train'"):
        load_text("wikitext2", "train", tmp_path)


def test_load_user_text_txt_jsonl_and_gz(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n\nworld", encoding="utf-8")
    assert load_user_text(tmp_path / "a.txt") == "hello\n\nworld"
    _write_jsonl(tmp_path / "b.jsonl", ["one", "two"])
    assert load_user_text(tmp_path / "b.jsonl") == "one\n\ntwo"
    _write_jsonl(tmp_path / "c.jsonl.gz", ["three"], compress=True)
    assert load_user_text(str(tmp_path / "c.jsonl.gz")) == "three"


def test_load_user_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_user_text(tmp_path / "missing.txt")
    (tmp_path / "d.csv").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.txt, \.jsonl or \.jsonl\.gz"):
        load_user_text(tmp_path / "d.csv")
    (tmp_path / "e.jsonl").write_text('{"text": "ok"}\n{"body": "no"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2.*'text'"):
        load_user_text(tmp_path / "e.jsonl")
    (tmp_path / "f.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: invalid JSON"):
        load_user_text(tmp_path / "f.jsonl")


def test_verify_checksum_mismatch_and_unknown_name(tmp_path):
    (tmp_path / "ptb.test.txt").write_text("tampered", encoding="utf-8")
    with pytest.raises(ValueError, match="sha256 mismatch.*expected dd65dff3"):
        verify_checksum(tmp_path / "ptb.test.txt")
    (tmp_path / "other.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="no known sha256"):
        verify_checksum(tmp_path / "other.txt")


def _shared_data_or_skip():
    try:
        return resolve_data_dir()
    except FileNotFoundError:
        pytest.skip("shared data folder not available")


def test_real_files_checksum_and_wikitext_row_count():
    data_dir = _shared_data_or_skip()
    verify_checksum(text_dir(data_dir) / "ptb.valid.txt")
    rows = load_rows("wikitext2", "test", data_dir)
    assert len(rows) == 4358  # HF wikitext-2-raw-v1 test split
    assert rows[:2] == ["", " = Robert Boulter = \n"]
