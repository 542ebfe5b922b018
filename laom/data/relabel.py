"""``laom relabel``: a dataset with a trained LAM's latent actions stored beside each trajectory.

The output is the input file, trajectory by trajectory, with one or two more datasets in
each group (a file any reader of the release's layout still loads):

* ``latent_actions`` float32 [T-1, latent_dim]: row t is z = IDM(o_t, o_{t+1}), prepared
  exactly as latent BC's labelling pass prepares frames
  (:meth:`laom.data.labelling.LatentActionModel.encode`), so row t lines up with ``actions[t]``, the action that led from o_t to o_{t+1}. A
  trajectory's last frame has no successor, hence T-1 rows.
* ``decoded_actions`` float32 [T-1, action_dim], with ``--decoder RUN``: the action
  decoder of a ``laom train decoder`` run applied to those latents, which says how much of
  the action the latents carry through the decoder that acts on them.

Why a copy and not a sidecar: the result is self-contained (frames, actions, latents),
so it can be merged, sampled, exported or trained on alone. Groups are copied as stored
(compressed frames are not recompressed).

Streaming and resuming work as in ``laom collect``: one trajectory is read, encoded and
appended at a time (memory is one trajectory, whatever the file's size), each append is
a journaled transaction (:class:`laom.data.format.Writer`), and the output records what
it was made from (the LAM's and decoder's file hashes, the data's identity). Running the
same command again finishes an interrupted output; an ``--out`` made from other inputs,
or that is not a relabelled file at all, is refused before anything is read or written.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laom import __version__
from laom.data.format import (
    FILE_ATTRS,
    DatasetReader,
    Writer,
    create,
    plain,
    task_of,
)
from laom.data.labeled import _same_file
from laom.errors import LaomError
from laom.outputs import check_output

LATENT_ACTIONS = "latent_actions"
DECODED_ACTIONS = "decoded_actions"
RELABEL_FORMAT = "laom-relabel/1"
# Data attributes an output must share with --data to be resumed from it.
DATA_IDENTITY = ("domain_name", "task_name", "difficulty", "split", "seed")


@dataclass
class RelabelResult:
    """What one ``laom relabel`` run did."""

    path: Path
    written: int  # trajectories relabelled by this run
    skipped: int  # trajectories already in --out (an earlier, interrupted run)
    frames: int  # frames this run encoded
    seconds: float
    latent_dim: int
    decoded: bool


def file_sha256(path: Path) -> str:
    """The content hash of a model file: what the output's identity holds, so retraining
    a run in place (same path, other weights) is not mistaken for the same model."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_file(run: Path, flag: str, artifact: str, command: str) -> Path:
    """A run folder's ``artifact`` (or the file itself): the file is what relabel hashes
    for resuming, so it is resolved here, with the flag named, before any model loads."""
    file = run / artifact if run.is_dir() else run
    if not file.is_file():
        state = "no such file or folder" if not run.exists() else f"no {artifact} in it (a `{command}` run?)"
        raise LaomError(f"{flag} {run}: {state}")
    return file


def _lam_file(run: Path) -> Path:
    return _run_file(run, "--lam", "lam.pt", "laom train lam")


def _decoder_file(run: Path) -> Path:
    return _run_file(run, "--decoder", "policy.pt", "laom train decoder")


def _load_decoder(run: Path, device: Any) -> Any:
    """The acting policy of a decoder run; only its decoder (latent -> action) is used."""
    from laom.models.saving import load_policy_file

    try:
        policy = load_policy_file(_decoder_file(run), device)
    except LaomError as exc:
        raise LaomError(str(exc).replace("--policy", "--decoder", 1)) from None
    if policy.decoder is None:
        raise LaomError(
            f"--decoder {run}: its policy.pt has no action decoder (an IDM or BC run?); "
            "give a `laom train decoder` run"
        )
    return policy


def _check_decoder(run: Path, policy: Any, lam: Any, lam_run: Path) -> None:
    """A decoder reads latents of one LAM's space: same size, frames and stack."""
    meta = policy.meta  # laom.models.meta.PolicyMeta
    width = int(policy.decoder.kwargs["latent_dim"])
    if width != lam.latent_dim:
        raise LaomError(
            f"--decoder {run} reads {width}-d latents but --lam {lam_run} makes {lam.latent_dim}-d ones"
        )
    checks = ((meta.frame_stack, lam.frame_stack, "frame stack"), (meta.img_hw, lam.img_hw, "frame size"))
    for trained, used, what in checks:
        if trained is not None and int(trained) != used:
            raise LaomError(
                f"--decoder {run} was trained with {what} {trained} but --lam {lam_run} uses {used}"
            )
    method = str(meta.method or "")
    if method and lam.method and method != lam.method:
        raise LaomError(
            f"--decoder {run} decodes latents of a {method} LAM but --lam {lam_run} is {lam.method}"
        )


