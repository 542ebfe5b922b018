"""Config fields as command-line options, from one source: each field's declaration.

A stage config is a dataclass whose fields are declared with :func:`opt`, which carries
the field's one-line help and its valid range. Everything a user meets comes from
there: ``--help`` lists every field with its default (:func:`field_help`; the parsers
that show it are in :mod:`laom.training.cli`), ``--field value`` is read the way a
user types it, lists included (``16,32,32``, ``"[16, 32, 32]"`` or ``16 32 32``;
:func:`normalize_overrides`), and :func:`check_fields` refuses an out-of-range value,
naming it, before a stage reads any data. A subclass that only changes a default
(``batch_size: int = 64``) keeps the base field's help and range.

This module imports no torch: the stage modules import :func:`opt` from here, and help
is built only when asked for.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from laom.errors import LaomError

META_KEY = "laom"

# Fields that change how fast a stage runs or what it logs, never what it computes: a run
# may be resumed with other values (RunDir), and a pipeline stage's key leaves them out,
# so changing one neither refuses a resume nor retrains a stage. One list for both.
NON_RESULT_FIELDS = frozenset({
    "compile", "device", "threads", "checkpoint_every", "log_every", "progress", "tensorboard",
    "wandb", "wandb_project", "curve_every", "curve_episodes", "curve_workers",
    *("snapshot_every", "snapshot_episodes", "snapshot_workers"),
})  # fmt: skip

# Of those, the ones that only add a learning curve and came after sweeps had recorded
# runs: a sweep's run key leaves them out too, so turning a curve on in a running study
# retrains no recorded run (runs recorded before have no such curve). The older curve
# fields (curve_every ...) stay in the keys the studies were recorded with.
CURVE_ONLY_FIELDS = frozenset({"snapshot_every", "snapshot_episodes", "snapshot_workers"})

# Result fields added after runs and cached stages were written without them, with the
# default that reproduces what those runs did. At that default a field is left out of a
# stage's cache key, and an older run's config without it still resumes, so adding an
# option retrains nothing.
ADDED_FIELDS: dict[str, Any] = {"policy_ema": 0.0, "epoch_transitions": 0}


@dataclass(frozen=True)
class Spec:
    """What a field means and which values it takes (bounds are inclusive ``ge``/``le``
    or exclusive ``gt``/``lt``; ``item_ge`` bounds every element of a list)."""

    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    item_ge: float | None = None
    nonempty: bool = False
    pattern: str | None = None  # full-match regex for a string field
    expected: str = ""  # what ``pattern`` means, for the error message


def opt(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] = (),
    item_ge: float | None = None,
    nonempty: bool = False,
    pattern: str | None = None,
    expected: str = "",
) -> Any:
    """A dataclass field with its help and valid range (see :class:`Spec`)."""
    spec = Spec(help, ge, gt, le, lt, tuple(choices), item_ge, nonempty, pattern, expected)
    if isinstance(default, (list, dict, set)):
        raise TypeError("opt(): use a tuple for a list default")
    return dataclasses.field(default=default, metadata={META_KEY: spec})


def spec_of(cls: type, name: str) -> Spec:
    """The field's :class:`Spec`, from the nearest class in the MRO that declares one."""
    for klass in cls.__mro__:
        field = klass.__dict__.get("__dataclass_fields__", {}).get(name)
        if field is not None and META_KEY in field.metadata:
            return field.metadata[META_KEY]
    return Spec()


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Kind:
    """A field's type as the command line sees it."""

    base: str  # int | float | bool | str | list
    item: str = ""  # element base of a list
    optional: bool = False


def _base(tp: Any) -> str:
    return {int: "int", float: "float", bool: "bool", str: "str"}.get(tp, "str")


def kind_of(tp: Any) -> Kind:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return dataclasses.replace(kind_of(args[0]), optional=True)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return Kind("list", _base(args[0]) if args else "str")
    return Kind(_base(tp))


def kinds(cls: type) -> dict[str, Kind]:
    hints = typing.get_type_hints(cls)
    return {f.name: kind_of(hints[f.name]) for f in dataclasses.fields(cls)}


