"""Probing datasets: annotated inputs that turn into concept sets."""

from logiclens.probes.base import ProbeBatch, ProbeDataset, stack_labels

__all__ = ["ProbeBatch", "ProbeDataset", "stack_labels"]
