"""The command line's static command table equals what the command modules register, and the
commands a psychometrician runs on files start without the web stack."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

from web import commands
from web.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def _registered() -> dict[str, tuple[set[str], str | None]]:
    found: dict[str, tuple[set[str], str | None]] = {}
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        before = set(sub.choices)
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
        for name in set(sub.choices) - before:
            found[name] = ({info.name}, None)
        if not set(sub.choices) - before:  # adds to another command's parser (db export)
            owner = next(n for n, (mods, _) in found.items() if n in COMMANDS
                         and info.name in COMMANDS[n][0])
            found[owner][0].add(info.name)
    helps = {a.dest: a.help for a in sub._choices_actions}
    return {n: (mods, helps.get(n)) for n, (mods, _) in found.items()}


def test_the_table_names_every_command_its_modules_and_its_help():
    registered = _registered()
    assert set(COMMANDS) == set(registered)
    for name, (modules, text) in COMMANDS.items():
        assert set(modules) == registered[name][0], name
        assert text == registered[name][1], name


def test_every_command_parses_its_help_from_the_lazy_parser():
    for name in COMMANDS:
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert set(sub.choices) == set(COMMANDS), name


def _imported(*argv: str) -> set[str]:
    code = ("import sys, runpy\n"
            f"sys.argv = ['proficio', *{list(argv)!r}]\n"
            "try:\n    runpy.run_module('web.cli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=True)
    return set(done.stderr.split())


def test_help_and_file_commands_import_neither_flask_nor_sqlalchemy():
    for argv in (["--help"], ["calibrate", "--help"], ["fit", "--help"],
                 ["simulate", "--help"], ["drift", "--help"], ["link", "--help"]):
        loaded = _imported(*argv)
        assert "flask" not in loaded and "sqlalchemy" not in loaded, argv
    assert "numpy" not in _imported("--help")
