"""Codes of any nn.Module through hooks (issue 15, item 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from logiclens.hooks import LayerRecorder
from logiclens.polytope.codes import soft_code
from logiclens.polytope.hooked import find_nonlinearity, record_codes, token_positions
from logiclens.polytope.torch_adapter import from_torch


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU6(), nn.Linear(10, 3))


def test_hooked_codes_equal_the_sequential_codes() -> None:
    model = _mlp()
    x = torch.randn(200, 6) * 3
    network = from_torch(model, (6,))
    for layer, module in (("1", "0"), ("3", "2")):
        exact = network.codes(x.double().numpy(), [layer])
        from_hooks = record_codes(model, module, [x[:70], x[70:]])
        assert from_hooks.nonlinearity == layer
        assert from_hooks.codes.layer_bits == exact.layer_bits
        np.testing.assert_array_equal(from_hooks.codes.unpack(), exact.unpack())
        assert from_hooks.soft is None


def test_conv_codes_per_position_equal_the_sequential_codes() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
    model[1].running_mean.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(5, 2, 4, 4)
    codes = record_codes(model, "0", [x])  # conv -> batch norm -> ReLU
    assert codes.nonlinearity == "2" and codes.grid == (4, 4) and len(codes.codes) == 5 * 16
    exact = from_torch(model, (2, 4, 4)).codes(x.double().numpy(), ["2"]).unpack()  # (5, C*H*W), channel-major
    per_position = exact.reshape(5, 4, 4, 4).transpose(0, 2, 3, 1).reshape(-1, 4)
    np.testing.assert_array_equal(codes.codes.unpack(), per_position)
    np.testing.assert_array_equal(codes.positions[17], [1, 0, 1])


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 8))
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(h + self.block(h))


def test_a_residual_model_gets_sign_and_soft_codes() -> None:
    torch.manual_seed(2)
    model = Residual()
    x = torch.randn(30, 4)
    codes, pre = record_codes(model, "block.0", [x], keep_preactivations=True)
    assert codes.nonlinearity == "block.1" and codes.activation.name == "gelu"
    np.testing.assert_array_equal(codes.codes.unpack(), pre > 0)
    np.testing.assert_allclose(codes.soft, soft_code(pre, "gelu"), atol=1e-3)


def test_a_layer_without_a_nonlinearity_is_a_one_line_error() -> None:
    model = Residual()
    with pytest.raises(ValueError, match="not followed by a nonlinearity") as error:
        find_nonlinearity(model, "inp", torch.randn(2, 4))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="no layer"):
        find_nonlinearity(model, "nope", torch.randn(2, 4))


def test_token_codes_are_evenly_spaced_after_the_skipped_ones() -> None:
    chosen = token_positions([10, 4, 2], n_tokens=3, skip_tokens=2)
    assert chosen.tolist() == [[0, 2], [0, 6], [0, 9], [1, 2], [1, 3]]
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)  # F.relu: no module to hook
    model = nn.Sequential(layer).train()  # the training path runs linear1 as a module
    x = torch.randn(3, 10, 8)
    with pytest.raises(ValueError, match="not followed by a nonlinearity"):
        record_codes(model, "0.linear1", [x])
    codes = record_codes(model, "0.linear1", [x], lengths=[10, 4, 2], n_tokens=3, skip_tokens=2, activation="relu")
    assert codes.grid == (10,) and codes.positions[:, 1:].tolist() == [[2], [6], [9], [2], [3]]
    with LayerRecorder(model, "0.linear1") as recorder:
        z = recorder.run(x)["0.linear1"].numpy()
    np.testing.assert_array_equal(codes.codes.unpack()[1], z[0, 6] > 0)


def test_input_capture_and_keyword_batches() -> None:
    class Keyword(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 5)
            self.act = nn.SiLU()

        def forward(self, input_ids: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return self.act(self.lin(input_ids) * scale)

    model = Keyword()
    x = torch.randn(4, 3)
    codes = record_codes(model, "lin", [{"input_ids": x, "scale": -1.0}])
    assert codes.nonlinearity == "act" and codes.activation.name == "silu"
    np.testing.assert_array_equal(codes.codes.unpack(), (model.lin(x) * -1.0).detach().numpy() > 0)
    with pytest.raises(ValueError, match="capture"):
        LayerRecorder(model, "act", capture="both")


def test_outputs_and_nonlinearity_inputs_are_recorded_in_one_pass() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 1), nn.ReLU()
    )
    model[1].running_mean.uniform_(-0.2, 0.2)
    x = torch.randn(3, 2, 5, 5)
    calls = []
    model[4].register_forward_hook(lambda module, inputs, output: calls.append(1))
    with LayerRecorder(model, ["0", "2"], inputs=["2", "4"]) as recorder:
        outputs = recorder.run(x)
    assert not calls and recorder.output is None  # the pass stopped at the last ReLU's input
    with LayerRecorder(model, ["0", "2"]) as alone:
        expected = alone.run(x)
    with LayerRecorder(model, ["2", "4"], capture="input") as alone:
        expected_inputs = alone.run(x)
    for layer in ("0", "2"):
        torch.testing.assert_close(outputs[layer], expected[layer], rtol=0, atol=0)
    for layer in ("2", "4"):
        torch.testing.assert_close(recorder.inputs[layer], expected_inputs[layer], rtol=0, atol=0)
    # the in-place ReLU: its input (the code's pre-activation) was kept before the ReLU overwrote it
    assert (recorder.inputs["2"] < 0).any() and (outputs["2"] >= 0).all()
    with pytest.raises(ValueError, match="capture='output'"):
        LayerRecorder(model, ["0"], capture="input", inputs=["2"])
    with pytest.raises(ValueError, match="model has no layer 'nope'"):
        LayerRecorder(model, ["0"], inputs=["nope"])