def _check_data(data: Path, reader: DatasetReader, lam: Any, lam_run: Path) -> int:
    """Every trajectory holds single RGB frames of the LAM's size; returns the frame count."""
    missing = [k for k in FILE_ATTRS if k not in reader.attrs and k != "dataset_return"]
    if missing:
        raise LaomError(f"--data {data}: missing file attribute(s) {', '.join(missing)}")
    if not reader.indices:
        raise LaomError(f"--data {data}: no trajectories")
    frames = 0
    for index in reader.indices:
        group = reader.group(index)
        obs = group.get("obs")
        if obs is None or "actions" not in group or "traj_return" not in group.attrs:
            raise LaomError(f"--data {data}: trajectory {index} lacks obs, actions or traj_return")
        shape = tuple(obs.shape)
        if obs.dtype != np.uint8 or len(shape) != 4:
            raise LaomError(
                f"--data {data}: trajectory {index} obs is {obs.dtype} {list(shape)}, expected uint8 [T,H,W,3]"
            )
        if shape[3] != 3:
            raise LaomError(
                f"--data {data}: trajectory {index} frames have {shape[3]} channels, but --lam {lam_run} "
                f"stacks {lam.frame_stack} RGB frames itself; give single RGB frames [T,H,W,3]"
            )
        if shape[1:3] != (lam.img_hw, lam.img_hw):
            raise LaomError(
                f"--data {data}: frames are {shape[1]}x{shape[2]} but --lam {lam_run} was trained "
                f"on {lam.img_hw}x{lam.img_hw}"
            )
        frames += shape[0]
    return frames


def _identity(lam_sha: str, decoder_sha: str, data_attrs: dict[str, Any]) -> dict[str, Any]:
    ident = {"relabel_lam_sha256": lam_sha, "relabel_decoder_sha256": decoder_sha}
    for key in DATA_IDENTITY:
        ident[f"relabel_data_{key}"] = str(plain(data_attrs.get(key, "")))
    return ident


_FLAG_OF = {"relabel_lam_sha256": "--lam", "relabel_decoder_sha256": "--decoder"}


def _check_resume(out: Path, attrs: dict[str, Any], mine: dict[str, Any]) -> None:
    """Refuse an existing --out that is not an interrupted relabel of these very inputs."""
    if attrs.get("relabel_format") != RELABEL_FORMAT:
        raise LaomError(
            f"--out {out} exists and is not a `laom relabel` output; refusing to touch it, choose another --out"
        )
    for key, value in mine.items():
        theirs = str(plain(attrs.get(key, "")))
        if theirs == value:
            continue
        flag = _FLAG_OF.get(key, "--data")
        if key == "relabel_decoder_sha256" and not (theirs and value):
            done = "with a --decoder" if theirs else "without --decoder"
            raise LaomError(f"--out {out} was relabelled {done}; resume it the same way or choose another --out")
        if key.endswith("sha256"):
            why = f"another {flag[2:]} file (sha256 {theirs[:12]}, not {value[:12]})"
        else:
            name = key.removeprefix("relabel_data_")
            why = f"data of {name}={theirs!r}, not {value!r}"
        raise LaomError(f"--out {out} was relabelled from {why}; resume it with the same {flag} or choose another --out")


def _check_existing(out: Path, data: Path, done: DatasetReader, src: DatasetReader) -> None:
    """Trajectories already in --out must be the ones --data holds under the same name."""
    have = set(src.indices)
    for index in done.indices:
        if index not in have:
            raise LaomError(
                f"--out {out} holds trajectory {index}, which --data {data} does not; choose another --out"
            )
        if done.length(index) != src.length(index) or done.traj_return(index) != src.traj_return(index):
            raise LaomError(
                f"--out {out}: trajectory {index} differs from --data {data}'s (length or return); "
                "it was relabelled from another file, choose another --out"
            )


