"""The ``laom`` command line.

Each subpackage owns its commands in its own ``cli.py`` (``register(subparsers)``), so a
command lives next to the code it drives. Heavy imports (torch, dm_control) happen
inside the command functions, which keeps ``laom --help`` instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from laom import __version__
from laom.errors import LaomError

# Commands that train networks: they get glibc's malloc settings at process start.
TRAINING_COMMANDS = {"train", "pipeline", "sweep", "demo", "evaluate"}

# Modules that contribute commands, in the order they appear in --help.
COMMAND_MODULES = (
    "laom.envs.cli",
    "laom.experts.cli",
    "laom.data.cli",
    "laom.training.cli",
    "laom.evaluation.cli",
    "laom.experiments.cli",
)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names it: a
    user should not have to read the source (or a run's config.yaml) to learn it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or not action.option_strings
            or default is None
            or default is False  # a store_true flag: off unless given
            or default == argparse.SUPPRESS
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def _use_formatter(parser: argparse.ArgumentParser) -> None:
    """Give every parser and subparser the defaults formatter (each module builds its own)."""
    if parser.formatter_class is argparse.HelpFormatter:
        parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _use_formatter(child)


class Parser(argparse.ArgumentParser):
    """argparse's own refusals (a missing flag, a value of the wrong type) end like every
    other bad input: one ``PROG: error:`` line and exit 2, without the usage block in
    front of it (``--help`` still shows the usage). Subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="laom",
        description="Latent action learning from video with distractors (LAPO, LAOM, LAOM+supervision).",
    )
    parser.add_argument("--version", action="version", version=f"laom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a subpackage without commands yet
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                continue
            raise
        module.register(sub)
    _use_formatter(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    # Commands driven by dataclass configs take the remaining ``--field value`` pairs.
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in TRAINING_COMMANDS:
        # Before any work is done: the restart re-runs this very command line.
        from laom.training.cli import maybe_reexec_with_malloc_env

        maybe_reexec_with_malloc_env()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command != "train":
        print(f"laom: error: under torchrun only `laom train ...` runs (got `laom {args.command}`); "
              "run the other commands as one process", file=sys.stderr)  # fmt: skip
        return 2
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun rank 0 alone reports results
        sys.stdout = open(os.devnull, "w")
    try:
        result = func(args, extra) if getattr(args, "accepts_extra", False) else func(args)
    except LaomError as exc:
        print(f"laom: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("laom: interrupted; finished work is kept and the command can be resumed", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
