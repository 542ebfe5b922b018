"""The README's headline: the study's table and verdicts, rendered from a report's
``summary.json`` into a marked block of a Markdown file (``laom report --readme``).

Why: a number in the README must be one that was measured, and the study's numbers change
with every session that adds runs. Writing them by hand lets the README drift from the
records; rendering them from the file the report wrote keeps the two equal, and a test
(tests/test_headline.py) checks the README's block against docs/results/summary.json.

The block sits between two marker lines; everything outside it is left as it is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from laom import methods as registry
from laom.errors import LaomError, require
from laom.experiments.normalizers import NORMALISER_MIN_SHARE, normaliser_works
from laom.experiments.paper import label, split_variant

START = "<!-- headline:start -->"
END = "<!-- headline:end -->"


def check_readme(path: str | Path) -> Path:
    """The Markdown file exists and holds one marked block (checked before a report's
    work starts, so a wrong --readme costs nothing)."""
    path = Path(path)
    require(path.is_file(), f"--readme {path}: not a file (expected a Markdown file with a {START} ... {END} block)")
    lines = [line.strip() for line in path.read_text().splitlines()]
    require(
        lines.count(START) == 1 and lines.count(END) == 1 and lines.index(START) < lines.index(END),
        f"--readme {path}: expected one {START} line and one {END} line after it (the block the headline replaces)",
    )
    return path


def _split(text: str) -> tuple[str, str, str]:
    """(before the start line, the block, from the end line on): the marker lines are
    lines of their own, so a marker quoted in the prose is not taken for one."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == START)
    end = next(i for i, line in enumerate(lines) if line.strip() == END)
    return "".join(lines[: start + 1]), "".join(lines[start + 1 : end]), "".join(lines[end:])


def write_readme(path: str | Path, summary_file: str | Path) -> None:
    """Replace the marked block of ``path`` with the headline of ``summary_file``."""
    path = check_readme(path)
    summary_file = Path(summary_file)
    summary = _read_json(summary_file)
    source = Path(os.path.relpath(summary_file.resolve(), path.resolve().parent)).as_posix()
    head, _, tail = _split(path.read_text())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(head + render(summary, source) + "\n" + tail)
    tmp.replace(path)


def readme_block(path: str | Path) -> str:
    """What stands between the markers of ``path`` (the rendered headline)."""
    return _split(check_readme(path).read_text())[1].removesuffix("\n")


def render(summary: dict[str, Any], source: str) -> str:
    """Per task and distractor setting: one line on the normaliser and the expert, a table
    of return (normalised return) per method and labelled budget with each LAM's probe,
    and the findings' verdicts. ``source`` names the summary file in the text."""
    rows = [r for r in summary.get("rows") or [] if isinstance(r, dict)]
    require(rows, f"{source}: no runs in 'rows' (expected a summary.json written by laom report)")
    lines = [f"*Rendered by `laom report --readme` from [{source}]({source}); edit the report, not this block.*", ""]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row.get("task")), str(row.get("distractors") or "unknown")), []).append(row)
    for (task, setting), group in sorted(groups.items()):
        lines += _group(task, setting, group)
    lines += _compute(summary.get("compute") or {})
    verdicts = _verdicts(summary.get("findings") or {})
    if verdicts:
        lines += ["Findings (the paper's claims; `findings` in the summary):", "", *verdicts, ""]
    return "\n".join(lines)


def _compute(info: dict[str, Any]) -> list[str]:
    """One line on what the runs cost, in the unit the study's budget is set in."""
    total = info.get("total") or {}
    if not _finite(total.get("cpu_hours")) or not total["cpu_hours"]:
        return []
    release = total.get("release_cpu_hours")
    line = f"Compute: {total['cpu_hours']:.1f} CPU-hours for the {info.get('runs')} finished runs"
    if _finite(release):
        line += f"; the release, which retrains every stage for every run, would take {release:.1f}"
    return [line + " (the report's Compute section says what is counted).", ""]


