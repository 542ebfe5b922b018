"""The README's headline is rendered from a report's summary.json (laom report --readme)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_experiments import one_line_error, synthetic_runs, write_runs

from laom.cli import main
from laom.experiments import headline

ROOT = Path(__file__).resolve().parents[1]


def row(method: str, labeled: int | None, seed: int, ret: float, **extra: float) -> dict:
    return {"task": "cheetah-run", "method": method, "labeled": labeled, "seed": seed, "distractors": "hard",
            "return": ret, "return_std": 3.0, "episodes": 25, "normalized_return": ret / 200.0,
            "expert_return": 400.0, **extra}  # fmt: skip


def cells(text: str, method: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {method} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_render_one_seed_then_seeds() -> None:
    """One seed: ± is the run's spread over its episodes. Two: mean ± the std over seeds.
    A method whose LAM depends on the budget gets a probe per budget."""
    rows = [row("bc-full", None, 0, 200.0), row("bc", 2, 0, 50.0),
            row("laom-labels", 2, 0, 60.0, probe_rel=0.7, online_probe_rel=0.6),
            row("laom-labels", 8, 0, 80.0, probe_rel=0.5, online_probe_rel=0.4)]  # fmt: skip
    text = headline.render({"rows": rows}, "x/summary.json")
    assert "BC-full) 200.0 ± 3.0, 50% of the expert's 400.0." in text and "std over the episodes" in text
    weak = headline.render({"rows": [row("bc-full", None, 0, 150.0), *rows[1:]]}, "x/summary.json")
    assert ("BC-full) 150.0 ± 3.0, 38% of the expert's 400.0, below 50%: no working normaliser, so the "
            "quotients below say little.") in weak
    assert cells(text, "BC") == ["BC", "–", "50.0 ± 3.0 (0.25)", "–"]
    assert cells(text, "LAOM+supervision") == ["LAOM+supervision", "0.700 (0.600) at 2; 0.500 (0.400) at 8",
                                               "60.0 ± 3.0 (0.30)", "80.0 ± 3.0 (0.40)"]  # fmt: skip
    rows += [row("bc-full", None, 1, 220.0), row("bc", 2, 1, 70.0)]
    text = headline.render({"rows": rows}, "x/summary.json")
    assert "seeds 0, 1" in text and "std over 2 seeds" in text and "BC-full) 210.0 ± 10.0" in text
    assert cells(text, "BC")[2] == "60.0 ± 10.0 (0.30)"
    assert cells(text, "LAOM+supervision")[2] == "60.0 ± 3.0 (0.30) [1 seed: ± episodes]"  # not the others' band
    with pytest.raises(Exception, match="no runs"):
        headline.render({"rows": []}, "x/summary.json")
    assert "Compute:" not in text  # a summary without CPU-hours (an older report's) has no such line
    # A method with one LAM per seed gets one probe figure, even where the seed's LAM was
    # trained again for a later budget (the mean over its runs), and seeds weigh alike.
    lapo = [row("lapo", 2, 0, 60.0, probe_rel=0.7), row("lapo", 8, 0, 60.0, probe_rel=0.7),
            row("lapo", 128, 0, 60.0, probe_rel=0.8), row("lapo", 2, 1, 60.0, probe_rel=0.5)]  # fmt: skip
    assert cells(headline.render({"rows": rows + lapo}, "x/summary.json"), "LAPO")[1] == "0.617 ± 0.117"
    # Rows naming their LAM (summary.json's "lam") count each LAM once: seed 0's two LAMs
    # weigh alike however many budgets used each, as in the findings and the probe table.
    for r, lam in zip(lapo, ["a", "a", "b", "c"], strict=True):
        r["lam"] = lam
    assert cells(headline.render({"rows": rows + lapo}, "x/summary.json"), "LAPO")[1] == "0.625 ± 0.125"
    # Probe-only seeds (--until lam: a probe, no return) join the probes, not the returns.
    only = [row("bc-full", None, 0, 200.0), row("lapo", 2, 0, 60.0, probe_rel=0.7)]
    only += [{**row("lapo", 2, s, 0.0, probe_rel=0.5), "return": None, "normalized_return": None} for s in (1, 2)]
    text = headline.render({"rows": only}, "x/summary.json")
    assert "seed 0, 25 evaluation episodes (probes: seeds 0, 1, 2)." in text and "std over the episodes" in text
    assert cells(text, "LAPO") == ["LAPO", "0.567 ± 0.094", "60.0 ± 3.0 (0.30)"]
    # Probe-only runs at a budget no run has a return at add no column of "–" cells.
    moved = [{**r, "labeled": 128} if r.get("return") is not None and r["labeled"] == 2 else r for r in only]
    text = headline.render({"rows": moved}, "x/summary.json")
    assert "| method | probe | 128 |" in text and cells(text, "LAPO") == ["LAPO", "0.567 ± 0.094", "60.0 ± 3.0 (0.30)"]
    compute = {"runs": 3, "total": {"cpu_hours": 14.37, "release_cpu_hours": 25.03}}
    text = headline.render({"rows": rows, "compute": compute}, "x/summary.json")
    assert "Compute: 14.4 CPU-hours for the 3 finished runs" in text and "would take 25.0" in text


def test_report_writes_the_readme_block(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--readme replaces only the marked block, with what the written summary.json holds;
    a file without the block fails in one line before the report is written."""
    sweep = write_runs(tmp_path / "sweep", synthetic_runs())
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore `{headline.START}`\n{headline.START}\nold numbers\n{headline.END}\nafter\n")
    out = tmp_path / "report"
    assert main(["report", str(sweep), "--out", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f"# Title\n\nbefore `{headline.START}`\n{headline.START}\n") and text.endswith(f"{headline.END}\nafter\n")
    assert "old numbers" not in text and "(report/summary.json)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert headline.readme_block(readme) == headline.render(summary, "report/summary.json")
    assert "**walker-run" in text and "| LAOM |" in text

    plain = tmp_path / "plain.md"
    plain.write_text("no block here\n")
    other = tmp_path / "other"
    one_line_error(["report", str(sweep), "--out", str(other), "--readme", str(plain)], capsys,
                   f"--readme {plain}: expected one {headline.START} line")  # fmt: skip
    assert not other.exists() and plain.read_text() == "no block here\n"


def test_readme_headline_is_the_study_summary() -> None:
    """The README's study numbers are those of docs/results/summary.json: regenerate both
    with `laom report docs/results/records/sweep-... --out docs/results --paper --readme README.md`."""
    summary = json.loads((ROOT / "docs" / "results" / "summary.json").read_text())
    assert headline.readme_block(ROOT / "README.md") == headline.render(summary, "docs/results/summary.json")
