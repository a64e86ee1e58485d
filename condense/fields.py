"""Typed option checks driven by a dataclass's field types, plus ranges kept as data by field name.

Every config (method, audit check, protocol, expert buffer) checks user values the same way: an
``int`` field takes integers (not booleans, not floats), a ``float`` field finite numbers, ``bool``
true or false, ``str`` strings, ``dict`` JSON objects, ``Optional[...]`` also null, and a field named
in the caller's range table must lie in its range. The first problem is one CondenseError sentence.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from .errors import CondenseError

INT64 = 2**63 - 1


@dataclass(frozen=True)
class Range:
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, v: float) -> bool:
        above = v > self.low if self.open_low else v >= self.low
        return above and (v < self.high if self.open_high else v <= self.high)

    def __str__(self) -> str:
        low, high = (str(int(v)) if float(v).is_integer() else f"{v:g}" for v in (self.low, self.high))
        if self.high == math.inf:
            return f"{'>' if self.open_low else '≥'} {low}"
        if self.low == -math.inf:
            return f"{'<' if self.open_high else '≤'} {high}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


POSITIVE = Range(0, open_low=True)
NON_NEGATIVE = Range(0)
AT_LEAST_1 = Range(1)
FRACTION = Range(0, 1, open_high=True)  # momentum: [0, 1)
UNIT = Range(0, 1)
SEED = Range(0, 2**32 - 1)              # every derived seed (seeding.STREAMS) then fits torch's 64 bits


class Number:
    """Type marker: any int or float, NaN and infinities included (e.g. a training loss that diverged)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def describe(hint: Any, rng: Optional[Range] = None) -> str:
    """What a value of type ``hint`` (within ``rng``) looks like, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(describe(a, rng) for a in rest) + (" or null" if len(rest) < len(args) else "")
    words = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
             Number: "a number"}.get(hint)
    if words is None:
        words = ("a JSON object" if hint is dict or origin is dict else
                 "a list" if hint is list or origin in (list, tuple) else getattr(hint, "__name__", str(hint)))
    return f"{words} {rng}" if rng is not None and hint in (int, float) else words


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as JSON gives it) has type ``hint``; list/tuple/dict contents are checked too."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Union:
        return any(fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value) and -INT64 - 1 <= value <= INT64
    if hint is float:
        return _is_number(value)
    if hint is Number:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and (not args or fits(v, args[1]))
                                               for k, v in value.items())
    if hint is list or origin is list:
        return isinstance(value, (list, tuple)) and (not args or all(fits(v, args[0]) for v in value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args))
    return isinstance(value, hint) if isinstance(hint, type) else True


def check_value(name: str, value: Any, hint: Any, rng: Optional[Range] = None) -> None:
    """One value against a type and a range; ``name`` starts the sentence (e.g. "--runs")."""
    if not fits(value, hint) or (rng is not None and _is_number(value) and value not in rng):
        raise CondenseError(f"{name} must be {describe(hint, rng)}, got {value!r}.")


def check_fields(cls: type, values: Mapping[str, Any], ranges: Mapping[str, Range], where: str) -> None:
    """Check every value in ``values`` against the type of ``cls``'s field of that name and its range, if any."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values:
            check_value(f"{where} option '{f.name}'", values[f.name], hints[f.name], ranges.get(f.name))
