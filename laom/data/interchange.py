"""``laom data export`` / ``laom data import``: datasets in the field's formats and back.

Minari (``pip install 'laom[minari]'``, the ``minari`` package's own writer and reader)
is supported; LeRobot is not, because no ``lerobot`` release installs beside this
project's pins (see :data:`LEROBOT_CONFLICT`), and writing its layout by hand would be a
format we cannot test against the real reader.

How one trajectory of T frames becomes a Minari episode of T-1 steps, and back:

* ``observations``: a dict of ``pixels`` (uint8 [T, H, W, 3], ``obs``) and ``state``
  (float32 [T, D], ``states``): Minari's T-1 steps have T observations, as here.
* ``actions``: ``actions[:T-1]``, the actions between those frames. The release stores
  one more, taken after the last frame; it is kept in the episode's metadata
  (``laom_final_action``) so that import restores ``actions`` exactly.
* ``rewards``: NaN. The release layout keeps only each trajectory's return
  (``laom_traj_return`` in the episode's metadata); NaN says "unknown" where zeros would
  be silently wrong rewards.
* ``terminations`` all False, ``truncations`` True at the last step (dm_control episodes
  end at a time limit).
* ``infos``: every other per-frame dataset of the group, under its own path
  (``distractors/camera``, ...). Per-transition ones with T-1 rows (``laom relabel``'s
  ``latent_actions``, ``decoded_actions``) follow Minari's convention that ``infos[t+1]``
  describes step t: row 0 is padding (NaN), and import drops it again.
* Frames are stored raw (Minari's JPEG encoding is off): a round trip is lossless.

File attributes and each group's attributes travel with their numpy dtypes
(``laom_attrs`` in the dataset's and each episode's metadata), so the imported file has
the attributes the exported one had. Both directions stream one trajectory at a time.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from laom.data.format import (
    FIELDS,
    Compression,
    DatasetReader,
    Writer,
    atomic_output,
    create,
    validate,
)
from laom.errors import LaomError
from laom.outputs import atomic_path, check_output

FORMATS = ("lerobot", "minari")
MINARI_FORMAT = "laom-minari/1"
MINARI_PIN = "minari[hdf5]==0.5.4"
# What pip answered for every lerobot release Python 3.11 can install, beside our pins.
LEROBOT_CONFLICT = (
    "no lerobot release installs beside this project's pins: lerobot 0.4.x depends on "
    "torch<2.11.0 (0.4.0-0.4.3: torch<2.8.0) and we pin torch 2.13.0; lerobot 0.3.2 depends "
    "on gymnasium<1.0.0 and we need gymnasium>=1.0; 0.5 and later need Python>=3.12; every "
    "release depends on torchvision, which this project must not"
)


@dataclass
class TransferResult:
    """What an export or import wrote."""

    path: Path
    trajectories: int
    frames: int
    seconds: float
    extras: list[str]  # per-frame arrays carried beside pixels, states and actions


# --------------------------------------------------------------------------- attributes
def encode_attr(value: Any) -> dict[str, Any]:
    """An HDF5 attribute as JSON with its numpy dtype, so import writes back the same type."""
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        items = value.tolist()
        if kind == "S":
            items = np.char.decode(value, "latin-1").tolist()
        elif kind == "O":
            items = [v.decode("utf-8") if isinstance(v, bytes) else v for v in value.ravel().tolist()]
        return {"array": items, "dtype": "O" if kind == "O" else value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        if value.dtype.kind == "S":
            return {"scalar": bytes(value).decode("latin-1"), "dtype": value.dtype.str}
        return {"scalar": value.item(), "dtype": value.dtype.str}
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, (str, int, float, bool)):
        return {"value": value}
    raise LaomError(f"attribute value {value!r} of type {type(value).__name__} cannot be exported")


def decode_attr(spec: dict[str, Any]) -> Any:
    """The inverse of :func:`encode_attr`."""
    if "array" in spec:
        if spec["dtype"] == "O":
            return np.array(spec["array"], dtype=h5py.string_dtype()).reshape(spec["shape"])
        dtype = np.dtype(spec["dtype"])
        items = spec["array"]
        if dtype.kind == "S":
            items = np.char.encode(np.array(items, dtype=str), "latin-1")
        return np.array(items, dtype=dtype).reshape(spec["shape"])
    if "scalar" in spec:
        dtype = np.dtype(spec["dtype"])
        if dtype.kind == "S":
            return np.array(spec["scalar"].encode("latin-1"), dtype=dtype)[()]
        return np.array(spec["scalar"], dtype=dtype)[()]
    if "bytes" in spec:
        return spec["bytes"].encode("latin-1")
    return spec["value"]


def encode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {key: encode_attr(attrs[key]) for key in attrs}


def decode_attrs(specs: dict[str, Any]) -> dict[str, Any]:
    return {key: decode_attr(spec) for key, spec in specs.items()}


# --------------------------------------------------------------------------- helpers
def _require_minari(what: str) -> Any:
    """The minari module, or one line saying how to install the extra."""
    try:
        import minari
    except ImportError:
        raise LaomError(f"{what} needs the minari package: pip install 'laom[minari]' ({MINARI_PIN})") from None
    return minari


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise LaomError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "lerobot":
        raise LaomError(f"--format lerobot is not available: {LEROBOT_CONFLICT}; use --format minari")


def extra_datasets(group: h5py.Group) -> dict[str, h5py.Dataset]:
    """Every dataset of a trajectory group besides obs/states/actions, by path."""
    found: dict[str, h5py.Dataset] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name not in FIELDS:
            found[name] = obj

    group.visititems(visit)
    return dict(sorted(found.items()))


def _nest(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    """{"a/b": x} -> {"a": {"b": x}}: Minari stores a nested infos dict as subgroups."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "/"))
        else:
            out[path] = np.asarray(value)
    return out


