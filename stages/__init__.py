"""Pipeline stages: one module per `dvc.yaml` stage, each a pure core plus a thin `main()`."""
