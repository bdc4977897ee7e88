"""Where the task files live.

Shipped tasks (``shared/data/tasks/*.jsonl``): the ``tasks/`` folder of the data folder that
``residq.data.locate.resolve_data_dir`` finds (or the data folder itself when it directly holds
the ``.jsonl`` files).

Tasks whose data users bring sit in ``task_dir``:

- MMLU in its original layout, ``dev/<subject>_dev.csv`` and ``test/<subject>_test.csv``, under
  ``task_dir/mmlu``, ``task_dir/data`` (the original tarball's folder) or ``task_dir`` itself;
- HellaSwag: ``task_dir/hellaswag.jsonl`` or ``task_dir/hellaswag_val.jsonl``;
- GSM8K: ``task_dir/gsm8k.jsonl`` or ``task_dir/gsm8k_test.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

from residq.data.locate import resolve_data_dir

TASKS_SUBDIR = "tasks"
MMLU_CANDIDATES = ("mmlu", "data", ".")
USER_FILE_CANDIDATES = {
    "hellaswag": ("hellaswag.jsonl", "hellaswag_val.jsonl"),
    "gsm8k": ("gsm8k.jsonl", "gsm8k_test.jsonl"),
}


def shipped_task_file(file_name: str, data_dir: str | Path | None = None) -> Path:
    """Path of a shipped task file such as ``arc_easy.jsonl``.

    Raises:
        FileNotFoundError: the data folder has no such file (the message names both places).
    """
    root = resolve_data_dir(data_dir)
    candidates = [root / TASKS_SUBDIR / file_name, root / file_name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"task file {file_name} not found; looked at "
                            + ", ".join(str(c) for c in candidates))


def _require_task_dir(task_dir: str | Path | None, task: str) -> Path:
    if task_dir is None:
        raise ValueError(f"task {task!r} reads data you provide: pass task_dir=<folder> "
                         "(see residq.eval.zeroshot.locations for the layout)")
    folder = Path(task_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"task_dir {folder} is not a folder")
    return folder


def user_task_file(task: str, task_dir: str | Path | None) -> Path:
    """The JSONL file of a user-provided task (``hellaswag`` or ``gsm8k``) in ``task_dir``."""
    folder = _require_task_dir(task_dir, task)
    candidates = [folder / name for name in USER_FILE_CANDIDATES[task]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {task} file in {folder}; expected one of "
                            + ", ".join(USER_FILE_CANDIDATES[task]))


def mmlu_folder(task_dir: str | Path | None) -> Path:
    """The MMLU folder (the one holding ``dev/`` and ``test/``) inside ``task_dir``."""
    folder = _require_task_dir(task_dir, "mmlu")
    candidates = [(folder / name).resolve() for name in MMLU_CANDIDATES]
    for candidate in candidates:
        if (candidate / "dev").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise FileNotFoundError("no MMLU folder with dev/ and test/ found; looked in "
                            + ", ".join(str(c) for c in candidates))


def read_jsonl(path: Path) -> list[dict]:
    """All JSON objects of a JSON-lines file (blank lines skipped)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
