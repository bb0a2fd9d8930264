"""Reading the project's own files: a damaged JSON or YAML file is one clear line, not a traceback; a table is one
Parquet file or a folder of parts."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.lib.errors import UserError
from stages.lib.io import parquet_schema, read_json, read_parquet, read_yaml


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


def test_a_folder_of_parts_reads_in_order_and_its_schema_unifies_a_part_where_a_column_is_all_missing(tmp_path):
    folder = tmp_path / "current.parquet"
    folder.mkdir()
    first = pd.DataFrame({"temp": [3.5], "carrier": [None]})  # all missing here: Arrow types it `null` in this part
    second = pd.DataFrame({"temp": [1.5, 2.5], "carrier": ["UA", "AA"]})
    first.to_parquet(folder / "part-00000.parquet", index=False)
    second.to_parquet(folder / "part-00001.parquet", index=False)
    assert pq.read_schema(folder / "part-00000.parquet").field("carrier").type == pa.null()
    typed = {field.name: str(field.type) for field in pq.read_schema(folder / "part-00001.parquet")}
    assert typed["carrier"] != "null"
    assert parquet_schema(folder, "hint") == typed == parquet_schema(folder / "part-00001.parquet", "hint")
    assert read_parquet(folder, "hint")["temp"].tolist() == [3.5, 1.5, 2.5]
    with pytest.raises(UserError, match="a folder without part-"):
        parquet_schema(tmp_path, "hint")
