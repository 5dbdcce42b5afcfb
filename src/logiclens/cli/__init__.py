"""The ``logiclens`` command line: :func:`main`.

One module per command (each has ``register(commands)`` and ``run(args)``), shared options in
:mod:`.options`, the parser in :mod:`.app`. No library module imports this package.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from logiclens.cli.app import main as run

    return run(argv)
