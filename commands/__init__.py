"""Commands that are not pipeline stages: compose, report, predict, verify_cache, drift_gate, plots.

`dvc.yaml` runs none of them (its stages live in `stages/`); people and CI run them through `make`, as
`python -m commands.<name>`. They share the stages' library, `stages/lib/`.
"""

# Importing `stages` sets OMP_WAIT_POLICY before any command loads scikit-learn's OpenMP runtime (predict
# and report score with the model): one place for that setting, stages/__init__.py.
import stages  # noqa: F401
