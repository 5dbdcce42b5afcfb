"""Record layer outputs of any ``nn.Module`` by dotted name, with scoped forward hooks.

Layers are named exactly as ``model.named_modules()`` prints them (``layer4``,
``blocks.5``, ``encoder.layer.3.intermediate``). A module that runs several times in one
forward pass (a ReLU shared by two convolutions) is addressed per call: ``name`` or
``name#0`` is its first call, ``name#1`` the second, and so on.

With ``capture="input"`` the recorder keeps the first tensor a module *receives* instead
of what it returns (a forward pre-hook): the input of a nonlinearity is its pre-activation,
whatever module or functional op produced it (:mod:`logiclens.polytope.hooked`). Layers
named in ``inputs`` are recorded by their input in the same pass as the others' outputs
(:attr:`LayerRecorder.inputs`): a layer's activations and the codes at its nonlinearity
from one forward pass.

Hooks live only inside the ``with`` block and are removed on exit, exceptions included.
Outputs are cloned (an in-place ReLU after the hooked module would otherwise overwrite
them), detached and moved to the CPU. The forward pass stops as soon as the last requested
layer has fired, so the rest of the network never runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["LayerRecorder", "parse_layer_name"]

_CALL = re.compile(r"^(?P<name>.*?)(?:#(?P<call>\d+))?$")


def parse_layer_name(layer: str) -> tuple[str, int]:
    """Split ``"name#k"`` into the module name and the call index (0 when absent)."""
    match = _CALL.match(layer)
    assert match is not None
    return match.group("name"), int(match.group("call") or 0)


class _StopForwardSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside the last hook to cut the forward pass short."""


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    if isinstance(output, dict):
        for item in output.values():
            if isinstance(item, torch.Tensor):
                return item
    for item in getattr(output, "__dict__", {}).values():  # dataclass-like model outputs
        if isinstance(item, torch.Tensor):
            return item
    return None


class LayerRecorder:
    """Context manager that records the outputs of named layers.

    Parameters
    ----------
    model : nn.Module
    layers : str or sequence of str
        Dotted module names, optionally with a call index (``"layer4.1.relu#1"``).
    stop_early : bool, default True
        Stop the forward pass once every requested layer has fired.
    capture : {"output", "input"}, default "output"
        Record what each module returns, or the first tensor it receives.
    inputs : sequence of str, optional
        More layers whose first input tensor is recorded in the same pass (with
        ``capture="output"``); after :meth:`run` they are in :attr:`inputs`.

    Examples
    --------
    >>> with LayerRecorder(model, ["layer3", "layer4"]) as recorder:  # doctest: +SKIP
    ...     outputs = recorder.run(images)
    >>> outputs["layer4"].shape  # doctest: +SKIP
    torch.Size([8, 512, 7, 7])
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str],
        stop_early: bool = True,
        capture: str = "output",
        inputs: Sequence[str] = (),
    ) -> None:
        if capture not in ("output", "input"):
            raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
        self.capture = capture
        self.model = model
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        if not self.layers:
            raise ValueError("no layers to record")
        self.input_layers = list(dict.fromkeys(inputs))
        if self.input_layers and capture != "output":
            raise ValueError("inputs are recorded next to outputs: use capture='output'")
        self.stop_early = stop_early
        # (kind, module name) -> [(call index, layer)]
        self._targets: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for kind, names in ((capture, self.layers), ("input", self.input_layers)):
            for layer in names:
                name, call = parse_layer_name(layer)
                try:
                    model.get_submodule(name)
                except AttributeError:
                    raise ValueError(
                        f"model has no layer {name!r}; `logiclens layers MODEL` lists the layer names"
                    ) from None
                self._targets.setdefault((kind, name), []).append((call, layer))
        self._wanted = len(self.layers) + len(self.input_layers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._calls: dict[tuple[str, str], int] = {}
        self._captured: dict[tuple[str, str], torch.Tensor] = {}
        #: the model's own output of the last :meth:`run` (its first tensor), when the pass ran to the end
        self.output: torch.Tensor | None = None
        #: the inputs of the ``inputs`` layers in the last :meth:`run`
        self.inputs: dict[str, torch.Tensor] = {}

    def __enter__(self) -> LayerRecorder:
        for kind, name in self._targets:
            module = self.model.get_submodule(name)
            hook = self._hook_for(kind, name)
            if kind == "input":
                handle = module.register_forward_pre_hook(lambda m, inputs, hook=hook: hook(m, inputs, inputs))
            else:
                handle = module.register_forward_hook(hook)
            self._handles.append(handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook_for(self, kind: str, name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            call = self._calls.get((kind, name), 0)
            self._calls[kind, name] = call + 1
            for wanted, layer in self._targets[kind, name]:
                if wanted == call:
                    tensor = _first_tensor(output)
                    if tensor is None:
                        raise TypeError(f"layer {layer!r} returned no tensor ({type(output).__name__})")
                    self._captured[kind, layer] = tensor.detach().clone().cpu()
            if self.stop_early and len(self._captured) == self._wanted:
                raise _StopForwardSignal

        return hook

    def run(self, *inputs: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Run the model on ``inputs`` in eval mode without gradients; return ``{layer: output}``.

        With ``stop_early=False`` the pass runs to the end and :attr:`output` holds the model's
        output (e.g. the logits), so a caller gets layers and predictions from one pass.
        """
        if not self._handles:
            raise RuntimeError("LayerRecorder.run() must be called inside its `with` block")
        self._calls.clear()
        self._captured = {}
        self.output = None
        self.inputs = {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                result = self.model(*inputs, **kwargs)
            output = _first_tensor(result)
            self.output = None if output is None else output.detach().clone().cpu()
        except _StopForwardSignal:
            pass
        finally:
            self.model.train(was_training)
        wanted = [(self.capture, layer) for layer in self.layers] + [("input", layer) for layer in self.input_layers]
        missing = [layer for kind, layer in wanted if (kind, layer) not in self._captured]
        if missing:
            calls = {name: self._calls.get((kind, name), 0) for kind, name in self._targets}
            raise RuntimeError(f"layer(s) {missing} never fired; calls per module in this forward pass: {calls}")
        self.inputs = {layer: self._captured["input", layer] for layer in self.input_layers}
        return {layer: self._captured[self.capture, layer] for layer in self.layers}
