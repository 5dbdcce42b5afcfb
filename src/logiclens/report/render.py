"""Render the report's pages with jinja2 (autoescaping on) and copy its static assets.

Every string that comes from a run (concept names, formulas, categories, layer names) is
escaped by jinja2; nothing is marked safe. Data for the page's script is embedded with
jinja2's ``tojson`` filter, which escapes ``<``, ``>``, ``&`` and ``'`` as ``\\u`` sequences,
so that no ``</script>`` or ``<!--`` can end or alter the script element.
"""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["STATIC_FILES", "copy_static", "environment", "formula_tokens", "render_page"]

#: the files of ``static/`` that every report carries
STATIC_FILES = ("report.css", "report.js")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[()]|\s+|[^\s()"]+')
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEIGHBORS"})


def formula_tokens(text: str) -> list[tuple[str, str]]:
    """A formula's text cut into (kind, text) pieces for highlighting.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of (str, str)
        Kinds ``op`` (AND, OR, NOT, NEIGHBORS), ``paren``, ``space`` and ``name``; the texts
        join back to ``text`` exactly.
    """
    pieces = []
    for match in _TOKEN.finditer(text):
        piece = match.group(0)
        if piece in _OPERATORS:
            kind = "op"
        elif piece in "()":
            kind = "paren"
        elif piece.isspace():
            kind = "space"
        else:
            kind = "name"
        pieces.append((kind, piece))
    return pieces


def _number(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` decimals, ``—`` for missing values."""
    if value is None or value != value:  # None or NaN
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def _percent(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _frame_position(example: dict[str, Any]) -> str:
    """CSS ``object-position`` offset that shows an example's frame of its overlay strip."""
    frames, frame = int(example.get("overlay_frames", 1)), int(example.get("overlay_frame", 0))
    return "0%" if frames <= 1 else f"{100.0 * frame / (frames - 1):.4f}%"


def environment() -> Any:
    """The jinja2 environment of the report templates (autoescape on, strict undefined)."""
    try:
        import jinja2
    except ImportError as error:
        raise ImportError("the HTML report needs jinja2 (pip install jinja2)") from error

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("logiclens.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = _number
    env.filters["percent"] = _percent
    env.filters["formula_tokens"] = formula_tokens
    env.filters["frame_position"] = _frame_position
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False, "separators": (",", ":")}
    return env


def render_page(template: str, path: Path, **context: Any) -> None:
    """Render ``template`` with ``context`` into ``path`` (UTF-8)."""
    page = environment().get_template(template).render(**context)
    path.write_text(page, encoding="utf-8")


def copy_static(folder: Path) -> None:
    """Copy the stylesheet and the script into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    source = resources.files("logiclens.report") / "static"
    for name in STATIC_FILES:
        with resources.as_file(source / name) as path:
            shutil.copyfile(path, folder / name)
