"""Finding the folder that holds the evaluation and calibration data.

The data folder (``shared/data`` in the project checkout) holds the text files either directly
or in a ``text/`` subfolder; both layouts work. Lookup order:

1. the explicit ``data_dir`` argument (the CLI's ``--data-dir``);
2. the environment variable ``RESIDQ_DATA_DIR``;
3. the first existing of ``<cwd>/shared/data``, ``<cwd>/../shared/data`` and
   ``<repo root>/../shared/data`` (the repo root being the folder that holds the ``residq``
   package).

An explicit argument or a set environment variable is authoritative: when it names a folder that
does not exist, the lookup fails instead of silently falling back to another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "RESIDQ_DATA_DIR"
TEXT_SUBDIR = "text"


def _package_repo_parent() -> Path:
    """The folder above the repository root (``<root>/residq/data/locate.py`` -> ``<root>/..``)."""
    return Path(__file__).resolve().parents[3]


def _default_candidates() -> list[Path]:
    cwd = Path.cwd()
    return [
        cwd / "shared" / "data",
        cwd.parent / "shared" / "data",
        _package_repo_parent() / "shared" / "data",
    ]


def _not_found(tried: list[Path]) -> FileNotFoundError:
    places = "\n".join(f"  - {p}" for p in tried)
    return FileNotFoundError(
        "residq data folder not found; tried:\n"
        f"{places}\n"
        f"Pass --data-dir (data_dir=...) or set the environment variable {DATA_DIR_ENV} "
        "to the folder that holds the data files (or their text/ subfolder)."
    )


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data folder (see the module docstring for the lookup order).

    Args:
        data_dir: explicit folder; ``None`` means look it up.

    Returns:
        The existing folder as an absolute ``Path`` (not its ``text/`` subfolder; see
        ``text_dir``).

    Raises:
        FileNotFoundError: no candidate exists; the message lists every place tried.
    """
    if data_dir is not None:
        tried = [Path(data_dir).expanduser()]
    elif os.environ.get(DATA_DIR_ENV):
        tried = [Path(os.environ[DATA_DIR_ENV]).expanduser()]
    else:
        tried = _default_candidates()
    for candidate in tried:
        if candidate.is_dir():
            return candidate.resolve()
    raise _not_found(tried)


def text_dir(data_dir: str | Path | None = None) -> Path:
    """The folder that directly holds the text files: ``<data dir>/text`` if present, else the
    data folder itself."""
    root = resolve_data_dir(data_dir)
    sub = root / TEXT_SUBDIR
    return sub if sub.is_dir() else root
