"""Reading the project's own JSON and YAML files: a damaged file is one clear line, not a traceback."""

from __future__ import annotations

import pytest

from stages.lib.errors import UserError
from stages.lib.io import read_json, read_yaml


@pytest.mark.parametrize(
    ("reader", "name", "kind", "content"),
    [
        (read_json, "drift.json", "JSON", b'{"gate": {"passed": tr'),
        (read_json, "drift.json", "JSON", b""),
        (read_json, "drift.json", "JSON", b"\xff\xfe not text"),
        (read_yaml, "schema.yaml", "YAML", b"key: [unclosed"),
        (read_yaml, "schema.yaml", "YAML", b"a: b\n c: d\n:"),
        (read_yaml, "schema.yaml", "YAML", b"\xff\xfe"),
    ],
)
def test_a_damaged_file_is_a_clear_error_naming_the_file_and_the_fix(tmp_path, reader, name, kind, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"^{path}: not valid {kind} \(.+\); run `dvc repro` again$"):
        reader(path, "run `dvc repro` again")


def test_valid_files_are_read_as_written(tmp_path):
    (tmp_path / "a.json").write_text('{"b": [1, 2.5, null]}')
    (tmp_path / "a.yaml").write_text("b: [1, 2.5, null]\n")
    assert read_json(tmp_path / "a.json", "") == {"b": [1, 2.5, None]} == read_yaml(tmp_path / "a.yaml", "")