def default_dataset_id(out: Path) -> str:
    """``laom/<folder name>-v0``: Minari ids are ``(namespace/)name-vN``."""
    name = re.sub(r"[^-_\w]", "_", out.name) or "dataset"
    return f"laom/{name}" if re.search(r"-v\d+$", name) else f"laom/{name}-v0"


def _check_dataset_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise LaomError(f"--dataset-id {dataset_id!r}: expected (namespace/)name-vN, e.g. laom/cheetah-run-v0") from None


# --------------------------------------------------------------------------- export
def export_dataset(
    path: str | Path,
    fmt: str,
    out: str | Path,
    *,
    dataset_id: str | None = None,
    progress: bool = True,
) -> TransferResult:
    """Write dataset file ``path`` as a new ``fmt`` dataset in folder ``out``.

    Every check (format, package, paths, the file's layout) runs first; the folder is
    built under a temporary name beside ``out`` and renamed into place when complete,
    so an interrupted export leaves no half-dataset under ``out``.
    """
    path, out = Path(path), Path(out)
    _check_format(fmt)
    _require_minari("--format minari")
    if os.path.lexists(out):
        raise LaomError(f"--out {out}: already exists; export writes a new folder, choose another --out")
    check_output(out, "--out", kind="dir")
    dataset_id = dataset_id or default_dataset_id(out)
    _check_dataset_id(dataset_id)
    report = validate(path)  # one line naming the first problem of a broken file
    if not report.complete:
        raise LaomError(f"{path}: an unfinished collection; finish it with its `laom collect` command first")
    with DatasetReader(path) as reader:
        for index in reader.indices:
            if reader.length(index) < 2:
                raise LaomError(f"{path}: trajectory {index} has 1 frame; a Minari episode needs a step (2 frames)")
            _step_layout(path, index, reader.group(index))
    with atomic_path(out) as tmp:
        result = _export_minari(path, tmp, dataset_id, report, progress)
    result.path = out
    return result


def _step_layout(path: Path, index: int, group: h5py.Group) -> dict[str, bool]:
    """For each extra dataset: per frame (T rows, False) or per transition (T-1, True)."""
    length = int(group["obs"].shape[0])
    layout: dict[str, bool] = {}
    for name, dset in extra_datasets(group).items():
        rows = int(dset.shape[0]) if dset.ndim else -1
        if rows not in (length, length - 1):
            raise LaomError(
                f"{path}: trajectory {index} {name}: {list(dset.shape)}, expected {length} (per frame) "
                f"or {length - 1} (per transition) rows; only per-step arrays can be exported"
            )
        layout[name] = rows == length - 1
    return layout


