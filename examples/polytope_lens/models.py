"""Small piecewise-linear models for the study, trained deterministically and cached.

* ``mlp``: ReLU MLP 64-128-128-64-10 on flattened 8x8 digits (the notes' M1); ``bias=False``
  gives the bias-free control of the scaling experiment.
* ``cnn``: conv3x3(16) - ReLU - conv3x3(32) - ReLU - 2x2 average pooling - linear (M2, with
  4x4 pooling instead of global pooling, which keeps where the strokes are).

Training: Adam, cross-entropy, fixed seeds, one thread-independent data order. Trained
weights are cached in ``cache_dir`` (default ``~/.cache/logiclens/polytope``) under a hash of
the configuration; a cache hit skips training. Weights are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = ["accuracy", "build_model", "default_cache_dir", "input_shape", "train_model"]


def default_cache_dir() -> Path:
    """``$LOGICLENS_CACHE/polytope`` or ``~/.cache/logiclens/polytope``."""
    root = os.environ.get("LOGICLENS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "logiclens")
    return Path(root) / "polytope"


def build_model(kind: str, bias: bool = True, seed: int = 0) -> nn.Sequential:
    """A freshly initialised ``mlp`` or ``cnn`` (seeded)."""
    torch.manual_seed(seed)
    if kind == "mlp":
        widths = [64, 128, 128, 64]
        modules: list[tuple[str, nn.Module]] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
            modules += [(f"fc{i}", nn.Linear(fan_in, fan_out, bias=bias)), (f"relu{i}", nn.ReLU())]
        modules.append(("out", nn.Linear(widths[-1], 10, bias=bias)))
        return nn.Sequential(OrderedDict(modules))
    if kind == "cnn":
        return nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(1, 16, 3, padding=1, bias=bias),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(16, 32, 3, padding=1, bias=bias),
                relu2=nn.ReLU(),
                pool=nn.AvgPool2d(2),
                flatten=nn.Flatten(),
                out=nn.Linear(32 * 4 * 4, 10, bias=bias),
            )
        )
    raise ValueError(f"unknown model kind {kind!r}")


def input_shape(kind: str) -> tuple[int, ...]:
    """Shape of one input of the model kind."""
    return (64,) if kind == "mlp" else (1, 8, 8)


def train_model(
    kind: str,
    x: NDArray[np.float64],
    y: NDArray[np.int64],
    epochs: int = 300,
    bias: bool = True,
    seed: int = 0,
    lr: float = 3e-3,
    batch_size: int = 128,
    weight_decay: float = 1e-4,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[nn.Sequential, dict[str, Any]]:
    """Train (or load from the cache) a model on ``x`` (N, 8, 8 or 64), labels ``y``.

    ``epochs=0`` returns the random initialisation. Returns the model in eval mode and a dict
    with the configuration, the training time and whether the cache was used.
    """
    config = {
        "kind": kind,
        "epochs": epochs,
        "bias": bias,
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "weight_decay": weight_decay,
        "version": 2,
        "data": hashlib.sha256(
            np.ascontiguousarray(x, np.float64).tobytes() + np.asarray(y, np.int64).tobytes()
        ).hexdigest()[:16],
    }
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    model = build_model(kind, bias, seed)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{kind}-{key}.pt"
    info: dict[str, Any] = {"config": config, "cache": str(path), "cached": False, "train_seconds": 0.0}
    if epochs == 0:
        return model.eval(), info
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        info["cached"] = True
        return model.eval(), info
    import time

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train several times faster on one thread, and deterministically
    inputs = torch.as_tensor(np.asarray(x, np.float32).reshape(len(x), *input_shape(kind)))
    targets = torch.as_tensor(np.asarray(y, np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for first in range(0, len(inputs), batch_size):
            batch = order[first : first + batch_size]
            optimizer.zero_grad()
            loss_fn(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    info["train_seconds"] = time.perf_counter() - start
    torch.set_num_threads(threads)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(model.state_dict(), temporary)
    os.replace(temporary, path)
    return model, info


def accuracy(model: nn.Module, x: NDArray[np.float64], y: NDArray[np.int64], kind: str) -> float:
    """Fraction of correct predictions."""
    with torch.no_grad():
        logits = model(torch.as_tensor(np.asarray(x, np.float32).reshape(len(x), *input_shape(kind))))
    return float((logits.argmax(1).numpy() == np.asarray(y)).mean())
