"""Command line: ``python -m engine <command> [flags]``.

One subcommand per seed script, with the seed's snake_case flags. Each
command lives in its own module under :mod:`engine.commands` and exposes
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
adding a command means adding a module and a line to :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: Command modules, in the order ``--help`` lists them.
COMMANDS = (
    "engine.commands.extract",
    "engine.commands.synth",
    "engine.commands.embed",
    "engine.commands.openl3_weights",
    "engine.commands.contact_map",
    "engine.commands.query",
    "engine.commands.key",
    "engine.commands.dj_export",
    "engine.commands.train_tags",
    "engine.commands.train_contact",
    "engine.commands.classify",
    "engine.commands.compare_label_sources",
    "engine.commands.train_ranker",
    "engine.commands.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="LoopLab: find bars, rank and export DJ-ready loops, map rhythmic similarity.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMANDS:
        mod = importlib.import_module(modname)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` and run the command; returns the exit status."""
    from .errors import LoopLabError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LoopLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
