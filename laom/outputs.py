"""What every command that writes shares: a check of its output path before any work,
the code version stamped into what it writes, and a write that a kill cannot leave
half done.

Every command that writes (``train``, ``pipeline``, ``sweep``, ``report``, ``demo``,
``collect``, ``evaluate``, ``env preview``, ``expert train/export``, the ``data`` tools)
calls :func:`check_output` first, so an output it cannot write (a parent that is a
file, a folder without write permission, a file where a folder is expected) ends in
one :class:`~laom.errors.LaomError` line before any data is loaded or anything is
written, instead of an ``OSError`` traceback hours later.

:func:`code_version` is the laom version and, in a git checkout, the commit: recorded in
every summary so a result can be traced to the code that made it.

:func:`atomic_path` is the one way anything is written in place (a model, a checkpoint,
a dataset, a summary, an image): built under a temporary name beside its destination and
renamed onto it only when complete, so a reader never takes a half-written file for a
finished one. :func:`atomic_write_text` is its use for text.

This module sits beside :mod:`laom.errors` at the bottom of the import order (standard
library only), so every layer can use it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from laom.errors import LaomError


def _exists(path: Path, flag: str, shown: Path) -> bool:
    """``path.exists()``, with the OS's refusals (permissions, over-long names) as one line."""
    try:
        return path.exists() or path.is_symlink()
    except OSError as exc:
        raise LaomError(f"{flag} {shown}: cannot be checked ({exc.strerror or exc})") from None


def nearest_existing(start: Path, flag: str, shown: Path) -> Path:
    """``start`` or its nearest ancestor that exists: what a missing output would be
    created in (its permissions, its filesystem's free space)."""
    nearest = start
    while not _exists(nearest, flag, shown) and nearest != nearest.parent:
        nearest = nearest.parent
    return nearest


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_output(
    path: str | os.PathLike[str],
    flag: str = "--out",
    *,
    kind: Literal["file", "dir"] = "file",
    create_parents: bool = False,
    force: bool = True,
) -> Path:
    """Refuse, with one line naming ``flag`` and ``path``, an output that cannot be written.

    ``kind="file"``: ``path`` is written as a file (replaced atomically when ``force``; an
    existing file is an error otherwise); ``kind="dir"``: ``path`` is a folder that is
    created, or resumed when it exists. ``create_parents``: the command creates missing
    parent folders (``mkdir -p``); otherwise the parent must exist. Either way the nearest
    folder that exists must be a writable folder, not a file. Returns ``path`` as a Path.
    """
    if str(path).strip() == "":
        raise LaomError(f"{flag}: expected a path, got an empty string")
    path = Path(path).expanduser()
    if _exists(path, flag, path):
        if kind == "dir":
            if not path.is_dir():
                raise LaomError(f"{flag} {path}: exists and is not a directory")
            if not _writable(path):
                raise LaomError(f"{flag} {path}: directory is not writable")
            return path
        if path.is_dir():
            raise LaomError(f"{flag} {path}: is a directory, expected a file name")
        if not force:
            raise LaomError(f"{flag} {path}: already exists (pass --force to replace it)")
    parent = path.parent
    nearest = nearest_existing(parent, flag, path)
    if not nearest.is_dir():
        raise LaomError(f"{flag} {path}: {nearest} is a file, not a directory")
    if nearest != parent and not create_parents:
        raise LaomError(f"{flag} {path}: directory {parent} does not exist")
    if not _writable(nearest):
        raise LaomError(f"{flag} {path}: directory {nearest} is not writable")
    return path


@functools.lru_cache(maxsize=1)
@functools.lru_cache(maxsize=1)
def machine() -> str:
    """The CPU a result was computed on, e.g. "Intel(R) Xeon(R) Processor (2 cores;
    avx512, amx)": a study's sessions may each get another machine, whose kernels round
    differently and whose `--precision auto` may mean bf16, so a summary says which."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    units = [u for u, flag in (("avx2", "avx2"), ("avx512", "avx512f"), ("amx", "amx_bf16")) if flag in flags]
    units = [u for u in units if not (u == "avx2" and "avx512" in units)]
    cores = os.cpu_count() or 0
    return f"{name} ({cores} cores{'; ' + ', '.join(units) if units else ''})"


def reset_peak_memory() -> bool:
    """Start this process's peak resident memory (VmHWM) over from its current size, so a
    stage run in a long-lived sweep worker records its own peak, not the worst stage
    before it. False where the kernel does not allow it (not Linux, or before 4.0): the
    peak then counts from the process's start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _proc_gb(file: str, key: str) -> float | None:
    """A ``key: N kB`` line of a /proc file in GB (10^9 bytes), or None where it is absent."""
    try:
        for line in Path(file).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_memory_gb() -> float | None:
    """This process's peak resident memory in GB (10^9 bytes): VmHWM from /proc, else
    ``ru_maxrss`` (kB on Linux); None where neither exists. Worker processes a stage
    spawns (evaluation environments) are not in it."""
    peak = _proc_gb("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    except (ImportError, OSError):
        return None


def machine_memory_gb() -> float | None:
    """This machine's memory in GB (MemTotal), or None where /proc does not say."""
    return _proc_gb("/proc/meminfo", "MemTotal")


def code_version() -> dict[str, Any]:
    """``{"laom_version": ..., "git_commit": ..., "git_dirty": ...}`` of the running laom
    (read once per process)."""
    return read_code_version(Path(__file__).resolve().parent.parent)


def read_code_version(root: Path) -> dict[str, Any]:
    """The laom version, and the commit (and whether tracked files differ from it) of the
    checkout at ``root``.

    The commit is read only when ``root`` is itself a git checkout of a Python project
    (an installed copy inside some other repository must not report that repository's
    commit); elsewhere, or without git, it is None and nothing fails.
    """
    from laom import __version__

    out: dict[str, Any] = {"laom_version": __version__, "git_commit": None, "git_dirty": None}
    if not (root / ".git").exists() or not (root / "pyproject.toml").is_file():
        return out

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit and commit.strip():
        out["git_commit"] = commit.strip()
        status = git("status", "--porcelain", "--untracked-files=no")
        out["git_dirty"] = None if status is None else bool(status.strip())
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to write (a file or a
    folder); rename it onto ``path`` when the block ends, or delete it if the block raised.

    The rename is atomic, so ``path`` is at every moment either its old content or the
    complete new one; a kill leaves at most a ``.STEM.tmp-*`` beside it. The temporary
    name keeps ``path``'s suffix, because some writers choose the format by it (imageio)
    or append their own otherwise (numpy's ``.npz``), and is unique per process and call,
    so two writers of one path never write into each other's file.

    ``durable``: flush a file to disk before the rename, for what is expensive to
    recompute (models, checkpoints): without it a power cut can leave the renamed file
    empty on some filesystems.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        if durable and tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole (:func:`atomic_path`): a summary, config or
    record that readers take as finished is never seen truncated."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
