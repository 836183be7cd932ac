"""The ``proficio`` console script.

Sub-commands live in the modules of `web.commands`: each module defines
``register(subparsers) -> None``, adding its parser(s) with ``set_defaults(handler=…)``; a handler
takes the parsed ``argparse.Namespace`` and returns the exit status.

Start-up cost: `COMMANDS` names every top-level command with the module(s) that register it and
its one-line help, so ``proficio --help`` imports no command module and ``proficio calibrate``
imports only `web.commands.calibrate` (no SQLAlchemy, no Flask). A command missing from the
table still works (every module is then imported); tests/web/test_cli_registry.py keeps the
table equal to what the modules register.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from web import commands

#: Top-level command → (modules of `web.commands` that register it, in order; its help).
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "org": (("accounts",), "organisations"),
    "staff": (("accounts",), "staff accounts"),
    "assessment": (("accounts",), "assessments"),
    "audit": (("accounts",), "the audit log of staff actions"),
    "bank": (("bank",), "item bank import/export"),
    "calibrate": (("calibrate",), "fit item parameters from responses (MML-EM)"),
    "candidates": (("candidates",), "candidates' data: export, erasure, retention"),
    "config": (("config",), "inspect the configuration (environment variables)"),
    "db": (("db", "dbdump"), "database migrations"),
    "demo": (("demo",), "open (or build) the demo database and serve it"),
    "dif": (("dif",), "DIF: Mantel-Haenszel (ETS A/B/C) and logistic regression"),
    "drift": (("drift",), "item parameter drift between two calibrations"),
    "fit": (("fit",), "item fit (S-X2), infit/outfit, person fit, reliability"),
    "invitations": (("invitations",), "candidate invitations"),
    "link": (("link",), "link two calibrations through common items"),
    "monitor": (("monitor",), "compromised-item monitor: flag items whose answers became "
                              "easier or much faster"),
    "recalibrate": (("recalibrate",), "recalibrate against the current parameters, with fit, "
                                      "drift, item analysis and a recommendation"),
    "responses": (("responses",), "response log"),
    "serve": (("serve",), "serve the web app with gunicorn"),
    "sessions": (("candidates",), "session replay (re-scoring check, proficio-replay/1)"),
    "worker": (("serve",), "run a background job worker (calibrations)"),
    "simulate": (("simulate",), "CAT simulation study (accuracy, length, exposure)"),
    "skill": (("bank",), "skills of a bank"),
    "webhooks": (("webhooks",), "signed webhooks to applicant-tracking systems"),
}


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit status 2."""


def _all_modules() -> list[str]:
    """Every command module, sorted (``db`` registers before ``dbdump`` adds to it)."""
    import pkgutil  # only when a command is missing from COMMANDS: not on every start-up

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. With ``command`` in `COMMANDS`, only that command's modules are
    imported and the others appear by name and help only; otherwise every module registers."""
    parser = argparse.ArgumentParser(
        prog="proficio",
        description="Proficio: IRT calibration, computerized adaptive testing and reporting.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command is None or command in COMMANDS:
        for module in () if command is None else COMMANDS[command][0]:
            importlib.import_module(f"{commands.__name__}.{module}").register(sub)
        for name, (_, text) in COMMANDS.items():
            if name not in sub.choices:
                sub.add_parser(name, help=text)
        return parser
    for module in _all_modules():
        importlib.import_module(f"{commands.__name__}.{module}").register(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the command, if any."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def _configure_logging(verbose: bool) -> None:
    """Like `logging.basicConfig` (nothing happens when the root logger already has handlers,
    e.g. under pytest), with a handler that follows ``sys.stderr``."""
    root = logging.getLogger()
    if root.handlers:
        return
    from web.stderr_logging import CurrentStderrHandler

    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler = CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions shown as one line: ours, bad values and files, and the database/config
    errors of the modules this command loaded (a command that never imported them cannot
    raise them, so they are not imported here)."""
    errors: list[type[BaseException]] = [CommandError, ValueError, FileNotFoundError]
    for module, name in (("item_bank.db", "SchemaError"), ("web.config", "UnsafeConfiguration")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            errors.append(getattr(loaded, name))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
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
    except _user_errors() as exc:
        print(f"proficio {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
