"""What units contribute to each class (Mu & Andreas, Figures 6 and 8).

**Effective weights.** When the dissected layer feeds a linear classifier through global
average pooling, possibly with per-channel affine maps (BatchNorm in eval mode) and monotone
activations (ReLU, ReLU6, ...) in between, as in EfficientNet's head
``conv_head -> bn2 -> act2 -> global pool -> classifier``, the *effective weight* of unit k
for class c is ``W[c, k] * s_k``, where ``s_k`` is the product of the per-channel scales
(``gamma_k / sqrt(var_k + eps)`` for BatchNorm) on the path. Its sign is exact: the logit
of c moves with unit k's activation at every position in the direction ``sign(W[c, k] * s_k)``,
because the activations are non-decreasing (a negative BatchNorm scale flips the sign, which
is why the scale is folded in rather than dropped). Its size is exact up to the activation's
slope (0 or 1 for ReLU-like functions) and the 1/(h*w) of pooling, which is the same for
every unit. The path is found by watching which modules run after the layer in one forward
pass, and checked by recomputing the model's logits from the recorded activations through
the folded path: a path that does not reproduce them (a functional operation the hooks
cannot see) is refused.

**Extension: gradient times activation.** For any other layer, the contribution of unit k
to class c is the mean over probe images of ``sum_positions dlogit_c/dA_k * A_k`` (first-order
attribution). This is not in the paper; it is labelled ``method = "grad_x_activation"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from logiclens.analysis.errors import AnalysisError

__all__ = ["LinearHead", "contribution_table", "find_linear_head", "gradient_contributions", "unit_class_table"]

_MONOTONE = ("ReLU", "ReLU6", "LeakyReLU", "Hardtanh", "Sigmoid", "Tanh", "ELU", "Softplus", "CELU", "SELU",
             "Identity", "Dropout", "Dropout2d", "Flatten")  # fmt: skip
_POOLS = ("AdaptiveAvgPool2d", "AvgPool2d", "SelectAdaptivePool2d")


@dataclass
class LinearHead:
    """A layer's path to the classifier, folded.

    Attributes
    ----------
    layer : str
    path : list of str
        The modules after the layer, in the order they ran.
    scale : float64 (units,)
        Product of the per-channel affine scales on the path (1 where none).
    weight : float64 (classes, units)
        The classifier's weight.
    effective : float64 (classes, units)
        ``weight * scale``: the effective weight, sign kept.
    max_error : float
        Largest difference between the model's logits and the folded path's, on the check images.
    """

    layer: str
    path: list[str]
    scale: NDArray[np.float64]
    weight: NDArray[np.float64]
    effective: NDArray[np.float64]
    max_error: float


def _leaf_order(module: Any, layer: str, example: Any) -> list[tuple[str, Any]]:
    """Names and modules that run after ``layer`` in one forward pass on ``example``."""
    import torch

    from logiclens.hooks import parse_layer_name

    layer_name, _ = parse_layer_name(layer)
    order: list[tuple[str, Any]] = []
    handles = []
    for name, sub in module.named_modules():
        if name == layer_name or (not list(sub.children()) and name):
            handles.append(sub.register_forward_hook(lambda m, i, o, name=name: order.append((name, m))))
    try:
        with torch.inference_mode():
            module.eval()(example)
    finally:
        for handle in handles:
            handle.remove()
    positions = [i for i, (name, _) in enumerate(order) if name == layer_name]
    if not positions:
        raise AnalysisError(f"layer {layer!r} did not run in the forward pass; check the layer name")
    return [(name, sub) for name, sub in order[positions[-1] + 1 :] if not name.startswith(layer_name + ".")]


def find_linear_head(
    model: Any, layer: str, activations: NDArray[np.floating], logits: NDArray[np.floating], example: Any
) -> LinearHead | None:
    """The layer's folded linear path to the classifier, or None where there is none.

    Parameters
    ----------
    model : ModelAdapter
    layer : str
    activations : (n, units, h, w) array
        Recorded activations of a few images, to check the folded path against.
    logits : (n, classes) array
        The model's logits on the same images.
    example : torch.Tensor
        One preprocessed input, to watch the forward pass.

    Returns
    -------
    LinearHead or None
        None when a module on the path is neither a per-channel affine, a monotone
        activation, a global average pool nor the final linear layer, or when the folded
        path does not reproduce the logits.
    """
    import torch
    from torch import nn

    path = _leaf_order(model.module, layer, example)
    if not path or not isinstance(path[-1][1], nn.Linear):
        return None
    scale: NDArray[np.float64] | None = None
    pooled = False
    for _, sub in path[:-1]:
        kind = type(sub).__name__
        if isinstance(sub, nn.BatchNorm2d) and not pooled:
            gamma = sub.weight.detach().double().numpy() if sub.affine else np.ones(sub.num_features)
            factor = gamma / np.sqrt(sub.running_var.detach().double().numpy() + sub.eps)
            scale = factor if scale is None else scale * factor
        elif kind in _POOLS or isinstance(sub, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            pooled = True
        elif kind not in _MONOTONE:
            return None
    linear = path[-1][1]
    weight = linear.weight.detach().double().numpy()
    n_units = activations.shape[1]
    if weight.shape[1] != n_units:
        return None
    scale = np.ones(n_units) if scale is None else scale
    # check: the path's modules, applied to the recorded activations, give the recorded logits
    x = torch.from_numpy(np.asarray(activations, np.float32))
    with torch.inference_mode():
        for _, sub in path[:-1]:
            x = sub.eval()(x)
        x = x.mean(dim=(2, 3)) if x.ndim == 4 else x.flatten(1)
        rebuilt = linear(x).numpy()
    error = float(np.abs(rebuilt - np.asarray(logits, np.float32)).max())
    spread = float(np.abs(np.asarray(logits)).max()) or 1.0
    if error > 0.05 * spread:
        return None
    names = [name for name, _ in path]
    return LinearHead(layer, names, scale, weight, weight * scale[None, :], error)


def gradient_contributions(
    model: Any, layer: str, images: NDArray[np.float32], classes: NDArray[np.intp], batch_size: int = 16
) -> NDArray[np.float64]:
    """Mean gradient-times-activation of each class logit per unit (an extension, not the paper's).

    Parameters
    ----------
    model : ModelAdapter
    layer : str
    images : float32 (n, 3, H, W) in [0, 1]
    classes : int array (k,)
        The classes to attribute (one backward pass per class and batch).

    Returns
    -------
    float64 (k, units)
        ``mean_images sum_positions dlogit_c/dA_k * A_k``.
    """
    import torch

    from logiclens.hooks import parse_layer_name

    name, call = parse_layer_name(layer)
    target = model.module.get_submodule(name)
    total: NDArray[np.float64] | None = None
    for first in range(0, len(images), batch_size):
        captured: list[Any] = []
        calls = [0]

        def hook(
            module: Any, inputs: Any, output: Any, calls: list[int] = calls, captured: list[Any] = captured
        ) -> Any:
            if calls[0] == call:
                output = output.detach().requires_grad_(True)
                captured.append(output)
            calls[0] += 1
            return output

        handle = target.register_forward_hook(hook)
        try:
            batch = model.preprocess(torch.from_numpy(images[first : first + batch_size]))
            with torch.enable_grad():
                logits = model.module.eval()(batch)
                activation = captured[0]
                rows = []
                for c in classes:
                    (grad,) = torch.autograd.grad(logits[:, int(c)].sum(), activation, retain_graph=True)
                    rows.append((grad * activation).sum(dim=tuple(range(2, activation.ndim))).sum(0))
                part = torch.stack(rows).detach().double().numpy()
        finally:
            handle.remove()
        total = part if total is None else total + part
    assert total is not None
    return total / len(images)


def contribution_table(
    matrix: NDArray[np.float64],
    layer: str,
    method: str,
    results: pd.DataFrame,
    classes: NDArray[np.intp],
    class_names: list[str] | None,
    top: int = 10,
) -> pd.DataFrame:
    """Per class, its ``top`` most positive and most negative units, with their formulas and IoU.

    Returns
    -------
    DataFrame
        ``layer, class, class_name, unit, weight, sign (positive|negative), rank, method,
        formula, iou, heldout_iou``: one row per (class, unit) kept.
    """
    rows = []
    heldout = results["heldout_iou"].to_numpy(float) if "heldout_iou" in results else np.full(len(results), np.nan)
    for i, c in enumerate(classes):
        values = matrix[i]
        order = np.argsort(-values, kind="stable")
        picks = [("positive", order[:top]), ("negative", order[::-1][:top])]
        for sign, units in picks:
            for rank, unit in enumerate(units):
                if (sign == "positive") != (values[unit] > 0):
                    continue
                rows.append({
                    "layer": layer, "class": int(c),
                    "class_name": class_names[int(c)] if class_names else str(int(c)),
                    "unit": int(unit), "weight": float(values[unit]), "sign": sign, "rank": rank, "method": method,
                    "formula": str(results["formula"].iloc[unit]), "iou": float(results["iou"].iloc[unit]),
                    "heldout_iou": float(heldout[unit]),
                })  # fmt: skip
    return pd.DataFrame(rows)


def unit_class_table(
    matrix: NDArray[np.float64],
    layer: str,
    method: str,
    results: pd.DataFrame,
    classes: NDArray[np.intp],
    class_names: list[str] | None,
    top: int = 5,
) -> pd.DataFrame:
    """Per unit, the ``top`` classes it contributes to most positively and most negatively (Figure 6's view).

    ``matrix`` is (classes, units) with rows for ``classes``; a class enters the positive
    list only with a positive contribution, the negative list only with a negative one.

    Returns
    -------
    DataFrame
        ``layer, unit, formula, iou, heldout_iou, sign (positive|negative), rank, class,
        class_name, weight, method``: one row per (unit, class) kept, units in order.
    """
    rows = []
    heldout = results["heldout_iou"].to_numpy(float) if "heldout_iou" in results else np.full(len(results), np.nan)
    for unit in range(matrix.shape[1]):
        values = matrix[:, unit]
        order = np.argsort(-values, kind="stable")
        for sign, picks in (("positive", order[:top]), ("negative", order[::-1][:top])):
            for rank, i in enumerate(p for p in picks if (values[p] > 0) == (sign == "positive") and values[p] != 0):
                c = int(classes[i])
                rows.append({
                    "layer": layer, "unit": int(unit), "formula": str(results["formula"].iloc[unit]),
                    "iou": float(results["iou"].iloc[unit]), "heldout_iou": float(heldout[unit]), "sign": sign,
                    "rank": rank, "class": c, "class_name": class_names[c] if class_names else str(c),
                    "weight": float(values[i]), "method": method,
                })  # fmt: skip
    columns = ["layer", "unit", "formula", "iou", "heldout_iou", "sign", "rank", "class", "class_name", "weight",
               "method"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
