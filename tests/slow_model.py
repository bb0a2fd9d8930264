"""A model that is slow inside Dask workers, for tests that kill a worker while it computes. Its own small
module: the workers import it to unpickle the model, and should not have to import the test modules."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowOnWorkers(ClassifierMixin, BaseEstimator):
    """A fitted classifier that, inside a Dask worker, leaves a marker naming the worker and then takes `seconds`
    per call: time for the test to kill a worker while it computes. In the test's own process it is the model."""

    def __init__(self, model=None, markers: str = "", seconds: float = 0.0) -> None:
        self.model, self.markers, self.seconds = model, markers, seconds

    @property
    def classes_(self) -> np.ndarray:
        return self.model.classes_

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        from distributed import get_worker

        try:
            name = get_worker().name
        except ValueError:  # not in a worker
            return self.model.predict_proba(features)
        Path(self.markers, f"{name}-{uuid.uuid4().hex}").touch()
        time.sleep(self.seconds)
        return self.model.predict_proba(features)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.model.predict(features)

    def fit(self, features: pd.DataFrame, target: pd.Series) -> SlowOnWorkers:  # permutation_importance asks for one
        raise NotImplementedError("fitted already")
