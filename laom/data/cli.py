"""``laom data ...`` (info, validate, sample-labeled, merge, export, import), ``laom collect``
and ``laom relabel``.

Imports of h5py and the collection machinery happen inside the command functions so
that ``laom --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def path_arg(text: str) -> Path:
    """A path argument; an empty one is refused (``Path("")`` would silently mean ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def register(sub: Any) -> None:
    """Add the ``data`` command group and the top-level ``collect`` command."""
    data = sub.add_parser(
        "data",
        help="inspect, validate, subset and merge dataset files (HDF5)",
        description="Tools for dataset files in the paper's HDF5 layout.",
    )
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    p = dsub.add_parser("info", help="what a dataset file holds")
    p.add_argument("file", type=path_arg)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = dsub.add_parser("validate", help="check a dataset file end to end")
    p.add_argument("file", type=path_arg)
    p.add_argument("--deep", action="store_true", help="also read every frame (slow on big files)")
    p.set_defaults(func=cmd_validate)

    p = dsub.add_parser(
        "sample-labeled",
        help="write a labelled subset (N chunks of --chunk steps)",
        description=(
            "Pick N chunks of --chunk steps uniformly without replacement (seeded; subsets of "
            "one seed are nested) and write them as a dataset of their own."
        ),
    )
    p.add_argument("src", type=path_arg)
    p.add_argument("--trajectories", "-n", type=int, required=True, help="number of chunks N")
    p.add_argument("--chunk", type=int, default=1000, help="steps per chunk (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="which trajectories are drawn; subsets of one seed are nested")
    p.add_argument("--out", type=path_arg, required=True, help="the subset file to write (.hdf5)")
    p.add_argument("--compression", default=None, help="none, lzf, gzip[:LEVEL] (default: as SRC)")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never SRC)")
    p.set_defaults(func=cmd_sample_labeled)

    p = dsub.add_parser("merge", help="join shard files of `laom collect --shard I/N`")
    p.add_argument("out", type=path_arg)
    p.add_argument("shards", type=path_arg, nargs="+")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="merge even if a shard is unfinished or missing",
    )
    p.set_defaults(func=cmd_merge)

    p = dsub.add_parser(
        "export",
        help="write a dataset file as a Minari dataset (pixels, states, actions, latents)",
        description=(
            "Write FILE as a new dataset folder in another format: minari (pip install "
            "'laom[minari]'); lerobot is refused with the reason (its package does not install "
            "beside our pins). Frames are stored losslessly; per-frame extras (distractor "
            "records, relabelled latent actions) go to the episodes' infos."
        ),
    )
    p.add_argument("file", type=path_arg)
    p.add_argument("--format", required=True, help="minari (lerobot: not available, see --help)")
    p.add_argument("--out", type=path_arg, required=True, help="the dataset folder to create (must not exist)")
    p.add_argument("--dataset-id", default=None, help="Minari dataset id, (namespace/)name-vN (default: laom/OUT-NAME-v0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)

    p = dsub.add_parser(
        "import",
        help="read a folder written by `laom data export` back into the release layout",
    )
    p.add_argument("src", type=path_arg, help="the exported dataset folder")
    p.add_argument("--out", type=path_arg, required=True, help="the dataset file to write (.hdf5)")
    p.add_argument("--compression", default="none", help="how obs is stored: none, lzf, gzip[:LEVEL]")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)

    c = sub.add_parser(
        "collect",
        help="collect a pixel dataset with a state expert",
        description=(
            "Roll out a state expert in the Distracting Control Suite and store frames, states "
            "and actions in the paper's HDF5 layout. Re-running the same command on a partial "
            "file finishes it."
        ),
    )
    c.add_argument("--task", required=True, help="e.g. cheetah-run")
    c.add_argument(
        "--expert", default=None, help="expert file/folder or builtin[:TASK] (default: built-in)"
    )
    c.add_argument("--episodes", type=int, required=True, help="episodes in the whole collection")
    c.add_argument("--difficulty", default="scale_easy_video_hard", help="distractor preset (laom env list)")
    c.add_argument("--split", default="train", help="train or eval (which background videos)")
    c.add_argument("--img-hw", type=int, default=64, help="frame height and width in pixels (16..1024)")
    c.add_argument("--workers", type=int, default=1, help="worker processes (0 = this process)")
    c.add_argument("--seed", type=int, default=0, help="episode i is reset with a seed from (seed, i)")
    c.add_argument("--shard", default="0/1", help="I/N: collect every N-th episode from I")
    c.add_argument("--compression", default="none", help="none (default), lzf, gzip[:LEVEL]")
    c.add_argument("--backgrounds", default=None, help="folder of background videos (DAVIS)")
    c.add_argument("--max-steps", type=int, default=None, help="cut episodes short (debugging)")
    c.add_argument(
        "--action-noise", type=float, default=0.0,
        help="std of Gaussian noise added to the expert's actions, executed and stored "
        "(default 0: the greedy expert; the release's PPO experts sample theirs)",
    )
    c.add_argument(
        "--noise-labels", default="executed", choices=("executed", "expert"),
        help="which action a noisy step stores: the executed one, or the expert's clean "
        "action (DART: BC learns to steer back from the perturbed states)",
    )
    c.add_argument("--render", default="fast", help=argparse.SUPPRESS)
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--out", type=path_arg, required=True, help="the dataset file (.hdf5); an existing one is resumed")
    c.set_defaults(func=cmd_collect)

    r = sub.add_parser(
        "relabel",
        help="store a LAM's latent actions (and decoded actions) beside each trajectory",
        description=(
            "Copy --data to --out with each trajectory's latent actions (latent_actions, "
            "[T-1, latent_dim], row t = z(o_t, o_t+1)) and, with --decoder, the decoder's "
            "actions for them (decoded_actions). One trajectory at a time, so files larger "
            "than memory work; re-running the same command finishes an interrupted --out."
        ),
    )
    r.add_argument("--lam", type=path_arg, required=True, help="LAM run folder (laom train lam, a pipeline's lam-* stage) or its lam.pt")
    r.add_argument("--decoder", type=path_arg, default=None, help="decoder run (laom train decoder) or its policy.pt: also store decoded actions")
    r.add_argument("--data", type=path_arg, required=True, help="the dataset file to relabel (.hdf5)")
    r.add_argument("--out", type=path_arg, required=True, help="the relabelled copy (.hdf5); an interrupted one is resumed")
    r.add_argument("--batch-size", type=int, default=256, help="frame pairs per forward pass")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_relabel)


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def cmd_info(args: argparse.Namespace) -> int:
    from laom.data.format import info

    facts = info(args.file)
    if args.json:
        print(json.dumps(facts, default=str))
        return 0

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [
        ("file", facts["file"]),
        ("task", facts["task"]),
        ("difficulty", facts["difficulty"]),
        ("dynamic", facts["dynamic"]),
        ("split", facts["split"]),
        ("img_hw", facts["img_hw"]),
        ("trajectories", facts["trajectories"]),
        ("transitions", facts["transitions"]),
        ("state/action", f"{facts.get('state_dim', '-')}/{facts.get('action_dim', '-')}"),
        (
            "return",
            f"mean {num(facts['return_mean'])}  std {num(facts['return_std'])}  "
            f"min {num(facts['return_min'])}  max {num(facts['return_max'])}",
        ),
        ("file size", f"{_fmt_bytes(facts['file_bytes'])} ({facts['file_bytes']} bytes)"),
        ("compression", facts["compression"]),
    ]
    for key in ("seed", "episodes", "shard", "expert", "source_file", "labeled_seed", "chunk"):
        if key in facts:
            rows.append((key, facts[key]))
    if facts.get("missing_episodes"):
        rows.append(("unfinished", f"{facts['missing_episodes']} episode(s) still to collect"))
    dist = facts.get("distractors")
    rows.append((
        "distractors",
        f"{', '.join(dist['records'])} ({dist['trajectories']} of {facts['trajectories']} trajectories)"
        if dist else "not recorded",
    ))  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from laom.data.format import validate

    print(validate(args.file, deep=args.deep).summary())
    return 0


