"""Sparse-autoencoder (SAE) latents as units: the SAELens on-disk format, read without sae-lens.

A trained SAE is a folder with ``cfg.json`` and ``sae_weights.safetensors`` (SAELens'
``SAE.save_model``). The weights are ``W_enc`` (d_in, d_sae), ``b_enc`` (d_sae), ``W_dec``
(d_sae, d_in) and ``b_dec`` (d_in); JumpReLU SAEs add ``threshold`` (d_sae) (or, in some
versions, ``log_threshold``). Encoding follows SAELens:

1. the input is normalised where ``normalize_activations`` says so:
   ``"constant_norm_rescale"`` scales each row to norm ``sqrt(d_in)``; ``"layer_norm"``
   subtracts each row's mean and divides by its standard deviation (unbiased) plus 1e-5;
   ``"none"`` leaves it. ``"expected_average_only_in"`` needs a dataset-wide scaling
   factor that SAELens folds into the weights when it saves, so a folder still marked so is
   refused;
2. ``b_dec`` is subtracted where ``apply_b_dec_to_input`` is true (the default);
3. ``pre = x @ W_enc + b_enc``, then by ``architecture``:
   ``"standard"``: ``relu(pre)``; ``"jumprelu"``: ``relu(pre) * (pre > threshold)``;
   ``"topk"`` (or ``activation_fn_str="topk"`` in older configurations, with ``k`` in
   ``activation_fn_kwargs``): the ``k`` largest pre-activations of each row, after a
   ReLU, the others zero.

Gated SAEs and TopK SAEs with ``rescale_acts_by_decoder_norm`` are refused on one line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["SAE_CONFIG", "SAE_WEIGHTS", "SparseAutoencoder", "load_sae", "save_sae"]

SAE_CONFIG = "cfg.json"
SAE_WEIGHTS = "sae_weights.safetensors"
ARCHITECTURES = ("standard", "jumprelu", "topk")
NORMALISATIONS = ("none", "constant_norm_rescale", "layer_norm")


@dataclass
class SparseAutoencoder:
    """An SAE's encoder, ready to turn a layer's activations into latents.

    Attributes
    ----------
    architecture : {"standard", "jumprelu", "topk"}
    W_enc, b_enc, b_dec : float32 tensors
    threshold : float32 tensor or None
        JumpReLU thresholds.
    k : int or None
        TopK's k.
    apply_b_dec_to_input : bool
    normalize_activations : {"none", "constant_norm_rescale", "layer_norm"}
    path : str
        The folder it was read from.
    sha256 : str
        Digest of the weights file (for the run's fingerprints).
    """

    architecture: str
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    threshold: torch.Tensor | None
    k: int | None
    apply_b_dec_to_input: bool
    normalize_activations: str
    path: str
    sha256: str

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    def config(self) -> dict[str, Any]:
        """What determines the latents, JSON-able (for ``config.json`` and cache keys)."""
        return {
            "path": self.path, "sha256": self.sha256, "architecture": self.architecture, "d_in": self.d_in,
            "d_sae": self.d_sae, "k": self.k, "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations,
        }  # fmt: skip

    def encode(self, x: NDArray[np.floating] | torch.Tensor, batch_rows: int = 8192) -> NDArray[np.float32]:
        """Latents of rows of activations.

        Parameters
        ----------
        x : array (..., d_in)
        batch_rows : int
            Rows encoded at a time (memory: ``batch_rows * d_sae`` floats).

        Returns
        -------
        float32 array (..., d_sae)
        """
        tensor = torch.as_tensor(np.asarray(x, np.float32) if not isinstance(x, torch.Tensor) else x.float())
        if tensor.shape[-1] != self.d_in:
            raise ValueError(
                f"the SAE in {self.path} reads {self.d_in} values per position (d_in), but the layer gives "
                f"{tensor.shape[-1]}; choose the layer the SAE was trained on"
            )
        rows = tensor.reshape(-1, self.d_in)
        out = np.empty((len(rows), self.d_sae), np.float32)
        with torch.inference_mode():
            for start in range(0, len(rows), batch_rows):
                out[start : start + batch_rows] = self._encode(rows[start : start + batch_rows]).numpy()
        return out.reshape(*tensor.shape[:-1], self.d_sae)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_activations == "constant_norm_rescale":
            x = x * (math.sqrt(self.d_in) / x.norm(dim=-1, keepdim=True))
        elif self.normalize_activations == "layer_norm":
            x = x - x.mean(dim=-1, keepdim=True)
            x = x / (x.std(dim=-1, keepdim=True) + 1e-5)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        if self.architecture == "standard":
            return torch.relu(pre)
        if self.architecture == "jumprelu":
            assert self.threshold is not None
            return torch.relu(pre) * (pre > self.threshold)
        assert self.k is not None
        top = torch.topk(pre, min(self.k, self.d_sae), dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))


def _fail(folder: Path, message: str) -> ValueError:
    return ValueError(f"{folder}: not a usable SAELens SAE folder: {message}")


def load_sae(path: str | os.PathLike[str]) -> SparseAutoencoder:
    """Read an SAE saved in SAELens' format (``cfg.json`` + ``sae_weights.safetensors``).

    Raises
    ------
    ValueError
        On one line: a missing or malformed file, an unsupported architecture or
        normalisation, or weights whose shapes disagree with ``d_in`` and ``d_sae``.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from logiclens.core.fingerprint import file_digest

    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"--sae {folder}: no such folder (an SAE folder holds {SAE_CONFIG} and {SAE_WEIGHTS})")
    try:
        cfg = json.loads((folder / SAE_CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(folder, f"no {SAE_CONFIG}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise _fail(folder, f"{SAE_CONFIG} is not valid JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise _fail(folder, f"{SAE_CONFIG} is not a JSON object")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or isinstance(cfg.get(key), bool) or cfg[key] < 1:
            raise _fail(folder, f"{SAE_CONFIG} needs a positive integer {key!r}, got {cfg.get(key)!r}")
    architecture = str(cfg.get("architecture", "standard"))
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if architecture == "standard" and cfg.get("activation_fn_str") == "topk":  # older SAELens TopK SAEs
        architecture = "topk"
    if architecture not in ARCHITECTURES:
        raise _fail(folder, f"architecture {architecture!r} is not supported (supported: {', '.join(ARCHITECTURES)})")
    normalise = str(cfg.get("normalize_activations") or "none")
    if normalise == "expected_average_only_in":
        raise _fail(
            folder, "normalize_activations 'expected_average_only_in' needs the dataset's scaling factor; fold it "
            "into the weights (SAELens: sae.fold_activation_norm_scaling_factor) and save again",
        )  # fmt: skip
    if normalise not in NORMALISATIONS:
        raise _fail(folder, f"normalize_activations {normalise!r} is not one of {', '.join(NORMALISATIONS)}")
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise _fail(folder, "rescale_acts_by_decoder_norm is not supported")
    k = None
    if architecture == "topk":
        k = cfg.get("k", kwargs.get("k") if isinstance(kwargs, dict) else None)
        if not isinstance(k, (int, float)) or isinstance(k, bool) or k < 1 or int(k) != k:
            raise _fail(folder, f"a TopK SAE needs a positive whole 'k', got {k!r}")
        k = int(k)
    weights_file = folder / SAE_WEIGHTS
    if not weights_file.is_file():
        raise _fail(folder, f"no {SAE_WEIGHTS}")
    try:
        weights = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as error:
        raise _fail(folder, f"{SAE_WEIGHTS} cannot be read ({str(error).splitlines()[0]})") from None
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "b_dec": (d_in,)}
    if architecture == "jumprelu":
        if "threshold" not in weights and "log_threshold" in weights:
            weights["threshold"] = np.exp(weights["log_threshold"].astype(np.float64))
        expected["threshold"] = (d_sae,)
    for key, shape in expected.items():
        if key not in weights:
            raise _fail(folder, f"{SAE_WEIGHTS} has no tensor {key!r} (it has {', '.join(sorted(weights))})")
        if tuple(weights[key].shape) != shape:
            raise _fail(folder, f"{key} has shape {tuple(weights[key].shape)}; d_in={d_in}, d_sae={d_sae} need {shape}")
        if not np.isfinite(weights[key].astype(np.float32)).all():
            raise _fail(folder, f"{key} holds NaN or infinite values")

    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(weights[key], dtype=np.float32))

    return SparseAutoencoder(
        architecture, tensor("W_enc"), tensor("b_enc"), tensor("b_dec"),
        tensor("threshold") if architecture == "jumprelu" else None, k,
        bool(cfg.get("apply_b_dec_to_input", True)), normalise, str(folder), file_digest(weights_file),
    )  # fmt: skip


def save_sae(
    path: str | os.PathLike[str],
    W_enc: NDArray[np.floating],
    b_enc: NDArray[np.floating] | None = None,
    b_dec: NDArray[np.floating] | None = None,
    architecture: str = "standard",
    threshold: NDArray[np.floating] | None = None,
    k: int | None = None,
    apply_b_dec_to_input: bool = True,
    normalize_activations: str = "none",
    hook_name: str = "",
) -> Path:
    """Write an SAE in SAELens' format (for tests and examples; ``W_dec`` is ``W_enc.T``).

    Returns
    -------
    Path
        The folder.
    """
    from safetensors.numpy import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    w_enc = np.ascontiguousarray(W_enc, np.float32)
    d_in, d_sae = w_enc.shape
    tensors = {
        "W_enc": w_enc,
        "b_enc": np.zeros(d_sae, np.float32) if b_enc is None else np.asarray(b_enc, np.float32),
        "W_dec": np.ascontiguousarray(w_enc.T),
        "b_dec": np.zeros(d_in, np.float32) if b_dec is None else np.asarray(b_dec, np.float32),
    }
    if threshold is not None:
        tensors["threshold"] = np.asarray(threshold, np.float32)
    cfg: dict[str, Any] = {
        "architecture": architecture, "d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32",
        "apply_b_dec_to_input": apply_b_dec_to_input, "normalize_activations": normalize_activations,
        "hook_name": hook_name, "metadata": {"hook_name": hook_name},
    }  # fmt: skip
    if k is not None:
        cfg["k"] = int(k)
    save_file(tensors, str(folder / SAE_WEIGHTS))
    (folder / SAE_CONFIG).write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return folder
