"""Calibration and evaluation text: locating the data folder, reading datasets, sampling
calibration windows."""

from residq.data.calibration import calibration_windows
from residq.data.locate import DATA_DIR_ENV, resolve_data_dir
from residq.data.text_sources import (
    DATASETS,
    load_text,
    load_user_text,
    verify_checksum,
)

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "calibration_windows",
    "load_text",
    "load_user_text",
    "resolve_data_dir",
    "verify_checksum",
]
