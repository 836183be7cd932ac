"""The ``proficio`` console script.

Sub-commands are discovered from the modules of `web.commands`: each module defines
``register(subparsers) -> None``, adding its parser(s) with ``set_defaults(handler=…)``; a handler
takes the parsed ``argparse.Namespace`` and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from item_bank.db import SchemaError
from web import commands
from web.config import UnsafeConfiguration
from web.observability import CurrentStderrHandler


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proficio",
        description="Proficio: IRT calibration, computerized adaptive testing and reporting.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def _configure_logging(verbose: bool) -> None:
    """Like `logging.basicConfig` (nothing happens when the root logger already has handlers,
    e.g. under pytest), with a handler that follows ``sys.stderr``."""
    root = logging.getLogger()
    if root.handlers:
        return
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler = CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except (CommandError, ValueError, FileNotFoundError, SchemaError, UnsafeConfiguration) as exc:
        print(f"proficio {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
