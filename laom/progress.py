"""Progress display for every long-running laom command, on one library (tqdm).

On a terminal a command shows a tqdm bar with its rate and ETA. Anywhere else (a log
file, a pipe, CI) a redrawn bar becomes a run of carriage returns on one line, so the
same call prints a plain line instead, every ``PLAIN_FRACTION`` of the work or every
``PLAIN_SECONDS``, whichever comes first, formatted by tqdm so both read alike.

A caller that runs other commands' work (``laom sweep``) can route every bar made
inside it to one stream with a prefix naming the run (:func:`progress_output`), so the
console shows the current stage even while the stage's log goes to a file.

This is the only module that imports tqdm (an import-linter contract in pyproject.toml
holds the rest of laom to it), so bars, their plain-line stand-ins, the messages printed
between them (:func:`write`) and durations (:func:`format_interval`) look alike everywhere.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

PLAIN_SECONDS = 60.0  # at most this long between two plain lines
PLAIN_FRACTION = 0.1  # and a line at every tenth of the work


@dataclass
class _Output:
    file: IO[str] | None = None
    prefix: str = ""
    plain: bool | None = None
    leave: bool | None = None


_outputs: list[_Output] = []


@contextlib.contextmanager
def progress_output(
    file: IO[str] | None = None, prefix: str = "", plain: bool | None = None, leave: bool | None = None
) -> Iterator[None]:
    """Send the bars made inside the block to ``file``, their names prefixed with
    ``prefix``; ``plain`` forces plain lines (True) or bars (False), ``leave`` whether
    a finished bar stays on screen (False under an outer bar)."""
    _outputs.append(_Output(file, prefix, plain, leave))
    try:
        yield
    finally:
        _outputs.pop()


def is_terminal(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a real stream
        return False


class PlainProgress:
    """tqdm's subset the commands use (update, postfix, description, close), printing a
    whole line now and then instead of redrawing one."""

    def __init__(
        self, total: int | None, desc: str, unit: str, initial: int, file: IO[str],
        seconds: float = PLAIN_SECONDS, fraction: float = PLAIN_FRACTION, unit_scale: bool = False,
    ) -> None:  # fmt: skip
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.unit_scale = unit_scale
        self.n = self.start_n = self.shown_n = initial
        self.seconds = seconds
        self.step = max(1, int(total * fraction)) if total else None
        self.next_n = self._next_after(initial)
        self.start_t = self.shown_t = time.monotonic()
        self.postfix = ""
        self.lines = 0

    def _next_after(self, n: int) -> float:
        return (n // self.step + 1) * self.step if self.step else float("inf")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n >= self.next_n or now - self.shown_t >= self.seconds:
            self.show(now)

    def show(self, now: float | None = None) -> None:
        """Print the current state as one line (``name: 40% 400/1000 [01:23<02:05, 4.8upd/s, ...]``)."""
        from tqdm import tqdm

        now = time.monotonic() if now is None else now
        elapsed = now - self.start_t
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 and self.n > self.start_n else None
        line = tqdm.format_meter(
            self.n, self.total, elapsed, ncols=0, prefix=self.desc, unit=self.unit, unit_scale=self.unit_scale,
            rate=rate, postfix=self.postfix or None, initial=self.start_n,
        )  # fmt: skip
        self.file.write(line.replace("\r", "") + "\n")
        self.file.flush()
        self.shown_n, self.shown_t, self.lines = self.n, now, self.lines + 1
        self.next_n = self._next_after(self.n)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={str(v).strip()}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        """A no-op: a plain line is printed on its schedule, not on every change."""

    def close(self) -> None:
        """The last line, unless the work stopped exactly where a line was printed."""
        if self.n != self.shown_n:
            self.show()
        self.next_n = float("inf")

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    total: int | None, desc: str, unit: str = "it", *, initial: int = 0, enabled: bool = True,
    leave: bool = True, unit_scale: bool = False, file: IO[str] | None = None, plain: bool | None = None,
    seconds: float = PLAIN_SECONDS, fraction: float = PLAIN_FRACTION, **tqdm_kwargs: Any,
) -> Any:  # fmt: skip
    """A tqdm bar on a terminal, a :class:`PlainProgress` elsewhere (``plain`` decides
    when given), or a disabled bar when not ``enabled``; all take ``update(n)``,
    ``set_postfix(...)`` and ``close()``."""
    from tqdm import tqdm

    out = _outputs[-1] if _outputs else _Output()
    file = file or out.file or sys.stderr
    name = f"{out.prefix} {desc}".strip() if out.prefix else desc
    if not enabled:
        return tqdm(total=total, initial=initial, desc=name, unit=unit, disable=True)
    plain = out.plain if plain is None else plain
    if plain is None:
        plain = not is_terminal(file)
    if plain:
        return PlainProgress(total, name, unit, initial, file, seconds, fraction, unit_scale)
    leave = leave if out.leave is None else out.leave
    return tqdm(
        total=total, initial=initial, desc=name, unit=unit, unit_scale=unit_scale, leave=leave, file=file,
        dynamic_ncols=True, **tqdm_kwargs,
    )  # fmt: skip


def write(message: str, file: IO[str] | None = None) -> None:
    """Print ``message`` as a line of its own, above any bar being drawn (a plain
    ``print`` would land in the middle of it)."""
    from tqdm import tqdm

    tqdm.write(message, file=file)


def format_interval(seconds: float) -> str:
    """``[H:]MM:SS``, as the bars show elapsed and remaining time (negative as zero)."""
    from tqdm import tqdm

    return tqdm.format_interval(max(0.0, seconds))
