"""Where code lives (issue #14, one place per concept): argparse only in command modules.

lint-imports checks the same rule (pyproject.toml) from its import graph; this test reads
the source itself, so it also runs where import-linter is not installed and sees an
import however it is written (``from argparse import ...``, inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import laom

PACKAGE = Path(laom.__file__).parent

# Modules that may import argparse although they are not named cli.py.
ARGPARSE_ALLOWED = {
    # A standalone stress test run as `python -m laom.data.killtest`, with its own
    # __main__ and parser; no `laom` command reaches it, so it has no cli.py to move to.
    "data/killtest.py",
}


def imports_argparse(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "argparse":
            return True
    return False


def test_argparse_only_in_cli_modules() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    offenders = [
        p.relative_to(PACKAGE).as_posix()
        for p in modules
        if p.name != "cli.py" and p.relative_to(PACKAGE).as_posix() not in ARGPARSE_ALLOWED and imports_argparse(p)
    ]
    assert offenders == [], f"argparse outside the command modules (move the parser and Namespace to a cli.py): {offenders}"
    # The check sees what it looks for: the command modules and the exemptions do import it.
    assert imports_argparse(PACKAGE / "cli.py") and imports_argparse(PACKAGE / "experiments" / "cli.py")
    for allowed in ARGPARSE_ALLOWED:
        assert imports_argparse(PACKAGE / allowed), f"{allowed} no longer imports argparse: drop its exemption"


def test_the_argparse_check_sees_every_spelling(tmp_path: Path) -> None:
    for source, expected in (
        ("import argparse\n", True),
        ("import os, argparse as ap\n", True),
        ("from argparse import Namespace\n", True),
        ("def f():\n    import argparse\n", True),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from argparse import Namespace\n", True),
        ("import argparsex\nfrom . import argparse\n", False),
    ):
        path = tmp_path / "module.py"
        path.write_text(source)
        assert imports_argparse(path) is expected, source
