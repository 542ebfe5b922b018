"""A share of scripts/bad_inputs.py's corpus, run as a user runs laom (one process per
command line): each bad input is refused with exit 2 and one ``laom: error:`` line naming
what is wrong, with no traceback and nothing written. The whole corpus:
``nice -n 19 .venv/bin/python scripts/bad_inputs.py``."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bad_inputs.py"


def load_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bad_inputs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bad_inputs", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


corpus = load_corpus()
CASES = {case.id: case for case in corpus.cases()}


def test_the_ci_subset_is_in_the_corpus_and_trains_nothing() -> None:
    assert len(CASES) >= 100
    for name in corpus.CI_SUBSET:
        assert name in CASES and not CASES[name].ok and not CASES[name].trains, name


@pytest.fixture(scope="module")
def inputs() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="laom-bad-inputs-"))
    corpus.build_inputs(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.parametrize("name", corpus.CI_SUBSET)
def test_a_bad_input_is_refused_as_a_user_sees_it(name: str, inputs: Path) -> None:
    result = corpus.run_case(CASES[name], inputs)
    assert not result.problems, f"{name}: {'; '.join(result.problems)}\n{result.stderr[-2000:]}"
