"""Tests for residq.data.locate: lookup order of the data folder and its text/ subfolder."""

from pathlib import Path

import pytest

from residq.data import locate
from residq.data.locate import DATA_DIR_ENV, resolve_data_dir, text_dir


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def test_explicit_argument_wins_over_env(tmp_path, monkeypatch):
    explicit, from_env = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir()
    from_env.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(from_env))
    assert resolve_data_dir(explicit) == explicit.resolve()
    assert resolve_data_dir(str(explicit)) == explicit.resolve()


def test_env_variable_used_without_argument(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()


def test_missing_explicit_dir_names_it_and_the_remedies(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        resolve_data_dir(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "--data-dir" in message and DATA_DIR_ENV in message


def test_missing_env_dir_is_not_silently_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="gone"):
        resolve_data_dir()


def test_default_candidates_cwd_then_parent(tmp_path, monkeypatch):
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.setattr(locate, "_package_repo_parent", lambda: tmp_path / "elsewhere")
    monkeypatch.chdir(work)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert resolve_data_dir() == (tmp_path / "shared" / "data").resolve()
    (work / "shared" / "data").mkdir(parents=True)
    assert resolve_data_dir() == (work / "shared" / "data").resolve()


def test_no_default_candidate_lists_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(locate, "_package_repo_parent", lambda: tmp_path / "pkg")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        resolve_data_dir()
    message = str(info.value)
    for place in (tmp_path / "shared/data", tmp_path.parent / "shared/data",
                  tmp_path / "pkg/shared/data"):
        assert str(place) in message


def test_package_repo_parent_holds_the_repository():
    assert (locate._package_repo_parent() / Path(locate.__file__).parents[2].name).is_dir()


def test_text_dir_with_and_without_text_subfolder(tmp_path):
    assert text_dir(tmp_path) == tmp_path.resolve()
    (tmp_path / "text").mkdir()
    assert text_dir(tmp_path) == (tmp_path / "text").resolve()