def reference_scores(attrs: Any) -> dict[str, float | int]:
    """Minari's reference scores, so ``minari.get_normalized_score`` gives D4RL-style
    scores on the export: ``ref_max_score`` the file's mean trajectory return (its expert's,
    for a file ``laom collect`` wrote), ``ref_min_score`` a uniform random policy's return
    on the task (:func:`laom.envs.tasks.random_policy_returns`). Empty where the file names
    no suite task or records no return."""
    from laom.envs.tasks import RANDOM_POLICY_EPISODES, random_policy_returns

    expert = attrs.get("dataset_return")
    task = f"{attrs.get('domain_name')}-{attrs.get('task_name')}"
    if expert is None or not np.isfinite(float(expert)):
        return {}
    try:
        floor = float(np.mean(random_policy_returns(task, RANDOM_POLICY_EPISODES)))
    except LaomError:
        return {}
    if float(expert) <= floor:  # no span to normalise over
        return {}
    return {"ref_min_score": floor, "ref_max_score": float(expert), "num_episodes_average_score": RANDOM_POLICY_EPISODES}


def _export_minari(
    path: Path, folder: Path, dataset_id: str, report: Any, progress: bool
) -> TransferResult:
    import gymnasium as gym
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage
    from minari.serialization import serialize_space

    from laom.progress import progress as progress_bar

    hw = report.img_hw
    obs_space = gym.spaces.Dict({
        "pixels": gym.spaces.Box(0, 255, (hw[0], hw[1], 3), np.uint8),
        "state": gym.spaces.Box(-np.inf, np.inf, (report.state_dim,), np.float32),
    })  # fmt: skip
    action_space = gym.spaces.Box(-1.0, 1.0, (report.action_dim,), np.float32)
    folder.mkdir()
    # An absolute path: minari's size count joins a relative one onto itself.
    storage = MinariStorage.new(
        folder.resolve() / "data", observation_space=obs_space, action_space=action_space,
        data_format="hdf5", jpeg_encoding=False,
    )  # fmt: skip
    start = time.perf_counter()
    frames, extras = 0, set()
    episode_meta: list[dict[str, Any]] = []
    low, high = np.inf, -np.inf
    with DatasetReader(path) as reader:
        file_attrs, attrs = encode_attrs(reader.h5.attrs), reader.attrs
        bar = progress_bar(report.transitions, "export", "frame", enabled=progress)
        try:
            for index in reader.indices:
                group = reader.group(index)
                obs, states, actions = (group[k][()] for k in FIELDS)
                steps = len(obs) - 1
                infos: dict[str, np.ndarray] = {}
                padded: list[str] = []
                for name, per_transition in _step_layout(path, index, group).items():
                    values = group[name][()]
                    if per_transition:  # infos[t+1] describes step t; row 0 is padding
                        pad = np.full((1, *values.shape[1:]), np.nan if values.dtype.kind == "f" else 0, values.dtype)
                        values = np.concatenate([pad, values])
                        padded.append(name)
                    infos[name] = values
                    extras.add(name)
                seed = group.attrs.get("episode_seed")
                truncations = np.zeros(steps, bool)
                truncations[-1] = True
                storage.update_episodes([
                    EpisodeBuffer(
                        seed=None if seed is None else int(seed),
                        observations={"pixels": obs, "state": states},
                        actions=actions[:steps], rewards=np.full(steps, np.nan),
                        terminations=np.zeros(steps, bool), truncations=truncations,
                        infos=_nest(infos) if infos else None,
                    )
                ])  # fmt: skip
                low, high = min(low, float(actions.min())), max(high, float(actions.max()))
                episode_meta.append({
                    "laom_group": int(index),
                    "laom_traj_return": float(group.attrs["traj_return"]),
                    "laom_final_action": actions[steps],
                    "laom_attrs": json.dumps(encode_attrs(group.attrs)),
                    "laom_padded": json.dumps(padded),
                })  # fmt: skip
                frames += len(obs)
                bar.update(len(obs))
        finally:
            bar.close()
    storage.update_episode_metadata(episode_meta, range(len(episode_meta)))
    storage.update_metadata({
        **reference_scores(attrs),
        "dataset_id": dataset_id,
        "minari_version": minari.__version__,
        "algorithm_name": str(attrs.get("expert", "laom collect")),
        "description": (
            f"{attrs.get('domain_name')}-{attrs.get('task_name')} ({attrs.get('difficulty')}, "
            f"{attrs.get('split')} split) from {path.name}, exported by laom: pixels and states as "
            "observations; rewards are NaN (the source keeps only returns, see laom_traj_return)"
        ),
        "laom_format": MINARI_FORMAT,
        "laom_attrs": file_attrs,
        "laom_source": path.name,
    })  # fmt: skip
    if low < -1.0 or high > 1.0:  # the suite's actions lie in [-1, 1]; say so only when true
        meta_file = folder / "data" / "metadata.json"
        meta = json.loads(meta_file.read_text())
        meta["action_space"] = serialize_space(gym.spaces.Box(-np.inf, np.inf, (report.action_dim,), np.float32))
        meta_file.write_text(json.dumps(meta))
    return TransferResult(folder, len(episode_meta), frames, time.perf_counter() - start, sorted(extras))


