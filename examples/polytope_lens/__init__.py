"""The polytope-lens study: digits MLP and CNN, EfficientNet-Lite0 on the shapes probe.

:func:`polytope_lens.run.run_study` runs everything and writes tables, figures and
``summary.md``; ``examples/polytope_study.py`` calls it.
"""
