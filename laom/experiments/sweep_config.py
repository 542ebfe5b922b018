"""A sweep's config (sweep.yaml's ``config``) and the checks that build it from the command.

Every value of ``laom sweep`` is read and checked against the files here, before the
first labelled subset is drawn, so a bad flag fails in a second rather than hours into
the sweep. What a config means for the runs is elsewhere: the grid in
:mod:`laom.experiments.plan`, the stage settings in :mod:`laom.experiments.overrides`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laom import methods as registry
from laom.errors import LaomError, require
from laom.experiments.normalizers import SWEEP_NORMALIZER, check_normalizer, sweep_normalizers
from laom.experiments.overrides import check_overrides, overrides_for

METHODS = registry.names()


@dataclass
class SweepConfig:
    """What determines a sweep's results (sweep.yaml). Speed-only settings (jobs,
    evaluation workers, progress) are left out, so a resume may change them."""

    tasks: list[str]
    methods: list[str]
    labeled: list[int]
    seeds: list[int]
    data: dict[str, str]  # task -> absolute path
    eval_data: dict[str, str] = field(default_factory=dict)  # task -> absolute path ("" = none)
    preset: str = "cpu"
    episodes: int = 25
    eval_seed: int = 0
    max_steps: int | None = None
    normalizer: str = "auto"  # auto | paper | none | a number | sweep:DIR
    chunk: int = 1000
    overrides: list[str] = field(default_factory=list)
    until: str = ""  # every run stops after this stage ("" = whole runs); a probe-only sweep: lam

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.until:  # sweeps made before the field keep their sweep.yaml
            del out["until"]
        return out


@dataclass
class SweepOptions:
    """A sweep command: its config plus how to run it."""

    config: SweepConfig
    out: str
    jobs: int = 1
    workers: int = 0
    num_envs: int = 4
    force: bool = False
    progress: bool = True
    rates: str = ""  # the rates file the end-of-sweep prediction reads ("" = laom.experiments.cost's default)
    records: str = ""  # a records folder: restored before, saved after each recorded run (laom.experiments.sweep_records)
    first: list[str] = field(default_factory=list)  # methods whose runs start first (laom.experiments.plan.put_first)


def parse_list(text: str, flag: str) -> list[str]:
    """``a,b,c`` (spaces around items are fine); an empty item (``2,,4``) may be a lost
    value, so it is refused rather than dropped."""
    items = [t.strip() for t in str(text).split(",")]
    require(any(items), f"{flag}: expected a comma-separated list")
    require(all(items), f"{flag} {text}: empty entry (expected a comma-separated list such as a,b)")
    require(len(set(items)) == len(items), f"{flag} {text}: duplicate entries")
    return items


def parse_ints(text: str, flag: str, minimum: int) -> list[int]:
    out = []
    for item in parse_list(text, flag):
        try:
            value = int(item)
        except ValueError:
            raise LaomError(f"{flag} {text}: {item!r} is not an integer") from None
        require(value >= minimum, f"{flag} {text}: {value} is below {minimum}")
        out.append(value)
    return sorted(out)


def parse_methods(text: str) -> list[str]:
    methods = parse_list(text, "--methods")
    unknown = [m for m in methods if m not in METHODS]
    require(not unknown, f"--methods: unknown method {', '.join(unknown)} (expected {', '.join(METHODS)})")
    return [m for m in METHODS if m in methods]


def split_first(entry: str) -> tuple[str | None, str, int | None, int | None]:
    """One ``--first`` entry, ``[TASK:]METHOD[/BUDGET][@SEED]``, as (task, method, budget,
    seed), None where the entry leaves a part open. Malformed numbers come back as -1 (a
    budget or seed no sweep has), so :func:`parse_first` names the entry."""
    task, colon, rest = entry.rpartition(":")
    rest, at, seed = rest.partition("@")
    method, slash, budget = rest.partition("/")

    def number(text: str, given: str) -> int | None:
        return (int(text) if text.isdigit() else -1) if given else None

    return (task if colon else None), method, number(budget, slash), number(seed, at)


def parse_first(
    text: str, methods: Sequence[str], labeled: Sequence[int] = (), *,
    tasks: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
) -> list[str]:  # fmt: skip
    """``--first``: runs that start before the others, entry by entry in the order given:
    a method of the sweep (``lapo``), one budget of it (``lapo/128``), one seed
    (``lapo@1``, ``lapo/128@1``), each optionally of one task (``walker-run:lapo@1``).
    Why: a session whose time is short spends it on the runs a finding needs (a method's
    largest budgets; one seed of every method before a second seed of any)."""
    first = parse_list(text, "--first")
    for entry in first:
        task, method, budget, seed = split_first(entry)
        rest, _, seed_text = entry.rpartition(":")[2].partition("@")
        budget_text = rest.partition("/")[2]
        require(method in methods, f"--first {entry}: method {method!r} not in --methods (expected one of {', '.join(methods)})")
        require(budget is None or budget in labeled,
                f"--first {entry}: budget {budget_text or '(none)'} not in --labeled (expected one of {', '.join(map(str, labeled))})")  # fmt: skip
        require(task is None or tasks is None or task in tasks,
                f"--first {entry}: task {task!r} not in --tasks (expected one of {', '.join(tasks or ())})")  # fmt: skip
        require(seed is None or seeds is None or seed in seeds,
                f"--first {entry}: seed {seed_text or '(none)'} not in --seeds (expected one of {', '.join(map(str, seeds or ()))})")  # fmt: skip
    return first


def expand(template: str, task: str, flag: str, tasks: Sequence[str]) -> str:
    """One file per task: ``{task}`` in the template is replaced by the task name."""
    if "{task}" not in template:
        require(len(tasks) == 1, f"{flag} {template}: with several tasks, use a template with {{task}} (e.g. data/{{task}}-train.hdf5)")
        return str(Path(template).resolve())
    return str(Path(template.replace("{task}", task)).resolve())


def count_chunks(path: str, chunk: int) -> tuple[str, int]:
    """(task of the file, how many labelled chunks it can give)."""
    from laom.data.format import DatasetReader
    from laom.data.labeled import chunks_of

    with DatasetReader(path) as reader:
        lengths = {i: reader.length(i) for i in reader.indices}
        return reader.task, len(chunks_of(lengths, chunk))


def make_config(
    tasks: str, methods: str, labeled: str, seeds: str, data: str, eval_data: str | None = None, *,
    preset: str = "cpu", episodes: int = 25, eval_seed: int = 0, max_steps: int | None = None,
    normalizer: str = "auto", chunk: int = 1000, overrides: Sequence[str] = (),
    log: Callable[[str], None] | None = None, until: str = "",
) -> SweepConfig:  # fmt: skip
    """Parse and check the command's values against the files, so a bad flag fails in
    a second rather than hours into the sweep."""
    task_list = parse_list(tasks, "--tasks")
    method_list = parse_methods(methods)
    budgeted = any(registry.get(m).reads("labeled") for m in method_list)  # bc-full has no budget
    budgets = parse_ints(labeled, "--labeled", 1) if budgeted else []
    require(bool(budgets) or not budgeted, "--labeled: expected at least one budget")
    seed_list = parse_ints(seeds, "--seeds", 0)
    require(episodes >= 0, f"--episodes {episodes}: expected >= 0")
    require(chunk >= 1, f"--chunk {chunk}: expected >= 1")
    require(max_steps is None or max_steps >= 1, f"--max-steps {max_steps}: expected >= 1")
    if until:
        from laom.training.pipeline import check_until

        for method in method_list:
            check_until(method, until, episodes)
    norm = check_normalizer(normalizer)
    if norm == "paper":
        from laom.experiments.paper import BC_FULL_RETURN

        missing = [t for t in task_list if t not in BC_FULL_RETURN]
        require(not missing, f"--normalizer paper: the paper has no BC-full return for {', '.join(missing)}")
    if norm.startswith(SWEEP_NORMALIZER):
        known = sweep_normalizers(norm)
        missing = [t for t in task_list if t not in known]
        require(not missing, f"--normalizer {norm.removeprefix(SWEEP_NORMALIZER)}: that sweep has no normaliser for "
                f"{', '.join(missing)} (sweep it with bc-full, or let its bc-full runs finish)")  # fmt: skip
    ignored = check_overrides(method_list, list(overrides))
    if ignored and log is not None:
        log(f"note: no stage of {', '.join(method_list)} has {', '.join(ignored)}; ignored")
    data_files = {t: expand(data, t, "--data", task_list) for t in task_list}
    eval_files = {t: expand(eval_data, t, "--eval-data", task_list) if eval_data else "" for t in task_list}
    for task in task_list:
        for flag, path in (("--data", data_files[task]), ("--eval-data", eval_files[task])):
            if not path:
                continue
            require(Path(path).is_file(), f"{flag} {path}: no such file")
            file_task, chunks = count_chunks(path, chunk)
            require(file_task == task, f"{flag} {path}: holds {file_task} data, not {task}")
            if flag == "--data" and budgets:
                require(
                    budgets[-1] <= chunks,
                    f"--labeled {budgets[-1]}: {path} has only {chunks} labelled chunk(s) of up to {chunk} steps",
                )
        check_inputs(task, data_files[task], eval_files[task], episodes)
    cfg = SweepConfig(
        tasks=task_list, methods=method_list, labeled=budgets, seeds=seed_list, data=data_files,
        eval_data=eval_files, preset=preset, episodes=episodes, eval_seed=eval_seed, max_steps=max_steps,
        normalizer=norm, chunk=chunk, overrides=list(overrides), until=until,
    )  # fmt: skip
    check_stage_configs(cfg)
    return cfg


def check_inputs(task: str, data: str, eval_data: str, episodes: int) -> None:
    """The task's files hold one layout (frames, action and state sizes) and, when runs
    are evaluated, the environments have the task: checked before the first run."""
    from laom.data.compat import check_compatible

    check_compatible({"--data": data, "--eval-data": eval_data})
    if episodes > 0:
        from laom.envs.tasks import parse_task

        try:
            parse_task(task)
        except LaomError as exc:
            raise LaomError(f"--tasks {task}: cannot evaluate online: {exc} (use --episodes 0)") from None


def check_stage_configs(cfg: SweepConfig) -> None:
    """Resolve every method's stage configs once (preset files, field names and values)."""
    from laom.training.pipeline import chain, cut_chain, plan_chain, split_overrides

    task = cfg.tasks[0]
    data = cfg.data[task]
    for method in cfg.methods:
        stages = chain(method, data, data, cfg.eval_data[task])
        routed = split_overrides(overrides_for(method, cfg.overrides), stages, method, [])
        plan_chain(cut_chain(stages, cfg.until, method), Path("/nonexistent-sweep-check"), cfg.preset, routed)
