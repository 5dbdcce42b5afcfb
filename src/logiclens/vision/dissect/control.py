"""The random-initialisation control: the same dissection of a randomly re-initialised copy."""

from __future__ import annotations

from typing import Any

__all__ = ["random_init_copy"]


def random_init_copy(model: Any, seed: int = 0) -> Any:
    """A copy of a model adapter whose network is randomly re-initialised (a control).

    Every submodule with ``reset_parameters`` is reset (torch's default initialisation)
    and batch-norm running statistics are cleared, with a fixed seed.
    """
    import copy

    import torch

    clone = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in clone.module.modules():
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    clone.name = f"{model.name} (random init, seed {seed})"
    clone.weights_path = clone.weights_sha256 = None
    return clone
