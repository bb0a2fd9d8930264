"""What each task's evaluation produces, and which way each metric is better: one table that evaluate
writes by, the PR verdict's gates read (a gate on a metric the task produces but a file lacks fails),
and drift-check's ROC AUC condition consults (skipped only where the task has no ROC AUC)."""

from __future__ import annotations

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "roc_auc", "average_precision", "log_loss", "brier", "accuracy", "f1", "precision", "recall", "late_share", "threshold", "rows",
    ),
    "regression": ("rmse", "mae", "r2", "rmse_constant", "target_mean", "rows"),
}  # fmt: skip
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier"})