def _group(task: str, setting: str, rows: list[dict[str, Any]]) -> list[str]:
    # Seeds of the returns; the LAM probes may have more (probe-only seeds: --until lam).
    seeds = sorted({int(r["seed"]) for r in rows if r.get("seed") is not None and _finite(r.get("return"))})
    seeds = seeds or sorted({int(r["seed"]) for r in rows if r.get("seed") is not None})
    probe_seeds = sorted({int(r["seed"]) for r in rows if r.get("seed") is not None and _finite(r.get("probe_rel"))})
    full = [r for r in rows if split_variant(str(r.get("method")))[0] == registry.NORMALIZER]
    budgeted = [r for r in rows if r not in full]
    probed_at = sorted({int(r["labeled"]) for r in budgeted if r.get("labeled") is not None})
    # A column per budget some run has a return at (a probe-only run's budget is a label only).
    budgets = sorted({int(r["labeled"]) for r in budgeted if r.get("labeled") is not None and _finite(r.get("return"))})
    episodes = sorted({int(r["episodes"]) for r in rows if r.get("episodes")})
    spread = "std over the episodes" if len(seeds) == 1 else f"std over {len(seeds)} seeds"
    head = [f"**{task}, {setting}**, seed{'s' if len(seeds) > 1 else ''} {_seed_list(seeds)}"
            f"{f', {episodes[0]} evaluation episodes' if len(episodes) == 1 else ''}"
            f"{f' (probes: seeds {_seed_list(probe_seeds)})' if set(probe_seeds) - set(seeds) else ''}."]  # fmt: skip
    bc_full = [r["return"] for r in full if _finite(r.get("return"))]
    expert = [r["expert_return"] for r in rows if _finite(r.get("expert_return"))]
    if bc_full:
        share = f", {_mean(bc_full) / _mean(expert):.0%} of the expert's {_mean(expert):.1f}" if expert else ""
        if expert and not normaliser_works(_mean(bc_full), _mean(expert)):
            share += f", below {NORMALISER_MIN_SHARE:.0%}: no working normaliser, so the quotients below say little"
        head.append(f"Normaliser: BC on every action (BC-full) {_band(full, 'return', 'return_std', 1)}{share}.")
    elif expert:
        head.append(f"The expert's return: {_mean(expert):.1f}; no BC-full run, so no normalised return.")
    head.append(f"Cells: return ± {spread} (normalised return); probe: the LAM's linear probe of the true action, "
                "MSE / chance on held-out videos (online probe in brackets; ± the std over seeds where 2+).")  # fmt: skip
    table = ["| " + " | ".join(["method", "probe", *map(str, budgets)]) + " |", "|---" * (len(budgets) + 2) + "|"]
    for method in _ordered({str(r["method"]) for r in budgeted}):
        mine = [r for r in budgeted if r["method"] == method]
        cells = []
        for budget in budgets:
            cell = [r for r in mine if r.get("labeled") == budget and _finite(r.get("return"))]
            norm = [r["normalized_return"] for r in cell if _finite(r.get("normalized_return"))]
            text = _band(cell, "return", "return_std", 1) if cell else "–"
            text += f" ({_mean(norm):.2f})" if norm and len(norm) == len(cell) else ""
            if cell and len(seeds) > 1 and len(cell) != len(seeds):  # a cell of fewer seeds than the rest
                text += f" [{len(cell)} seed{'s' if len(cell) > 1 else ''}: ± {'over them' if len(cell) > 1 else 'episodes'}]"
            cells.append(text)
        table.append("| " + " | ".join([label(method), _probe(mine, probed_at), *cells]) + " |")
    return [" ".join(head), "", *table, ""]


def _probe(rows: list[dict[str, Any]], budgets: list[int]) -> str:
    """The mean over seeds of the LAM's probes; per budget where each budget trains its
    own LAM (the supervised methods), else one figure for the method (a seed whose LAM
    was trained again for a later budget counts once, as the mean of its runs' probes)."""
    probed = [r for r in rows if _finite(r.get("probe_rel"))]
    if not probed:
        return "–"
    if not registry.lam_reads_labels(split_variant(str(probed[0]["method"]))[0]):
        return _probe_text(probed)
    per_budget = {b: [r for r in probed if r.get("labeled") == b] for b in budgets}
    figures = {b: _probe_text(v) for b, v in per_budget.items() if v}
    if len(set(figures.values())) == 1:
        return next(iter(figures.values()))
    return "; ".join(f"{text} at {b}" for b, text in figures.items())


def _probe_text(rows: list[dict[str, Any]]) -> str:
    """Mean over seeds of each seed's mean over its distinct LAMs (its runs share one, or
    hold its retrainings): the reduction the findings and the probe table use."""

    def per_seed(key: str) -> list[float]:
        seeds: dict[Any, dict[Any, float]] = {}
        for i, r in enumerate(rows):
            if _finite(r.get(key)):  # a row naming no LAM (no LAM folder, an older summary) counts alone
                seeds.setdefault(r.get("seed"), {})[r.get("lam") or i] = r[key]
        return [_mean(v.values()) for v in seeds.values()]

    offline, online = per_seed("probe_rel"), per_seed("online_probe_rel")
    text = f"{_mean(offline):.3f}"
    if len(offline) > 1:
        text += f" ± {_std(offline):.3f}"
    return text + (f" ({_mean(online):.3f})" if online else "")


def _band(rows: list[dict[str, Any]], key: str, std_key: str, digits: int) -> str:
    """mean ± std: over the episodes for one seed (the run's own spread), over seeds for
    more (the population std, as the report's bands)."""
    found = [r for r in rows if _finite(r.get(key))]
    values = [float(r[key]) for r in found]
    if len(values) == 1:
        std = found[0].get(std_key)
        return f"{values[0]:.{digits}f}" + (f" ± {float(std):.{digits}f}" if _finite(std) else "")
    return f"{_mean(values):.{digits}f} ± {_std(values):.{digits}f}"


def _verdicts(findings: dict[str, Any]) -> list[str]:
    out = []
    for finding in findings.get("findings") or []:
        for result in finding.get("results") or []:
            ratios = [_ratio(c) for c in result.get("comparisons") or [] if _finite(c.get("ratio"))]
            out.append(f"{finding.get('id')}. {finding.get('claim')} ({result.get('task')}, "
                       f"{result.get('distractors')}): {result.get('text')}"
                       + (f"; {'; '.join(ratios)}" if ratios else ""))  # fmt: skip
    return out


def _ratio(comparison: dict[str, Any]) -> str:
    at = f" at {comparison['budget']}" if comparison.get("budget") else ""
    return (f"{comparison.get('top')} / {comparison.get('bottom')}{at} {comparison['ratio']:.2f} "
            f"(the rule: {comparison.get('threshold')})")  # fmt: skip


def _ordered(found: set[str]) -> list[str]:
    order = list(registry.METHODS)
    return sorted(found, key=lambda m: (order.index(split_variant(m)[0]) if split_variant(m)[0] in order else len(order), m))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mean(values: Iterable[float]) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values)


def _std(values: list[float]) -> float:
    """The population std, as the report's bands."""
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _seed_list(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LaomError(f"{path}: cannot read the report's summary ({exc})") from None
    require(isinstance(data, dict), f"{path}: expected a JSON object (a summary.json written by laom report)")
    return data
