"""Proficio's web tier and command line: the only package that wires the others together.

Nothing imports ``web``. The command line lives in `web.cli` (console script ``proficio``);
each sub-command is a module of `web.commands` with a ``register(subparsers)`` function.
"""