def metavar(kind: Kind, spec: Spec) -> str:
    if spec.choices:
        return "{" + ",".join(spec.choices) + "}"
    if kind.base == "list":
        item = kind.item.upper()
        return f"{item},{item},..."
    if kind.base == "bool":
        return "{true,false}"
    name = {"int": "INT", "float": "NUM", "str": "STR"}[kind.base]
    return f"{name}|null" if kind.optional else name


def show(value: Any) -> str:
    """A value the way a user would type it."""
    if isinstance(value, (tuple, list)):
        return ",".join(show(v) for v in value) if value else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------- --field value


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NULL = {"null", "none", ""}


def _number(name: str, text: str, base: str) -> int | float:
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        what = "an integer" if base == "int" else "a number"
        raise LaomError(f"--{name} {text}: expected {what}") from None
    if base == "int":
        if not math.isfinite(number) or not number.is_integer():
            raise LaomError(f"--{name} {text}: expected an integer")
        return int(number)
    return number


def _items(text: str) -> list[str]:
    """``16,32,32`` / ``[16, 32, 32]`` / ``(16 32 32)`` -> ["16", "32", "32"]."""
    body = text.strip()
    if len(body) >= 2 and body[0] + body[-1] in ("[]", "()"):
        body = body[1:-1]
    return [t for t in re.split(r"[\s,]+", body) if t]


def _canonical(name: str, kind: Kind, values: list[str]) -> str:
    """The value(s) typed for ``--name`` as the one string draccus parses unambiguously."""
    if kind.base == "list":
        texts = [item for v in values for item in _items(v)]
        if len(texts) == 1 and texts[0].lower() in _NULL:
            texts = []
        if kind.item in ("int", "float"):
            parsed = []
            for t in texts:
                try:
                    parsed.append(_number(name, t, kind.item))
                except LaomError:
                    what = "an integer" if kind.item == "int" else "a number"
                    raise LaomError(
                        f"--{name} {' '.join(values)}: element {t!r} is not {what} "
                        f"(write a list as 16,32,32)"
                    ) from None
            return "[" + ", ".join(str(p) for p in parsed) + "]"
        return "[" + ", ".join(texts) + "]"
    if not values:
        if kind.base == "bool":
            return "true"
        raise LaomError(f"--{name} needs a value")
    if len(values) > 1:
        raise LaomError(f"--{name} takes one value, got {len(values)}: {' '.join(values)}")
    text = values[0]
    if kind.optional and text.strip().lower() in _NULL:
        return "null"
    if kind.base == "bool":
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return "true" if low in _TRUE else "false"
        raise LaomError(f"--{name} {text}: expected true or false")
    if kind.base in ("int", "float"):
        return repr(_number(name, text, kind.base))
    return text


def override_items(tokens: Sequence[str], usage: str) -> Iterator[tuple[str, list[str]]]:
    """``--name value``, ``--name=value`` and ``--name v1 v2`` tokens as (name, values).

    The one reader of stage settings on a command line (``laom train``, ``laom pipeline``
    and ``laom sweep`` alike), so a setting typed for one command means the same in the
    others. A name's values run to the next ``--`` token, so a list may be given as
    separate words; the name is returned as typed (``lam.hidden-dim``). A generator: a
    caller that refuses a name does so before a stray token further on is reported.
    ``usage`` ends the error for a token that is not a flag.
    """
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise LaomError(f"unexpected argument {token!r} ({usage})")
        name, eq, value = token[2:].partition("=")
        values = [value] if eq else []
        i += 1
        while i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        yield name, values


def without_fields(tokens: Sequence[str], fields: frozenset[str]) -> list[str]:
    """``tokens`` less the settings of ``fields`` (as ``--field`` or ``--stage.field``)."""
    out: list[str] = []
    for name, values in override_items(tokens, "a setting"):
        if name.rpartition(".")[2].replace("-", "_") not in fields:
            out += [f"--{name}", *values]
    return out


