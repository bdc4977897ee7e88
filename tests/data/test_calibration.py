"""Tests for residq.data.calibration: seeded random windows that are real token-stream slices."""

import gzip
import json

import pytest
import torch

from residq.data.calibration import calibration_windows, sample_windows, token_stream

BOS = 256


class ByteTokenizer:
    """Tokenizer stand-in: one token per UTF-8 byte, BOS = 256."""

    bos_token_id = BOS

    def __init__(self, add_bos_token: bool = False):
        self.add_bos_token = add_bos_token

    def __call__(self, text, add_special_tokens=True, **kwargs):
        ids = list(text.encode("utf-8"))
        if add_special_tokens and self.add_bos_token:
            ids = [BOS] + ids
        return {"input_ids": ids}


def _calibration_dir(tmp_path):
    generator = torch.Generator().manual_seed(0)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    picks = torch.randint(0, len(words), (400,), generator=generator).tolist()
    valid_text = " ".join(words[i] for i in picks)
    (tmp_path / "wikitext2.valid.raw").write_text(valid_text + "\n", encoding="utf-8")
    (tmp_path / "wikitext2.test.raw").write_text("TEST " * 500, encoding="utf-8")
    return tmp_path


def _is_slice(window, stream):
    return bool((stream.unfold(0, window.numel(), 1) == window).all(dim=1).any())


def test_windows_are_seeded_real_slices_of_the_validation_split(tmp_path):
    data_dir = _calibration_dir(tmp_path)
    tokenizer = ByteTokenizer()
    windows = calibration_windows(tokenizer, n_samples=6, seqlen=32, seed=3, data_dir=data_dir)
    assert windows.shape == (6, 32) and windows.dtype == torch.long
    stream = token_stream(tokenizer, (data_dir / "wikitext2.valid.raw").read_text())
    assert all(_is_slice(w, stream) for w in windows)
    assert not (windows == ord("T")).any()  # no byte of the test split's "TEST"
    again = calibration_windows(tokenizer, n_samples=6, seqlen=32, seed=3, data_dir=data_dir)
    other = calibration_windows(tokenizer, n_samples=6, seqlen=32, seed=4, data_dir=data_dir)
    assert torch.equal(windows, again)
    assert not torch.equal(windows, other)


def test_offsets_follow_the_seeded_generator():
    stream = torch.arange(100)
    windows = sample_windows(stream, n_samples=5, seqlen=10, seed=7)
    expected_starts = torch.randint(0, 91, (5,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(windows[:, 0], expected_starts)
    assert torch.equal(windows, expected_starts[:, None] + torch.arange(10))


def test_bos_from_tokenizer_flag_and_override(tmp_path):
    data_dir = _calibration_dir(tmp_path)
    stream = token_stream(ByteTokenizer(), (data_dir / "wikitext2.valid.raw").read_text())
    with_bos = calibration_windows(ByteTokenizer(add_bos_token=True), n_samples=4, seqlen=16,
                                   data_dir=data_dir)
    assert (with_bos[:, 0] == BOS).all() and with_bos.shape == (4, 16)
    assert all(_is_slice(w[1:], stream) for w in with_bos)
    forced_off = calibration_windows(ByteTokenizer(add_bos_token=True), n_samples=4, seqlen=16,
                                     data_dir=data_dir, add_bos=False)
    assert not (forced_off == BOS).any()
    forced_on = calibration_windows(ByteTokenizer(), n_samples=4, seqlen=16, data_dir=data_dir,
                                    add_bos=True)
    assert (forced_on[:, 0] == BOS).all()


def test_user_jsonl_and_c4_calibration_half(tmp_path):
    docs = ["first " * 20, "second " * 20, "third " * 20, "fourth " * 20]
    with gzip.open(tmp_path / "c4.validation-2k.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": d}) + "\n" for d in docs)
    windows = calibration_windows(ByteTokenizer(), "c4", n_samples=8, seqlen=5, data_dir=tmp_path)
    decoded = bytes(windows.flatten().tolist()).decode()
    assert "h" not in decoded and "u" not in decoded  # no byte of "third"/"fourth" only
    (tmp_path / "mine.jsonl").write_text(json.dumps({"text": "abcdefghij"}) + "\n")
    user = calibration_windows(ByteTokenizer(), str(tmp_path / "mine.jsonl"), n_samples=3,
                               seqlen=4)
    assert all(_is_slice(w, torch.tensor(list(b"abcdefghij"))) for w in user)


def test_empty_text_is_rejected(tmp_path):
    (tmp_path / "empty.txt").write_text(" \n\n ", encoding="utf-8")
    with pytest.raises(ValueError, match="calibration text from .*empty.txt' is empty"):
        calibration_windows(ByteTokenizer(), str(tmp_path / "empty.txt"), n_samples=1, seqlen=4)


def test_too_short_text_names_source_count_and_need(tmp_path):
    (tmp_path / "short.txt").write_text("abcdefghi", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short.txt' has 9 tokens; at least seqlen \+ 1 = 10"):
        calibration_windows(ByteTokenizer(), str(tmp_path / "short.txt"), n_samples=1, seqlen=9)


def test_unknown_source_and_missing_dataset_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a dataset name"):
        calibration_windows(ByteTokenizer(), str(tmp_path / "nothing.txt"), data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="wikitext2.valid.raw"):
        calibration_windows(ByteTokenizer(), "wikitext2", data_dir=tmp_path)
