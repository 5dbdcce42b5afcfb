"""The ``logiclens`` parser and :func:`main`: each command registers itself from its own module."""

from __future__ import annotations

import argparse
import errno
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
    from logiclens.core.parallel import WorkerLostError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (already printed, status 2)
        return int(done.code or 0)
    try:
        return int(args.handler(args))
    except (CommandError, ValueError, FileNotFoundError, ImportError) as error:
        # bad files (InputFileError is a ValueError), invalid option values, inconsistent inputs, missing packages
        print(f"logiclens: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # a full disk, a folder without write permission, ...
        where = f" ({error.filename})" if error.filename else ""
        advice = "; free some space and rerun: finished stages are kept" if error.errno == errno.ENOSPC else ""
        print(f"logiclens: error: {error.strerror or error}{where}{advice}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerLostError as error:  # finished stages and record shards are kept: a rerun resumes
        print(f"logiclens: error: {error}; rerun to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("logiclens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
