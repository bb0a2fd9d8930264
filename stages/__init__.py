"""Pipeline stages: one module per `dvc.yaml` stage, each a pure core plus a thin `main()` (other commands: `commands/`)."""

import os

# Idle OpenMP threads sleep instead of spinning: with other processes on the same cores, spinning
# threads burn the time the working ones need (trainings ran 10x-50x slower). OpenMP reads this once,
# when scikit-learn first loads it, so it is set here, before any stage module imports scikit-learn
# (commands/__init__.py imports this package for the same reason).
# An explicit OMP_WAIT_POLICY in the environment wins. Thread counts: stages/lib/runtime.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
