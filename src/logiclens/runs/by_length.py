"""``best_by_length_<layer>.csv``: the best value and its formula per unit and exact formula length.

Columns ``1 .. L`` hold the search's best metric value among the formulas of exactly that
many leaves (what the report and Figure 7's search curve read); ``formula_1 .. formula_L``
hold those formulas as text (what the held-out curve of ``logiclens analyze`` evaluates).
Runs written before the formula columns existed have only the values.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["by_length_csv", "read_formulas_by_length"]


def by_length_csv(best: pd.DataFrame, formulas: pd.DataFrame | None = None) -> str:
    """The file's text: ``unit``, the values per length, then (where given) ``formula_<l>`` per length."""
    frame = best.copy()
    if formulas is not None:
        if formulas.shape != best.shape:
            raise ValueError(f"formulas by length {formulas.shape} do not match values by length {best.shape}")
        for length in best.columns:
            frame[f"formula_{length}"] = formulas[length].to_numpy()
    return frame.to_csv()


def read_formulas_by_length(path: str | Path) -> pd.DataFrame | None:
    """The formulas per unit (rows, in file order) and length (int columns 1..L); None without formula columns.

    Missing formulas are None.
    """
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = {int(c.removeprefix("formula_")): c for c in frame.columns if c.startswith("formula_")}
    if not columns:
        return None
    table = pd.DataFrame({length: frame[columns[length]] for length in sorted(columns)}, dtype=object)
    return table.where(table != "", None)
