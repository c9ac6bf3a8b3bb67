"""The one place for environment variables, atomic writes and validation messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from ksearch import settings
from ksearch.errors import describe_validation_error
from ksearch.paths import configs_dir, repo_root, write_atomic

KSEARCH_SOURCES = Path(__file__).resolve().parent.parent / "ksearch"


def test_cache_root_prefers_the_new_name_and_warns_once_for_the_old(monkeypatch, capsys, tmp_path):
    settings._warn_old_cache_name.cache_clear()
    monkeypatch.delenv("KSEARCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("KSEARCH_CACHE", str(tmp_path / "old"))
    assert settings.cache_root() == tmp_path / "old"
    assert settings.cache_root() == tmp_path / "old"
    assert capsys.readouterr().err.count("KSEARCH_CACHE is deprecated; set KSEARCH_CACHE_DIR") == 1
    monkeypatch.setenv("KSEARCH_CACHE_DIR", str(tmp_path / "new"))
    assert settings.cache_root() == tmp_path / "new"
    monkeypatch.delenv("KSEARCH_CACHE")
    monkeypatch.setenv("KSEARCH_CACHE_DIR", "  ")
    assert settings.cache_root() == Path.home() / ".cache" / "ksearch"


def test_blank_variables_fall_back_to_the_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("KSEARCH_CONFIGS", " ")
    assert configs_dir() == repo_root() / "configs"
    monkeypatch.setenv("KSEARCH_CONFIGS", str(tmp_path))
    assert configs_dir() == tmp_path
    monkeypatch.setenv("KSEARCH_JAIL", "OFF")
    assert settings.jail_turned_off()
    monkeypatch.setenv("KSEARCH_HIP_COMPILER", " Clang ")
    assert settings.forced_hip_compiler() == "clang"


def test_no_module_but_settings_reads_a_ksearch_variable():
    readers = [
        path.relative_to(KSEARCH_SOURCES).as_posix()
        for path in KSEARCH_SOURCES.rglob("*.py")
        if re.search(r"environ(\.get)?[\[(]\s*[\"']KSEARCH_", path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_every_variable_is_in_the_module_table_and_the_readme():
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    for var in settings.VARIABLES:
        assert f"`{var.name}`" in settings.__doc__
        assert var.name in readme, f"README.md does not list {var.name}"


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, "old")
    write_atomic(path, b"new", fsync=True)
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, "old")
    with pytest.raises(TypeError):
        write_atomic(path, 3)  # type: ignore[arg-type]  # not str or bytes: the write fails midway
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


class _Point(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int
    y: int | str


def test_validation_messages_say_what_to_do():
    with pytest.raises(ValidationError) as info:
        _Point.model_validate({"y": [1], "z": 0})
    text = describe_validation_error(info.value, hints={"x": "every point needs x: <int>"})
    assert "field 'x' is missing; every point needs x: <int>" in text
    assert "unknown field 'z'; remove it or fix its spelling (known fields: x)" in text
    assert "field 'y':" in text and ".int" not in text  # union branch names are left out
    assert describe_validation_error(info.value, limit=1).endswith("(+3 more problems)")
