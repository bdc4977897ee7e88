"""Reading each evaluation / calibration dataset into one string (ALGORITHMS.md section 5).

Every dataset is a list of rows joined with ``"\\n\\n"``, the convention of the GPTQ line of work:

- ``wikitext2`` (WikiText-2 raw v1): rows are the file's lines exactly as HF datasets'
  ``wikitext-2-raw-v1`` builds them: each line keeps its trailing ``"\\n"``, and a blank line
  (only whitespace) becomes the empty row ``""``. The test file has 4358 rows like HF's split.
- ``ptb`` (Penn Treebank, Mikolov's text version): rows are the stripped lines (as HF's
  ``ptb_text_only`` ``sentence`` field).
- ``c4``: rows are the ``"text"`` field of each JSON line of a 2,000-document sample of the C4
  (en) *validation* split. C4 has no test split here, so the sample is cut in two disjoint halves:
  ``split="validation"`` gives the first half of the documents (calibration) and ``split="test"``
  the second half (perplexity); calibration and evaluation therefore never see the same document.

Splits are ``"test"`` and ``"validation"`` (alias ``"valid"``). Never calibrate on ``"test"``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from residq.data.locate import text_dir

ROW_SEPARATOR = "\n\n"

C4_FILE = "c4.validation-2k.jsonl.gz"
DATASETS: dict[str, dict[str, str]] = {
    "wikitext2": {"test": "wikitext2.test.raw", "validation": "wikitext2.valid.raw"},
    "ptb": {"test": "ptb.test.txt", "validation": "ptb.valid.txt"},
    "c4": {"test": C4_FILE, "validation": C4_FILE},
}

# sha256 of each shipped file, from shared/data/README.md.
SHA256_SUMS: dict[str, str] = {
    "wikitext2.test.raw": "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08",
    "wikitext2.valid.raw": "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    C4_FILE: "b621a7e0e7908b4b044bcf09dd2c737dcf6e00c12948735a58d407e6e4c880c8",
}

_SPLIT_ALIASES = {"test": "test", "validation": "validation", "valid": "validation"}


def normalize_split(split: str) -> str:
    """Map ``"test"`` / ``"validation"`` / ``"valid"`` to ``"test"`` or ``"validation"``."""
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(_SPLIT_ALIASES)}")
    return _SPLIT_ALIASES[split]


def dataset_path(name: str, split: str = "test", data_dir: str | Path | None = None) -> Path:
    """Full path of a dataset's file (whether or not it exists)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return text_dir(data_dir) / DATASETS[name][normalize_split(split)]


def verify_checksum(path: str | Path) -> None:
    """Check a shipped data file against its sha256 from the data README.

    Raises:
        ValueError: the file name has no known checksum, or the digest differs.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if path.name not in SHA256_SUMS:
        raise ValueError(f"no known sha256 for {path.name!r}; known files: {sorted(SHA256_SUMS)}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    expected, got = SHA256_SUMS[path.name], digest.hexdigest()
    if got != expected:
        raise ValueError(f"sha256 mismatch for {path}: expected {expected}, got {got}")


def _wikitext_rows(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line if line.strip() else "" for line in handle]


def _ptb_rows(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def read_jsonl_texts(path: str | Path, field: str = "text") -> list[str]:
    """The ``field`` of every JSON line of a ``.jsonl`` or ``.jsonl.gz`` file (blank lines
    skipped)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: invalid JSON ({error})") from error
            text = record.get(field) if isinstance(record, dict) else None
            if text is None or not isinstance(text, str):
                raise ValueError(
                    f"{path}, line {line_number}: expected an object with a string field "
                    f"{field!r}, got {str(record)[:80]!r}"
                )
            texts.append(text)
    return texts


def _c4_rows(path: Path, split: str) -> list[str]:
    documents = read_jsonl_texts(path)
    half = len(documents) // 2
    return documents[:half] if split == "validation" else documents[half:]


def load_rows(name: str, split: str = "test", data_dir: str | Path | None = None) -> list[str]:
    """A dataset split as its list of rows (see the module docstring for what a row is)."""
    path = dataset_path(name, split, data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {name!r} ({split}): file not found: {path}")
    if name == "wikitext2":
        return _wikitext_rows(path)
    if name == "ptb":
        return _ptb_rows(path)
    return _c4_rows(path, normalize_split(split))


def load_text(name: str, split: str = "test", data_dir: str | Path | None = None) -> str:
    """A dataset split as one string: its rows joined with ``"\\n\\n"``.

    Args:
        name: ``"wikitext2"``, ``"ptb"`` or ``"c4"``.
        split: ``"test"`` or ``"validation"`` (``"valid"``). For ``c4`` these are the two
            disjoint halves of the validation sample (module docstring).
        data_dir: data folder; ``None`` -> ``resolve_data_dir``.

    Raises:
        ValueError: unknown dataset or split.
        FileNotFoundError: the file is missing (the message names the full path and dataset).
    """
    return ROW_SEPARATOR.join(load_rows(name, split, data_dir))


def load_user_text(path: str | Path) -> str:
    """A user's own text: a ``.txt`` file whole, or the ``"text"`` fields of a ``.jsonl`` /
    ``.jsonl.gz`` file joined with ``"\\n\\n"``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"user text file not found: {path}")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return ROW_SEPARATOR.join(read_jsonl_texts(path))
    if path.suffix == ".txt":
        return path.read_text(encoding="utf-8")
    raise ValueError(
        f"unsupported user text file {path.name!r}: expected a .txt, .jsonl or .jsonl.gz file"
    )
