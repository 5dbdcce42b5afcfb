"""A run's recorded model outputs and class labels (``record/predictions.npy``, ``record/targets.npy``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from logiclens.analysis.errors import AnalysisError
from logiclens.runs import layout

__all__ = ["Predictions", "load_predictions"]


@dataclass
class Predictions:
    """What the model said about every probe input, and what is right.

    Attributes
    ----------
    predicted : int64 (n,)
        The top class of every input.
    logits : float32 (n, classes) or None
        All logits, where the head was narrow enough to keep them.
    targets : int64 (n,)
        The ground-truth class of every input in the model's label space; -1 where unknown.
    """

    predicted: NDArray[np.int64]
    logits: NDArray[np.float32] | None
    targets: NDArray[np.int64]

    @property
    def labelled(self) -> NDArray[np.bool_]:
        """Inputs with a ground-truth label."""
        return self.targets >= 0

    @property
    def correct(self) -> NDArray[np.float64]:
        """1.0 where the top class is the label, 0.0 where not, NaN without a label."""
        right = (self.predicted == self.targets).astype(np.float64)
        right[~self.labelled] = np.nan
        return right


def load_predictions(run: str | Path) -> Predictions:
    """Read a run's predictions and labels.

    Raises
    ------
    AnalysisError
        If the run recorded no predictions (it was made without them, or the model's output
        is not a classifier's).
    """
    path = Path(run)
    if (path / layout.PREDICTIONS).is_file():
        logits = np.asarray(np.load(path / layout.PREDICTIONS, mmap_mode="r"), np.float32)
        predicted = logits.argmax(axis=1).astype(np.int64)
    elif (path / layout.TOP_CLASSES).is_file():
        logits = None
        predicted = np.asarray(np.load(path / layout.TOP_CLASSES, mmap_mode="r")[:, 0], np.int64)
    else:
        raise AnalysisError(
            f"{path} has no recorded predictions ({layout.PREDICTIONS}); rerun `logiclens dissect` on it "
            "(predictions are recorded by default since this version) with a model whose output is (n, classes)"
        )
    if (path / layout.TARGETS).is_file():
        targets = np.asarray(np.load(path / layout.TARGETS, mmap_mode="r"), np.int64)
    else:
        targets = np.full(len(predicted), -1, np.int64)
    if len(targets) != len(predicted):
        raise AnalysisError(f"{path}: {len(targets)} labels for {len(predicted)} predictions; rerun the dissection")
    return Predictions(predicted, logits, targets)