def normalize_overrides(cls: type, tokens: Sequence[str]) -> list[str]:
    """``--field value`` tokens as typed -> ``["--field", canonical]`` pairs for draccus.

    Tokens are read by :func:`override_items`; ``--flag-name`` works too. Unknown fields
    and values of the wrong type are one-line LaomErrors naming the flag.
    """
    field_kinds = kinds(cls)
    out: list[str] = []
    for typed, values in override_items(tokens, "config fields are set with --FIELD VALUE"):
        name = typed.replace("-", "_")
        if name not in field_kinds:
            moved = getattr(cls, "MOVED", {}).get(name)
            if moved:  # a field the stage had before it was split
                raise LaomError(f"--{name}: a setting of stage {moved} now (laom train {moved} ... --{name} VALUE)")
            close = difflib.get_close_matches(name, sorted(field_kinds), n=3)
            hint = f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""
            raise LaomError(f"unknown option --{name}{hint}")
        out += [f"--{name}", _canonical(name, field_kinds[name], values)]
    return out


# --------------------------------------------------------------------------- ranges


def _bounds_text(spec: Spec) -> str:
    parts = []
    for bound, op in ((spec.gt, ">"), (spec.ge, ">="), (spec.lt, "<"), (spec.le, "<=")):
        if bound is not None:
            parts.append(f"{op} {show(bound)}")
    return " and ".join(parts)


def constraint_text(kind: Kind, spec: Spec) -> str:
    """The valid values in words ("an integer >= 1", "one of ema, stopgrad")."""
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.pattern:
        return spec.expected or f"a value matching {spec.pattern}"
    if kind.base == "list":
        what = "a list" if not spec.nonempty else "a non-empty list"
        return what + (f" of values >= {show(spec.item_ge)}" if spec.item_ge is not None else "")
    if kind.base == "bool":
        return "true or false"
    bounds = _bounds_text(spec)
    noun = {"int": "an integer", "float": "a number", "str": "a string"}[kind.base]
    text = f"{noun} {bounds}" if bounds else noun
    return text + (" or null" if kind.optional else "")


def _fails(value: float, spec: Spec) -> bool:
    return (
        (spec.gt is not None and not value > spec.gt)
        or (spec.ge is not None and not value >= spec.ge)
        or (spec.lt is not None and not value < spec.lt)
        or (spec.le is not None and not value <= spec.le)
    )


def check_value(name: str, value: Any, kind: Kind, spec: Spec) -> None:
    """LaomError ``--name VALUE: expected ...`` unless ``value`` is valid for the field."""

    def bad() -> LaomError:
        return LaomError(f"--{name} {show(value)}: expected {constraint_text(kind, spec)}")

    if value is None:
        if not kind.optional:
            raise bad()
        return
    if kind.base == "bool":
        if not isinstance(value, bool):
            raise bad()
        return
    if kind.base == "list":
        if not isinstance(value, (tuple, list)) or (spec.nonempty and not value):
            raise bad()
        for item in value:
            if isinstance(item, bool) or (kind.item in ("int", "float") and not isinstance(item, (int, float))):
                raise bad()
            if kind.item == "int" and not isinstance(item, int):
                raise bad()
            if spec.item_ge is not None and not item >= spec.item_ge:
                raise bad()
        return
    if kind.base in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        if kind.base == "int" and not isinstance(value, int):
            raise bad()
        if not math.isfinite(value) or _fails(value, spec):
            raise bad()
        return
    if not isinstance(value, str):
        raise bad()
    if spec.choices and value not in spec.choices:
        raise bad()
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise bad()


def check_fields(cfg: Any) -> None:
    """Every field of the config ``cfg`` against its declared type and range."""
    cls = type(cfg)
    for name, kind in kinds(cls).items():
        check_value(name, getattr(cfg, name), kind, spec_of(cls, name))


# --------------------------------------------------------------------------- --help


def default_of(cls: type, name: str) -> Any:
    field = cls.__dataclass_fields__[name]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def field_help(variants: dict[str, type], name: str) -> str:
    """One line: what the field does, its valid values and default(s).

    ``variants`` maps a label to a config class (lam's methods); where their defaults
    differ each is shown."""
    first = next(iter(variants.values()))
    spec = spec_of(first, name)
    shown = {label: show(default_of(cls, name)) for label, cls in variants.items()}
    if len(set(shown.values())) == 1:
        default = next(iter(shown.values()))
    else:
        default = ", ".join(f"{label} {value}" for label, value in shown.items())
    limits = _bounds_text(spec)
    if spec.item_ge is not None:
        limits = f"each >= {show(spec.item_ge)}"
    return f"{spec.help} ({limits + '; ' if limits else ''}default: {default})".replace("%", "%%")