def relabel(
    lam: str | Path,
    data: str | Path,
    out: str | Path,
    decoder: str | Path | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> RelabelResult:
    """Write ``out``: ``data`` with latent actions (and decoded actions) per trajectory.

    Every check (paths, the LAM against the data, the decoder against the LAM, an existing
    ``out``) runs before the first frame is encoded; see the module docstring.
    """
    from laom.data.labelling import LatentActionModel
    from laom.models.device import resolve_device
    from laom.progress import progress as progress_bar

    lam_run, data, out = Path(lam), Path(data), Path(out)
    if batch_size < 1:
        raise LaomError(f"--batch-size {batch_size}: expected >= 1")
    if not data.exists():
        raise LaomError(f"--data {data}: no such file")
    check_output(out, "--out", kind="file", force=True)
    if _same_file(out, data):
        raise LaomError(f"--out {out} is the --data file; write the relabelled copy elsewhere")

    lam_file = _lam_file(lam_run)
    target = str(resolve_device(device))
    try:
        model = LatentActionModel.load(lam_file, target)
    except LaomError as exc:
        raise LaomError(f"--lam {exc}") from None
    policy = None
    decoder_sha = ""
    if decoder is not None:
        decoder_run = Path(decoder)
        policy = _load_decoder(decoder_run, model.device)
        _check_decoder(decoder_run, policy, model, lam_run)
        decoder_sha = file_sha256(_decoder_file(decoder_run))

    try:
        src = DatasetReader(data)
    except LaomError as exc:
        raise LaomError(f"--data {exc}") from None
    with src:
        total_frames = _check_data(data, src, model, lam_run)
        task = task_of(src.attrs)
        lam_task = f"{model.meta.domain_name or ''}-{model.meta.task_name or ''}"
        if lam_task.strip("-") and lam_task != task:
            log(f"note: --lam {lam_run} was trained on {lam_task}; relabelling {task} data with it")
        mine = _identity(file_sha256(lam_file), decoder_sha, src.attrs)

        existing: list[int] = []
        resuming = out.exists()
        if resuming:
            try:
                with DatasetReader(out) as done:  # also undoes a trajectory cut by a kill
                    _check_resume(out, done.attrs, mine)
                    _check_existing(out, data, done, src)
                    existing = list(done.indices)
            except LaomError as exc:
                if str(exc).startswith("--out"):
                    raise
                raise LaomError(f"--out {exc} (relabel resumes an existing --out; pick a new file name)") from None
        todo = [i for i in src.indices if i not in set(existing)]
        result = RelabelResult(out, 0, len(existing), 0, 0.0, model.latent_dim, policy is not None)
        if not todo:
            log(f"{out}: all {len(existing)} trajectories already relabelled")
            return result

        if not resuming:  # (an --out cut before its first trajectory is resumed, not recreated)
            attrs = {key: src.h5.attrs[key] for key in src.h5.attrs}
            attrs.update(mine)
            attrs.update({
                "relabel_format": RELABEL_FORMAT,
                "relabel_lam": str(lam_file.resolve()),
                "relabel_lam_method": model.method,
                "relabel_decoder": str(_decoder_file(Path(decoder)).resolve()) if decoder else "",
                "relabel_data": str(data.resolve()),
                "latent_dim": model.latent_dim,
                "frame_stack": model.frame_stack,
                "laom_version": __version__,
            })  # fmt: skip
            create(out, attrs)
        log(
            f"{out}: relabelling {len(todo)} trajectories of {data} with {model.method or 'the'} LAM "
            f"{lam_run}" + (f" and decoder {decoder}" if decoder else "")
            + (f"; {len(existing)} already there" if existing else "")
        )
        done_frames = sum(src.length(i) for i in existing)
        start = time.perf_counter()
        bar = progress_bar(total_frames, "relabel", "frame", initial=done_frames, enabled=progress)
        writer = Writer(out)
        try:
            for index in todo:
                frames = src.obs(index)
                datasets = _labels(model, policy, frames, batch_size)
                writer.copy_group(src.group(index), index, datasets=datasets)
                result.written += 1
                result.frames += len(frames)
                bar.set_postfix(trajectories=f"{len(existing) + result.written}/{len(src)}", refresh=False)
                bar.update(len(frames))
        finally:
            writer.close()
            bar.close()
        result.seconds = time.perf_counter() - start
        return result


def _labels(model: Any, policy: Any, frames: np.ndarray, batch_size: int) -> dict[str, np.ndarray | None]:
    """The arrays stored beside one trajectory."""
    import torch

    if len(frames) >= 2:
        z = model.encode(frames, batch_size=batch_size)
    else:  # one frame: no transition to label, but the group keeps its (empty) rows
        z = np.zeros((0, model.latent_dim), np.float32)
    out: dict[str, np.ndarray | None] = {LATENT_ACTIONS: z.astype(np.float32, copy=False)}
    out[DECODED_ACTIONS] = None  # a relabelled --data's decoded actions belong to its old LAM
    if policy is not None:
        with torch.no_grad():
            decoded = policy.decoder(torch.from_numpy(z).to(model.device)).float().cpu().numpy()
        out[DECODED_ACTIONS] = decoded
    return out
