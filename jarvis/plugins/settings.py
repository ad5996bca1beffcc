"""A plugin's settings: each declared with its default and, if it likes, a range, choices and a
description. Every value is checked against its declaration before it is stored, so a plugin only
ever sees values it declared, and the Plugins view can draw the right field for each."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SettingValue = bool | int | float | str

# Beyond 2**53 a browser's number field (a double) silently rounds, and an integer wider than 64 bits
# cannot be stored as a number everywhere: a whole-number setting stays within this range.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_TEXT_CHARS = 1000
MAX_NAME_CHARS = 100
_KINDS: dict[type, str] = {bool: 'bool', int: 'int', float: 'float', str: 'str'}


class SettingError(ValueError):
    """A value (or a declaration) that does not fit; the text says what would."""


@dataclass(frozen=True)
class Setting:
    """One setting: ``Setting(6, min=1, max=100, description='Sides of each die')``."""

    default: SettingValue
    description: str = ''
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple[SettingValue, ...] = ()

    def __post_init__(self) -> None:
        kind = type(self.default)
        if kind not in _KINDS:
            raise SettingError(f'a setting is a bool, int, float or str, not {kind.__name__}')
        if not isinstance(self.description, str):
            raise SettingError('description must be text')
        for bound in (self.min, self.max):
            if bound is None:
                continue
            if kind not in (int, float):
                raise SettingError('only a number setting has a min or max')
            if type(bound) not in (int, float) or not math.isfinite(bound):
                raise SettingError('min and max must be finite numbers')
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SettingError(f'min {self.min} is more than max {self.max}')
        object.__setattr__(self, 'choices', tuple(self.choices))
        for choice in self.choices:
            if not (type(choice) is kind or (kind is float and type(choice) is int)):
                raise SettingError(f'every choice must be {_KINDS[kind]} like the default')
        try:
            self.check(self.default)
        except SettingError as error:
            raise SettingError(f'the default {self.default!r} is not allowed: {error}') from None

    @property
    def kind(self) -> str:
        """'bool', 'int', 'float' or 'str'."""
        return _KINDS[type(self.default)]

    @property
    def lowest(self) -> int | float | None:
        if self.kind == 'int':
            return max(self.min, -MAX_SAFE_INTEGER) if self.min is not None else -MAX_SAFE_INTEGER
        return self.min

    @property
    def highest(self) -> int | float | None:
        if self.kind == 'int':
            return min(self.max, MAX_SAFE_INTEGER) if self.max is not None else MAX_SAFE_INTEGER
        return self.max

    def check(self, value: object, name: str = 'The value') -> SettingValue:
        """``value`` as it is stored (2.0 for a whole number becomes 2), or SettingError saying what is allowed."""
        kind = self.kind
        if kind == 'bool':
            if type(value) is not bool:
                raise SettingError(f'{name} must be true or false.')
            checked: SettingValue = value
        elif kind == 'str':
            if type(value) is not str or len(value) > MAX_TEXT_CHARS:
                raise SettingError(f'{name} must be text of at most {MAX_TEXT_CHARS:,} characters.')
            if not is_storable(value):
                raise SettingError(f'{name} contains a character that cannot be stored (a lone surrogate).')
            checked = value
        else:
            checked = self._number(value, name)
        if self.choices and checked not in self.choices:
            raise SettingError(f'{name} must be one of: {", ".join(map(str, self.choices))}.')
        return checked

    def _number(self, value: object, name: str) -> int | float:
        whole = self.kind == 'int'
        if type(value) is float and whole and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not (type(value) is int or (type(value) is float and not whole)):
            raise SettingError(f'{name} must be {self._describe()}.')
        if type(value) is float and not math.isfinite(value):
            raise SettingError(f'{name} must be {self._describe()}.')
        lowest, highest = self.lowest, self.highest
        if (lowest is not None and value < lowest) or (highest is not None and value > highest):
            raise SettingError(f'{name} must be {self._describe()}.')
        return float(value) if not whole else value  # type: ignore[return-value]

    def _describe(self) -> str:
        noun = 'a whole number' if self.kind == 'int' else 'a number'
        lowest, highest = self.lowest, self.highest
        if lowest is not None and highest is not None:
            return f'{noun} from {_number(lowest)} to {_number(highest)}'
        if lowest is not None:
            return f'{noun} of at least {_number(lowest)}'
        if highest is not None:
            return f'{noun} of at most {_number(highest)}'
        return noun

    def to_dict(self) -> dict[str, Any]:
        return {'type': self.kind, 'default': self.default, 'min': self.lowest, 'max': self.highest,
                'choices': list(self.choices) or None, 'description': self.description}


def declared_settings(declared: dict[str, Any]) -> dict[str, Setting]:
    """A plugin's ``settings`` as Setting objects: a plain default becomes ``Setting(default)``."""
    if not isinstance(declared, dict):
        raise SettingError('settings must be a dict of names and defaults')
    result: dict[str, Setting] = {}
    for key, value in declared.items():
        if not isinstance(key, str) or not key or len(key) > MAX_NAME_CHARS or not is_storable(key):
            raise SettingError(f'setting name {shown(key)!r} must be text of 1 to {MAX_NAME_CHARS} characters')
        try:
            result[key] = value if isinstance(value, Setting) else Setting(value)
        except SettingError as error:
            raise SettingError(f'setting "{key}": {error}') from None
    return result


def is_storable(text: str) -> bool:
    """Whether text encodes as UTF-8 (a lone surrogate from a broken client does not)."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def shown(value: object, limit: int = 60) -> str:
    """Text from a request, safe to put into an error message: shortened, each lone surrogate replaced."""
    text = value if isinstance(value, str) else repr(value)
    return ''.join('\ufffd' if '\ud800' <= char <= '\udfff' else char for char in text[:limit])


def _number(value: int | float) -> str:
    return f'{value:,}' if isinstance(value, int) else f'{value:g}'
