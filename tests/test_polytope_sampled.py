"""Sampled boundary density (issue 15, item 3): bisection converges to the exact traversal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from logiclens.polytope.hooked import record_codes
from logiclens.polytope.sampled import network_code_function, sampled_crossings
from logiclens.polytope.torch_adapter import from_torch
from logiclens.polytope.traversal import traverse_segment


def _network():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 3))
    return model, from_torch(model, (5,))


def test_sampled_count_converges_to_the_exact_count() -> None:
    """Tolerance: with 1e-7 resolution the count equals the exact one on at least 9 of 10 paths and is
    never off by more than 2 % (a bit flipping twice within one refined interval is invisible)."""
    _, network = _network()
    rng = np.random.default_rng(0)
    hidden = [name for name in network.names if name != "output"]
    equal = 0
    for _ in range(10):
        a, b = rng.normal(size=(2, 5)) * 3
        exact = int(sum(traverse_segment(network, a, b, decision=False).counts()[n] for n in hidden))
        coarse = sampled_crossings(network_code_function(network, hidden), a, b, n_samples=4, resolution=0.2)
        fine = sampled_crossings(network_code_function(network, hidden), a, b, n_samples=64, resolution=1e-7)
        assert coarse.count <= fine.count <= exact
        assert abs(fine.count - exact) <= max(1, 0.02 * exact)
        assert fine.resolution <= 1e-7 and fine.missed_estimate >= 0
        equal += fine.count == exact
    assert equal >= 9


def test_missed_crossings_are_estimated() -> None:
    """Coarse settings miss crossings; over 30 paths the estimate is within a factor 2 of what was missed."""
    _, network = _network()
    rng = np.random.default_rng(1)
    code = network_code_function(network, ["1", "3"])
    estimated = missed = 0
    for _ in range(30):
        a, b = rng.normal(size=(2, 5)) * 3
        exact = sum(traverse_segment(network, a, b, decision=False).counts()[n] for n in ["1", "3"])
        found = sampled_crossings(code, a, b, n_samples=8, resolution=0.1)
        assert found.count <= exact and found.count_at_half <= found.count
        estimated += found.missed_estimate
        missed += exact - found.count
    assert missed > 0 and missed / 2 <= estimated <= 2 * missed
    with pytest.raises(ValueError, match="n_samples"):
        sampled_crossings(code, np.zeros(5), np.ones(5), n_samples=1)


class ResidualGELU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(h + self.mlp(h))


def test_a_residual_model_gets_sampled_density() -> None:
    torch.manual_seed(1)
    model = ResidualGELU()

    def code(points: np.ndarray) -> np.ndarray:
        return record_codes(model, "mlp.0", [torch.as_tensor(points, dtype=torch.float32)]).codes.unpack()

    found = sampled_crossings(code, np.full(4, -3.0), np.full(4, 3.0), n_samples=32, resolution=1e-5)
    assert found.count > 0 and found.density > 0 and found.resolution <= 1e-5
    # the first hidden layer is affine in t along a line: each of its 32 sign bits changes at most once
    assert found.count <= 32 and (found.changes >= 1).all()
