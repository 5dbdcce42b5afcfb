"""``logiclens layers``: a model's layer names and output shapes."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``layers`` command."""
    layers = commands.add_parser("layers", help="list a model's layer names and output shapes")
    layers.add_argument("model", nargs="?", default="efficientnet-lite0", help="model (default efficientnet-lite0)")
    layers.add_argument("--weights", help="weights file (resnet18-places365, module:factory)")
    layers.add_argument("--hf-model", metavar="PATH",
                        help="list a text model's layers instead: a local Hugging Face folder, or minilm")  # fmt: skip
    layers.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.hf_model is not None:
        return _text_layers(args.hf_model)
    from logiclens.vision.models import list_layers, load_model

    model = load_model(args.model, weights=args.weights)
    print(f"{'layer':<40} output shape (one {model.input_size[0]}x{model.input_size[1]} image)")
    for name, shape in list_layers(model):
        marker = "  (default)" if name in model.default_layers else ""
        print(f"{name or '(model)':<40} {'-' if shape is None else tuple(shape)}{marker}")
    return 0


def _text_layers(name: str) -> int:
    from logiclens.text.transformer import list_text_layers, load_transformer

    model, tokenizer = load_transformer(name)
    print(f"{'layer':<48} output shape (one sentence: batch, tokens, units)")
    for layer, shape in list_text_layers(model, tokenizer):
        print(f"{layer or '(model)':<48} {'-' if shape is None else shape}")
    return 0
