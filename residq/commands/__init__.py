"""Extra CLI subcommands, one module each, exporting ``add_parser(subparsers)`` and ``run(args) -> int``."""

from __future__ import annotations

import contextlib

COMMAND_MODULES = ("inspect", "compare", "bench")


@contextlib.contextmanager
def transformers_bars(enabled: bool):
    """Silence transformers' own bars (weight loading, GGUF conversion) under ``--quiet``."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    if not enabled:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
