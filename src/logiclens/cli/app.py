"""The ``logiclens`` parser and :func:`main`: each command registers itself from its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["EXIT_USAGE", "build_parser", "main"]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every command registered."""
    from logiclens._version import __version__
    from logiclens.cli import analyze, demo, dissect, layers, polytope, report, search, text

    parser = argparse.ArgumentParser(prog="logiclens", description="Explain what the units of a neural network detect.")
    parser.add_argument("--version", action="version", version=f"logiclens {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (search, layers, dissect, demo, report, polytope, text, analyze):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from logiclens.cli.options import CommandError
    from logiclens.core.io import InputFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (InputFileError, CommandError, ValueError, FileNotFoundError, ImportError) as error:
        # bad files, invalid option values, inconsistent inputs, missing optional packages
        print(f"logiclens: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("logiclens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
