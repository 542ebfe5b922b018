"""Typed records of the JSON objects laom writes and reads back: the stage summaries
(``RUN/summary.json``), a sweep's ``runs.jsonl`` lines, the metadata saved beside a model.

A figure read by its key in several modules was a string in each of them: a typo, or a
key renamed in one writer, read as None with no error. A record is a dataclass whose
fields, in order, are the keys of its JSON object, so a reader names an attribute a
linter and a type checker know, and :meth:`Record.to_json` writes the object in the
layout every earlier laom wrote (field order is key order).

Keys a record does not name are kept, not dropped (:attr:`Record.extra`, written back
after the named fields): the files outlive the code. A ``runs.jsonl`` line written by a
newer laom and rewritten by this one (re-normalised, moved aside by ``--force``) must
come back with what it recorded, and a key an older laom wrote that this one no longer
names must not vanish the first time a file passes through. A key a file lacks (an older
laom did not compute that figure) reads as the field's default, None for a figure, and
stays out of what the record writes back until it is set: a policy's metadata copied
into the next stage's file (the decoder's) keeps the keys its file had, not this laom's.

Stdlib only, and below every package that writes or reads a record.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, ClassVar, TypeVar

from laom.errors import LaomError

R = TypeVar("R", bound="Record")


def json_field(
    default: Any = None, *, factory: Callable[[], Any] | None = None, parse: Callable[[Any], Any] | None = None,
    omit_none: bool = False, place: int = 0, kw_only: bool = False,
) -> Any:  # fmt: skip
    """A record field: ``parse`` turns its JSON value (never None) into the field's type
    (a nested record); ``omit_none`` leaves the key out while the field is None (a figure
    some runs do not have, written only when they do); ``place`` > 0 writes it after the
    fields of place 0, in that order (what a base class adds at the end of every record
    of its kind: the code version)."""
    metadata = {"parse": parse, "omit_none": omit_none, "place": place}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, kw_only=kw_only)
    return field(default=default, metadata=metadata, kw_only=kw_only)


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name != "extra"]


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    return value == default


def plain(value: Any) -> Any:
    """``value`` with every record in it replaced by its JSON object."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def dict_of(parse: Callable[[Any], R]) -> Callable[[Mapping[str, Any]], dict[str, R]]:
    """The parser of a JSON object whose values are each one record (``stages``)."""

    def parse_all(value: Mapping[str, Any]) -> dict[str, R]:
        return {k: parse(v) for k, v in value.items()}

    return parse_all


@dataclass
class Record:
    """A JSON object as a dataclass: :meth:`from_json` and :meth:`to_json` round-trip it."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    # the named fields its file lacked (set per instance by from_json)
    _absent: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record of ``data``; LaomError when it is no JSON object or lacks a field
        that has no default (the caller says which file)."""
        if not isinstance(data, Mapping):
            raise LaomError(
                f"expected a JSON object for {cls.__name__}, found {type(data).__name__}"
            )
        named = _fields(cls)
        missing = [
            f.name
            for f in named
            if f.name not in data and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise LaomError(f"not a {cls.__name__}: no {', '.join(missing)}")
        values: dict[str, Any] = {}
        for f in named:
            if f.name in data:
                value, parse = data[f.name], f.metadata.get("parse")
                values[f.name] = parse(value) if parse is not None and value is not None else value
        names = {f.name for f in named}
        record = cls(**values, extra={k: v for k, v in data.items() if k not in names})
        record._absent = frozenset(f.name for f in named if f.name not in data)
        return record

    def replaced(self: R, **changes: Any) -> R:
        """A copy with ``changes``: unlike ``dataclasses.replace`` it keeps what the
        record was read with (the keys kept in ``extra``, those its file lacked)."""
        new = copy.copy(self)
        new.extra = dict(self.extra)
        for name, value in changes.items():
            if name not in {f.name for f in _fields(type(self))}:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(new, name, value)
        return new

    def to_json(self) -> dict[str, Any]:
        """The JSON object: the named fields in order (a base class's late fields last;
        one its file lacked only once set), then the keys kept from that file."""
        out: dict[str, Any] = {}
        absent = self._absent
        for f in sorted(_fields(type(self)), key=lambda f: f.metadata.get("place", 0)):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            if f.name in absent and _is_default(f, value):
                continue
            out[f.name] = plain(value)
        for k, v in self.extra.items():
            out.setdefault(k, plain(v))
        return out