def cmd_sample_labeled(args: argparse.Namespace) -> int:
    from laom.data.labeled import sample_labeled

    picked = sample_labeled(
        args.src,
        args.trajectories,
        args.out,
        seed=args.seed,
        chunk=args.chunk,
        force=args.force,
        compression=args.compression,
    )
    steps = sum(c.length for c in picked)
    sources = len({c.source for c in picked})
    print(
        f"wrote {args.out}: {len(picked)} chunk(s), {steps} steps, from {sources} source trajectories"
    )
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from laom.data.merge import merge

    res = merge(args.out, args.shards, force=args.force, allow_incomplete=args.allow_incomplete)
    print(
        f"wrote {res.path}: {res.trajectories} trajectories, {res.transitions} transitions, "
        f"dataset_return {res.dataset_return:.2f}"
    )
    return 0


def _carried(extras: list[str]) -> str:
    return f"; also {', '.join(extras)}" if extras else ""


def cmd_export(args: argparse.Namespace) -> int:
    from laom.data.interchange import export_dataset

    res = export_dataset(
        args.file, args.format, args.out, dataset_id=args.dataset_id, progress=not args.quiet
    )
    print(
        f"wrote {res.path} ({args.format}): {res.trajectories} episodes, {res.frames} frames of "
        f"pixels, states and actions{_carried(res.extras)}"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from laom.data.interchange import import_dataset

    res = import_dataset(
        args.src, args.out, force=args.force, compression=args.compression, progress=not args.quiet
    )
    print(f"wrote {res.path}: {res.trajectories} trajectories, {res.frames} frames{_carried(res.extras)}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from laom.data.collect import CollectConfig, collect
    from laom.data.format import parse_shard

    cfg = CollectConfig(
        task=args.task,
        episodes=args.episodes,
        out=args.out,
        difficulty=args.difficulty,
        split=args.split,
        img_hw=args.img_hw,
        workers=args.workers,
        seed=args.seed,
        shard=parse_shard(args.shard),
        compression=args.compression,
        backgrounds=args.backgrounds,
        expert=args.expert,
        max_steps=args.max_steps,
        action_noise=args.action_noise,
        noise_labels=args.noise_labels,
        render=args.render,
        progress=not args.quiet,
    )
    res = collect(cfg)
    if res.written:
        print(
            f"wrote {res.written} episode(s), {res.frames} frames in {res.seconds:.1f} s "
            f"({res.fps:.0f} frames/s); mean return {sum(res.returns) / len(res.returns):.1f}; "
            f"{res.path} now has {res.written + res.skipped} episode(s)"
        )
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    from laom.data.relabel import relabel

    res = relabel(
        args.lam, args.data, args.out, args.decoder, device=args.device,
        batch_size=args.batch_size, progress=not args.quiet,
    )  # fmt: skip
    if res.written:
        arrays = f"latent_actions [T-1, {res.latent_dim}]" + (", decoded_actions" if res.decoded else "")
        print(
            f"wrote {res.written} trajectories ({res.frames} frames) in {res.seconds:.1f} s with "
            f"{arrays}; {res.path} now holds {res.written + res.skipped}"
        )
    return 0
