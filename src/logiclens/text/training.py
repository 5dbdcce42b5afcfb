"""Training loops: a classifier on tensors (an MLP head on sentence vectors, or the LSTM model).

Adam on cross-entropy over the logits, mini-batches in a seeded random order, a validation
part of the training data held out, and the weights of the epoch with the best validation
accuracy restored at the end.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["TrainingHistory", "fit_classifier", "predict_logits"]


@dataclass
class TrainingHistory:
    """Per-epoch ``loss`` (training), ``train_accuracy`` and ``valid_accuracy``; the kept epoch."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def best_valid_accuracy(self) -> float:
        """Validation accuracy of the kept epoch (NaN without a validation part)."""
        return self.epochs[self.best_epoch - 1]["valid_accuracy"] if self.epochs else float("nan")


def predict_logits(model: nn.Module, inputs: Sequence[torch.Tensor], batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model(*inputs)`` in eval mode, batch by batch."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            n = len(inputs[0])
            parts = [model(*(x[s : s + batch_size] for x in inputs)) for s in range(0, n, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


def fit_classifier(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    valid_fraction: float = 0.1,
    seed: int = 0,
    verbose: bool = False,
) -> TrainingHistory:
    """Train ``model(*inputs) -> logits`` on integer ``labels``, in place.

    Parameters
    ----------
    model : nn.Module
    inputs : sequence of tensors
        Each with the examples along the first dimension.
    labels : LongTensor, shape (N,)
    epochs, batch_size, lr, weight_decay
        Adam settings (the reference trains with batch 100).
    valid_fraction : float, default 0.1
        Part of the examples held out to pick the best epoch; 0 keeps the last epoch.
    seed : int, default 0
        Seeds the split, the batch order and dropout.
    verbose : bool, default False
        Print one line per epoch to stderr.

    Returns
    -------
    TrainingHistory
    """
    n = len(labels)
    if any(len(x) != n for x in inputs):
        raise ValueError("every input needs one row per label")
    if n == 0:
        raise ValueError("no training examples")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    order = rng.permutation(n)
    n_valid = min(round(valid_fraction * n), n - 1)
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie in [0, 1), got {valid_fraction}")
    valid, train = torch.as_tensor(order[:n_valid]), torch.as_tensor(order[n_valid:])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    history = TrainingHistory()
    best_state, best_accuracy = None, -1.0
    for epoch in range(1, epochs + 1):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        shuffled = train[torch.as_tensor(rng.permutation(len(train)))]
        for start in range(0, len(shuffled), batch_size):
            batch = shuffled[start : start + batch_size]
            logits = model(*(x[batch] for x in inputs))
            loss = loss_fn(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
            correct += int((logits.argmax(-1) == labels[batch]).sum())
            total += len(batch)
        row = {"epoch": epoch, "loss": loss_sum / total, "train_accuracy": correct / total}
        if n_valid:
            predicted = predict_logits(model, [x[valid] for x in inputs]).argmax(-1)
            row["valid_accuracy"] = float((predicted == labels[valid]).float().mean())
        else:
            row["valid_accuracy"] = float("nan")
        history.epochs.append(row)
        if not n_valid or row["valid_accuracy"] > best_accuracy:
            best_accuracy, history.best_epoch = row["valid_accuracy"], epoch
            best_state = copy.deepcopy(model.state_dict())
        if verbose:
            print(
                f"epoch {epoch}: loss {row['loss']:.4f}, train accuracy {row['train_accuracy']:.3f}, "
                f"validation accuracy {row['valid_accuracy']:.3f}",
                file=sys.stderr,
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
