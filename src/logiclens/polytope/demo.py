"""A 2-D demonstration: the exact partition of a small ReLU network, a path and its crossings.

A 2-16-16-2 ReLU MLP is trained in a second on scikit-learn's two moons; its linear regions
inside the data's box are enumerated exactly (:func:`~logiclens.polytope.planar.planar_regions`)
and checked against the codes of a grid, and a straight path between two points of different
classes is traversed exactly (:func:`~logiclens.polytope.traversal.traverse_segment`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.planar import PlanarRegion, planar_regions
from logiclens.polytope.regions import ExactPolytopes
from logiclens.polytope.traversal import Traversal, sampled_code_changes, traverse_segment

__all__ = ["run_demo", "toy_network"]

BOX = (-1.5, 2.5, -1.0, 1.5)


def toy_network(seed: int = 0, steps: int = 600) -> tuple[PiecewiseLinearNetwork, np.ndarray, np.ndarray]:
    """A 2-16-16-2 ReLU MLP trained on two moons; returns the network, inputs and labels."""
    import torch
    from sklearn.datasets import make_moons
    from torch import nn

    from logiclens.polytope.torch_adapter import from_torch

    x, y = make_moons(400, noise=0.15, random_state=seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return from_torch(model.eval(), (2,)), x, y


def run_demo(out: str | Path | None = None, seed: int = 0, grid: int = 801) -> dict[str, Any]:
    """Enumerate, check and (with ``out``) draw the toy network's partition; returns the counts."""
    net, x, y = toy_network(seed)
    regions = planar_regions(net, BOX)
    g0 = np.linspace(BOX[0], BOX[1], grid)
    g1 = np.linspace(BOX[2], BOX[3], grid)
    points = np.stack(np.meshgrid(g0, g1), axis=-1).reshape(-1, 2)
    grid_regions = ExactPolytopes().fit(net.codes(points)).n_polytopes_
    a = x[np.flatnonzero(y == 0)[0]]
    b = x[np.flatnonzero(y == 1)[0]]
    path = traverse_segment(net, a, b)
    t = np.linspace(0, 1, 2001)
    sampled = int(sampled_code_changes(net, a + t[:, None] * (b - a)).sum())
    coarse = int(sampled_code_changes(net, a + np.linspace(0, 1, 21)[:, None] * (b - a)).sum())
    facts = {
        "regions_exact": len(regions),
        "regions_on_grid": grid_regions,
        "grid": f"{grid}x{grid}",
        "path_crossings_exact": len(path),
        "path_crossings_by_layer": path.counts(),
        "path_code_changes_2001_samples": sampled,
        "path_code_changes_21_samples": coarse,
        "path_decision_t": path.decision_t,
        "accuracy": float((net.predict(x) == y).mean()),
    }
    if out is not None:
        _draw(Path(out), net, regions, x, y, a, b, path)
    return facts


def _draw(
    out: Path,
    net: PiecewiseLinearNetwork,
    regions: list[PlanarRegion],
    x: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    path: Traversal,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(7, 4.6))
    colors = rng.uniform(0.55, 0.95, (len(regions), 3))
    ax.add_collection(PolyCollection([r.vertices for r in regions], facecolors=colors, edgecolors="white", lw=0.4))
    g0 = np.linspace(BOX[0], BOX[1], 400)
    g1 = np.linspace(BOX[2], BOX[3], 300)
    gx, gy = np.meshgrid(g0, g1)
    logits = net.forward(np.stack([gx.ravel(), gy.ravel()], axis=1))
    ax.contour(gx, gy, (logits[:, 1] - logits[:, 0]).reshape(gx.shape), levels=[0], colors="k", linewidths=1.5)
    ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "tab:red", "tab:blue"), s=4, alpha=0.6)
    ax.plot([a[0], b[0]], [a[1], b[1]], color="k", lw=1)
    crossing = a[None] + path.t[:, None] * (b - a)[None]
    ax.scatter(crossing[:, 0], crossing[:, 1], c=[f"C{int(layer) + 2}" for layer in path.layer], s=14, zorder=3)
    if np.isfinite(path.decision_t):
        p = a + path.decision_t * (b - a)
        ax.scatter([p[0]], [p[1]], marker="*", s=120, c="gold", edgecolors="k", zorder=4)
    ax.set_xlim(BOX[0], BOX[1])
    ax.set_ylim(BOX[2], BOX[3])
    ax.set_title(f"{len(regions)} linear regions (exact); path: {len(path)} crossings, star = decision change")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
