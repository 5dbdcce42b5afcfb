"""The polytope lens: spline codes, regions, boundary density, and their compositional explanations.

Implements the analyses of "Interpreting Neural Networks through the Polytope Lens" (Black
et al., 2022) for piecewise-linear networks, and connects them to compositional
explanations: every unit family (polytope regions, activation clusters, neurons, directions)
becomes a mask over the probing set and goes through the same formula search, whose best IoU
is a measured monosemanticity score. See ``docs/polytope.md``.

The numpy parts (codes, distances, regions, traversal, density, complexity, scaling,
monosemanticity, code-cluster units, sampled density) never import torch; :func:`from_torch`,
:func:`record_codes`, :mod:`.recording` and :mod:`.hooked` do, lazily.
"""

from typing import Any

from logiclens.polytope.activations import Activation
from logiclens.polytope.analysis import NetworkAnalysis, NetworkAnalysisSettings, analyze_network
from logiclens.polytope.baselines import activation_clusters, direction_units, neuron_units, random_subsets
from logiclens.polytope.codes import PolytopeCodes, hard_code, pack_bits, soft_code, unpack_bits
from logiclens.polytope.complexity import LocalComplexity, boundary_distances
from logiclens.polytope.density import BoundaryDensity, window_ratio
from logiclens.polytope.distances import (
    code_distances,
    hamming_distances,
    jaccard_distances,
    layer_hamming_distances,
    soft_l1_distances,
)
from logiclens.polytope.facets import RegionFacets, consensus_bits
from logiclens.polytope.monosemanticity import MonosemanticityScorer, label_purity
from logiclens.polytope.network import DenseAffine, Layer, PiecewiseLinearNetwork
from logiclens.polytope.paths import lerp_path, make_path, pick_pairs, slerp_path
from logiclens.polytope.planar import PlanarRegion, planar_regions
from logiclens.polytope.position_units import (
    RegionUnitSettings,
    cluster_position_codes,
    position_families,
    size_matched_comparison,
)
from logiclens.polytope.regions import CodeClusters, ExactPolytopes, KMedoids
from logiclens.polytope.sampled import SampledCrossings, sampled_crossings
from logiclens.polytope.scaling import ScalingExperiment
from logiclens.polytope.traversal import Traversal, sampled_code_changes, traverse_path, traverse_segment
from logiclens.polytope.units import UnitFamily


def from_torch(*args: Any, **kwargs: Any) -> PiecewiseLinearNetwork:
    """Convert an ``nn.Sequential``; see :func:`logiclens.polytope.torch_adapter.from_torch` (imports torch)."""
    from logiclens.polytope.torch_adapter import from_torch as convert

    return convert(*args, **kwargs)


def record_codes(*args: Any, **kwargs: Any) -> Any:
    """Codes of any ``nn.Module`` through hooks; see :func:`logiclens.polytope.hooked.record_codes` (imports torch)."""
    from logiclens.polytope.hooked import record_codes as record

    return record(*args, **kwargs)


__all__ = [
    "Activation",
    "BoundaryDensity",
    "CodeClusters",
    "DenseAffine",
    "ExactPolytopes",
    "KMedoids",
    "Layer",
    "LocalComplexity",
    "MonosemanticityScorer",
    "NetworkAnalysis",
    "NetworkAnalysisSettings",
    "PiecewiseLinearNetwork",
    "PlanarRegion",
    "PolytopeCodes",
    "RegionFacets",
    "RegionUnitSettings",
    "SampledCrossings",
    "ScalingExperiment",
    "Traversal",
    "UnitFamily",
    "activation_clusters",
    "analyze_network",
    "boundary_distances",
    "cluster_position_codes",
    "code_distances",
    "consensus_bits",
    "direction_units",
    "from_torch",
    "hamming_distances",
    "hard_code",
    "jaccard_distances",
    "label_purity",
    "layer_hamming_distances",
    "lerp_path",
    "make_path",
    "neuron_units",
    "pack_bits",
    "pick_pairs",
    "planar_regions",
    "position_families",
    "random_subsets",
    "record_codes",
    "sampled_code_changes",
    "sampled_crossings",
    "size_matched_comparison",
    "slerp_path",
    "soft_code",
    "soft_l1_distances",
    "traverse_path",
    "traverse_segment",
    "unpack_bits",
    "window_ratio",
]
