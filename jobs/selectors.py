"""Kubernetes label selectors and label syntax, for jobs and for hosts of a fleet.

``parse_selector("app=web,tier in (a,b),!canary")`` gives a ``Selector`` whose
``matches(labels)`` is true when every requirement holds (a comma means *and*):

- ``k=v`` (or ``k==v``): k is present with value v;
- ``k!=v``: k is absent, or has another value;
- ``k in (a,b)``: k is present with one of the values;
- ``k notin (a,b)``: k is absent, or has none of the values;
- ``k``: k is present; ``!k``: k is absent.

The empty selector matches everything. Keys and values follow Kubernetes' rules
(``check_labels``). Standard library only: the core, the server, the CLI and the
fleet client share it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidArgument, InvalidSelector

__all__ = ["Operator", "Requirement", "Selector", "check_labels", "parse_selector"]

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"(?:(?P<prefix>{_PREFIX})/)?(?P<name>{_NAME})")
_VALUE = re.compile(rf"(?:{_NAME})?")
_MAX_PREFIX = 253
_WORD = re.compile(r"[A-Za-z0-9._/-]+")
_ECHO = 60  # characters of a bad key or value quoted back in an error


class Operator(enum.Enum):
    """How a requirement compares a label with its values."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    NOT_EXISTS = "!"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a selector: ``key``, an operator and its values."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        present = self.key in labels
        match self.operator:
            case Operator.EXISTS:
                return present
            case Operator.NOT_EXISTS:
                return not present
            case Operator.EQUALS | Operator.IN:
                return present and labels[self.key] in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or labels[self.key] not in self.values

    def __str__(self) -> str:
        match self.operator:
            case Operator.EXISTS:
                return self.key
            case Operator.NOT_EXISTS:
                return f"!{self.key}"
            case Operator.EQUALS | Operator.NOT_EQUALS:
                (value,) = self.values
                return f"{self.key}{self.operator.value}{value}"
            case Operator.IN | Operator.NOT_IN:
                return f"{self.key} {self.operator.value} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements that must all hold; no requirement at all selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every requirement."""
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(map(str, self.requirements))


def parse_selector(text: str) -> Selector:
    """Parse a Kubernetes label selector; ``InvalidSelector`` names the position of an error."""
    return _Parser(text).selector()


def check_labels(labels: Mapping[str, str]) -> None:
    """Raise ``InvalidArgument`` unless every key and value is a valid Kubernetes label.

    A key is an optional DNS-subdomain prefix and ``/``, then a name of at most 63
    characters (alphanumerics, ``-``, ``_``, ``.``, alphanumeric at both ends); a
    value is empty or such a name.
    """
    for key, value in labels.items():
        problem = _key_problem(key)
        if problem:
            raise InvalidArgument(f"bad label key {_quote(key)}: {problem}")
        if not _VALUE.fullmatch(value):
            raise InvalidArgument(
                f"bad value {_quote(value)} for label {key}: at most 63 characters, "
                "alphanumerics, '-', '_' or '.', beginning and ending alphanumeric"
            )


def _key_problem(key: str) -> str | None:
    match = _KEY.fullmatch(key)
    if match is None:
        return (
            "a key is [prefix/]name: a name of at most 63 characters, alphanumerics, "
            "'-', '_' or '.', beginning and ending alphanumeric; a prefix a DNS subdomain"
        )
    prefix = match["prefix"]
    if prefix is not None and len(prefix) > _MAX_PREFIX:
        return f"the prefix is longer than {_MAX_PREFIX} characters"
    return None


def _quote(text: str) -> str:
    return repr(text if len(text) <= _ECHO else text[:_ECHO] + "…")


class _Parser:
    """A recursive-descent parser over the selector's text, tracking positions."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def selector(self) -> Selector:
        requirements: list[Requirement] = []
        self._skip_space()
        if self._at_end():
            return Selector()
        while True:
            requirements.append(self._requirement())
            self._skip_space()
            if self._at_end():
                return Selector(tuple(requirements))
            self._expect(",")

    def _requirement(self) -> Requirement:
        self._skip_space()
        if self._peek() == "!":
            self._pos += 1
            self._skip_space()
            return Requirement(self._key(), Operator.NOT_EXISTS)
        key = self._key()
        self._skip_space()
        if self._at_end() or self._peek() == ",":
            return Requirement(key, Operator.EXISTS)
        if self._text.startswith("!=", self._pos):
            self._pos += 2
            return Requirement(key, Operator.NOT_EQUALS, frozenset([self._value()]))
        if self._text.startswith("==", self._pos):
            self._pos += 2
            return Requirement(key, Operator.EQUALS, frozenset([self._value()]))
        if self._peek() == "=":
            self._pos += 1
            return Requirement(key, Operator.EQUALS, frozenset([self._value()]))
        start = self._pos
        word = self._word()
        if word == "in":
            return Requirement(key, Operator.IN, self._set())
        if word == "notin":
            return Requirement(key, Operator.NOT_IN, self._set())
        raise self._error("expected '=', '==', '!=', 'in', 'notin', ',' or the end", start)

    def _set(self) -> frozenset[str]:
        self._skip_space()
        self._expect("(")
        self._skip_space()
        if self._peek() == ")":
            raise self._error("the set of values is empty", self._pos)
        values: list[str] = []
        while True:
            values.append(self._value())
            self._skip_space()
            if self._peek() == ")":
                self._pos += 1
                return frozenset(values)
            self._expect(",")

    def _key(self) -> str:
        start = self._pos
        key = self._word()
        if not key:
            raise self._error("expected a label key", start)
        problem = _key_problem(key)
        if problem:
            raise self._error(f"bad key {_quote(key)}: {problem}", start)
        return key

    def _value(self) -> str:
        self._skip_space()
        start = self._pos
        value = self._word()
        if not _VALUE.fullmatch(value):
            raise self._error(f"bad value {_quote(value)}", start)
        return value

    def _word(self) -> str:
        match = _WORD.match(self._text, self._pos)
        if match is None:
            return ""
        self._pos = match.end()
        return match[0]

    def _expect(self, char: str) -> None:
        self._skip_space()
        if self._peek() != char:
            found = "the end" if self._at_end() else repr(self._peek())
            raise self._error(f"expected {char!r}, found {found}", self._pos)
        self._pos += 1

    def _peek(self) -> str:
        return self._text[self._pos : self._pos + 1]

    def _at_end(self) -> bool:
        return self._pos >= len(self._text)

    def _skip_space(self) -> None:
        while self._peek().isspace():
            self._pos += 1

    def _error(self, reason: str, position: int) -> InvalidSelector:
        return InvalidSelector(self._text, position, reason)