# --------------------------------------------------------------------------- import
def _minari_data_path(src: Path) -> Path:
    """The folder holding metadata.json: SRC/data (an export) or SRC itself."""
    if (src / "meta" / "info.json").is_file():
        raise LaomError(f"{src} is a LeRobot dataset; importing it is not available: {LEROBOT_CONFLICT}")
    for candidate in (src / "data", src):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise LaomError(f"{src}: not a Minari dataset (no data/metadata.json); give a folder written by `laom data export`")


def import_dataset(
    src: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    compression: str = "none",
    progress: bool = True,
) -> TransferResult:
    """Read a dataset ``laom data export`` wrote back into a release-layout file ``out``.

    ``out`` is built under a temporary name and renamed into place when complete; an
    existing ``out`` is replaced only with ``force``.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        state = "is a file, not a folder" if src.exists() else "no such folder"
        raise LaomError(f"{src}: {state} (give the folder `laom data export --out` wrote)")
    data_path = _minari_data_path(src)
    comp = Compression.parse(compression)
    check_output(out, "--out", kind="file", force=force)
    _require_minari("laom data import")
    from minari.dataset.minari_storage import MinariStorage

    try:
        meta = MinariStorage.read_raw_metadata(data_path)
        storage = MinariStorage.read(data_path.resolve())
    except (ValueError, KeyError, OSError, AssertionError) as exc:
        raise LaomError(f"{src}: unreadable Minari dataset ({' '.join(str(exc).split())})") from None
    if meta.get("laom_format") != MINARI_FORMAT:
        raise LaomError(
            f"{src}: a Minari dataset not written by `laom data export` (no laom_format "
            f"{MINARI_FORMAT} in its metadata); only those import into the release layout"
        )
    file_attrs = decode_attrs(meta["laom_attrs"])
    total = int(meta.get("total_episodes", 0))
    start = time.perf_counter()
    frames, extras, written = 0, set(), 0
    from laom.progress import progress as progress_bar

    bar = progress_bar(int(meta.get("total_steps", 0)) + total, "import", "frame", enabled=progress)
    try:
        with atomic_output(out, force) as tmp:
            create(tmp, file_attrs, force=True)
            with Writer(tmp, comp, journal=False, durable=False) as writer:
                for episode, info in _episodes(storage, total):
                    obs = episode["observations"]["pixels"]
                    states = episode["observations"]["state"]
                    actions = np.concatenate([episode["actions"], info["laom_final_action"][None]])
                    padded = set(json.loads(info["laom_padded"]))
                    datasets = {
                        name: values[1:] if name in padded else values
                        for name, values in _flatten(episode.get("infos") or {}).items()
                    }
                    # traj_return stays among the attributes: written after append's own
                    # float, it keeps the dtype the source file had.
                    attrs = decode_attrs(json.loads(info["laom_attrs"]))
                    traj_return = float(info["laom_traj_return"])
                    writer.append(int(info["laom_group"]), obs, states, actions, traj_return, attrs, datasets=datasets)
                    extras.update(datasets)
                    written += 1
                    frames += len(obs)
                    bar.update(len(obs))
                writer.set_attrs(file_attrs)  # dataset_return exactly as exported
    finally:
        bar.close()
    return TransferResult(out, written, frames, time.perf_counter() - start, sorted(extras))


def _episodes(storage: Any, total: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(episode arrays, episode metadata), one episode in memory at a time."""
    for index in range(total):
        (episode,) = list(storage.get_episodes([index]))  # list(): the reader's file closes
        (info,) = list(storage.get_episode_metadata([index]))
        missing = [k for k in ("laom_group", "laom_final_action", "laom_attrs", "laom_padded") if k not in info]
        if missing:
            raise LaomError(f"{storage.data_path}: episode {index} lacks {', '.join(missing)} in its metadata")
        yield episode, info

