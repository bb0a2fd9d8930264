"""Reading the project's own JSON and YAML files: a damaged file is one clear line, not a traceback."""

from __future__ import annotations

import pytest

from stages.lib.errors import UserError
from stages.lib.io import read_json, read_yaml


@pytest.mark.parametrize("content", [b'{"gate": {"passed": tr', b"", b"\xff\xfe not text"])
def test_a_damaged_json_file_is_a_clear_error_naming_the_file_and_the_fix(tmp_path, content):
    path = tmp_path / "drift.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"^{path}: not valid JSON \(.+\); run `dvc repro` again$"):
        read_json(path, "run `dvc repro` again")


@pytest.mark.parametrize("content", [b"key: [unclosed", b"a: b\n c: d\n:", b"\xff\xfe"])
def test_a_damaged_yaml_file_is_a_clear_error_naming_the_file_and_the_fix(tmp_path, content):
    path = tmp_path / "schema.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"^{path}: not valid YAML \(.+\); run `dvc repro prepare`$"):
        read_yaml(path, "run `dvc repro prepare`")


def test_valid_files_are_read_as_written(tmp_path):
    (tmp_path / "a.json").write_text('{"b": [1, 2.5, null]}')
    (tmp_path / "a.yaml").write_text("b: [1, 2.5, null]\n")
    assert read_json(tmp_path / "a.json", "") == {"b": [1, 2.5, None]} == read_yaml(tmp_path / "a.yaml", "")
