"""The paper's questions 2 and 3 (Mu & Andreas, sections 5 and 6), for vision and text runs.

* :mod:`~logiclens.analysis.accuracy`: accuracy when a unit is active, and its correlation
  with IoU at every maximum formula length (Figure 7);
* :mod:`~logiclens.analysis.contributions`: each unit's contribution to each class (Figures 6
  and 8), as effective weights through a folded linear head, or gradient times activation;
* :mod:`~logiclens.analysis.copy_paste`: copy-paste adversarial images made from explanations;
* :mod:`~logiclens.analysis.insertion`: word insertions for text models;
* :func:`analyze`: all of it on a run directory, into ``RUN/analysis/``.
"""

from __future__ import annotations

from logiclens.analysis.copy_paste import CopyPasteSettings
from logiclens.analysis.errors import AnalysisError
from logiclens.analysis.pipeline import PARTS, AnalysisResult, AnalysisSettings, analyze

__all__ = ["PARTS", "AnalysisError", "AnalysisResult", "AnalysisSettings", "CopyPasteSettings", "analyze"]
