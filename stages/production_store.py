"""production-store: create the production store (data/production/) when it is missing, verify it otherwise.

DVC versions the store as this stage's persistent output (dvc.yaml): `dvc repro` runs it after
`make score-batch`, `make add-labels` or `make simulate-production` changed the folder, and records the
new hash in dvc.lock; it never deletes or rewrites a file. The check fails closed: a file that differs from
what was appended, a row id in two batches, an outcome for no stored row or a half-written append stops
the pipeline with one line.
"""

from __future__ import annotations

from stages.lib.catalog import PRODUCTION_DIR
from stages.lib.config import load_params
from stages.lib.errors import run_stage
from stages.lib.production import STORE_FILE, create_store, verify_store


def main() -> None:
    id_column = load_params().monitor.id_column
    if not PRODUCTION_DIR.exists() or not any(PRODUCTION_DIR.iterdir()):
        create_store(id_column)
        print(f"production-store: created an empty store -> {PRODUCTION_DIR}/{STORE_FILE}")
        return
    metas, files = verify_store(id_column)
    rows, outcomes = sum(meta.rows for meta in metas), sum(meta.rows for meta in files)
    print(
        f"production-store: {PRODUCTION_DIR}: {len(metas)} batch(es), {rows:,} rows, {outcomes:,} outcomes in {len(files)} file(s): verified"
    )


if __name__ == "__main__":
    run_stage(main)
