"""sources: a fingerprint of every source file prepare reads, so that replacing one reruns prepare.

The source files cannot be DVC deps of prepare: the default one lies inside an installed package (`data.source.package`:
its path is the virtual environment's, which differs between machines, and dvc.lock must hold no absolute path), and a
glob names files DVC cannot list. This stage is DVC's pattern for inputs outside the project: `always_changed`, it runs
on every `dvc repro` (and `dvc exp run`) and writes each file's sha256 and size, by the setting that names it and its
file name, to data/sources.json, which prepare depends on. The file's bytes are the same as long as no source byte
changed, so DVC then skips prepare and everything after it; a source replaced under the same name reruns prepare.
A Parquet source must carry page checksums (stages/lib/io.py: without them damaged bytes can change values unseen).
"""

from __future__ import annotations

from typing import Any

from stages.lib.catalog import SOURCES_FILE
from stages.lib.config import DataContract, load_params
from stages.lib.errors import run_stage
from stages.lib.io import is_parquet, json_writer, require_page_checksums, sha256_file, source_files, write_outputs


def fingerprint(contract: DataContract) -> dict[str, Any]:
    """Per setting (data.source, data.join[i].source): where it points (package and path as written, never the
    machine's absolute path) and each file it names, by file name, with its sha256 and size."""
    found: dict[str, Any] = {}
    for setting, source in contract.sources:
        files = source_files(source.locate(), f"fix {setting} in conf/data/")
        for file in files:
            if is_parquet(file):
                require_page_checksums(file, setting)  # its pages' CRCs are what prepare's reading checks
        found[setting] = {
            "package": source.package,
            "path": source.path,
            "files": {file.name: {"sha256": sha256_file(file), "bytes": file.stat().st_size} for file in files},
        }
    return found


def main() -> None:
    sources = fingerprint(load_params().data)
    write_outputs({SOURCES_FILE: json_writer(sources)})
    count = sum(len(entry["files"]) for entry in sources.values())
    print(f"sources: {count} source file(s) hashed -> {SOURCES_FILE}")


if __name__ == "__main__":
    run_stage(main)
