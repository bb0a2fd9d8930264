"""Compose conf/ into params.yaml exactly as `dvc exp run` does, or check that they agree.

`dvc repro` never composes Hydra configs, so `make repro` runs this first. It calls DVC's own
composition function, so the file is byte-for-byte what `dvc exp run` would write. The composition
is validated whole by the params models (stages/lib/config/) before anything is written: a misspelt
key or a wrong value anywhere in conf/ stops here with the key's name, and params.yaml stays as it was.

    python -m commands.compose [OVERRIDE ...]     # e.g. model=logreg train.seed=7
    python -m commands.compose --check            # exit 1 if params.yaml is stale

Exit codes: 0 done (or in sync), 1 the check found params.yaml stale, 2 conf/ cannot be composed or is invalid.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

import yaml

from stages.lib.config import check_hyperparameters, parse_params
from stages.lib.errors import fail, run_stage
from stages.lib.io import write_outputs

CONFIG_DIR = Path("conf")
CONFIG_NAME = "config"
PARAMS_FILE = Path("params.yaml")
CHECK_FAILED_EXIT = 1  # a finding, not a usage error (those exit 2, from run_stage)


def compose(config_dir: Path = CONFIG_DIR, overrides: list[str] | None = None) -> str:
    """The params.yaml text that conf/ (plus Hydra overrides) composes to."""
    from dvc.utils.hydra import compose_and_dump
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not (config_dir / f"{CONFIG_NAME}.yaml").exists():
        fail(f"{config_dir / CONFIG_NAME}.yaml: not found; run from the project root")
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "params.yaml"
        try:
            compose_and_dump(output, str(config_dir.resolve()), None, CONFIG_NAME, str(Path.cwd()), list(overrides or []))
        except (HydraException, OmegaConfBaseException) as error:
            # Hydra spreads one problem over several lines; keep it on one.
            detail = re.sub(r"\s*\n\s*", " ", str(error).split("Config search path")[0]).strip()
            fail(f"{config_dir}/: cannot compose the configuration: {detail}")
        return output.read_text(encoding="utf-8")


def validate(text: str, config_dir: Path = CONFIG_DIR) -> None:
    """Stop with one line naming the key when the composed params break a rule of the params models."""
    source = f"{PARAMS_FILE} composed from {config_dir}/"
    check_hyperparameters(parse_params(yaml.safe_load(text), source, config_dir).model, source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that params.yaml equals the composition")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=logreg train.seed=7")
    args = parser.parse_args(argv)
    composed = compose(CONFIG_DIR, args.overrides)
    validate(composed)
    current = PARAMS_FILE.read_text(encoding="utf-8") if PARAMS_FILE.exists() else ""
    if args.check:
        if current != composed:
            diff = "".join(difflib.unified_diff(current.splitlines(True), composed.splitlines(True), "params.yaml", "composed conf/"))
            print(diff, file=sys.stderr)
            print("error: params.yaml differs from the composition of conf/; run `make params` and commit it", file=sys.stderr)
            sys.exit(CHECK_FAILED_EXIT)
        print("params.yaml matches conf/")
        return 0
    if current != composed:
        write_outputs({PARAMS_FILE: lambda path: path.write_text(composed, encoding="utf-8")})
        print("params.yaml: composed from conf/" + (f" with {' '.join(args.overrides)}" if args.overrides else ""))
    return 0


if __name__ == "__main__":
    run_stage(main)
