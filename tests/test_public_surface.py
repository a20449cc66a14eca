"""The public surface: each public module offers exactly its ``__all__``, and whatever
the public API takes or returns can be imported from a public module."""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

PUBLIC = [
    "jobs",
    "jobs.server",
    "jobs.client",
    "jobs.errors",
    "jobs.selectors",
    "jobs.fleet",
    "jobs.testing",
    "pki",
]
"""Every public module of the distribution's library packages (``cli`` is a program)."""
OURS = {"jobs", "pki", "cli", "gen"}

INTERNAL_CONSTRUCTORS = {"Job.__init__", "Job.restore", "LogReader.__init__"}
"""Jobs and readers are made by a ``JobManager`` from its own internals, never by a user."""
SEAMS = {
    ("JobManager.__init__", "containment"),
    ("ServerIdentity.build", "containment"),
    ("Capabilities.probe", "containment"),
}
"""Left to the host by default (the best it offers); tests pass a given implementation."""


def _offered(module: ModuleType) -> set[str]:
    """The names ``module`` offers: public, not a module, and not imported for its own
    use (from another project, or from the public module that offers it)."""
    elsewhere = {
        id(getattr(other, n))
        for other in map(importlib.import_module, PUBLIC)
        if other is not module
        for n in other.__all__
    }
    names = set()
    for name in dir(module):  # not vars(): `jobs` imports its names on first use
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, ModuleType):
            continue
        if type(value).__module__ == "__future__":
            continue  # `from __future__ import annotations` leaves a name behind
        origin = getattr(value, "__module__", None) if callable(value) else None
        if origin is not None and origin.partition(".")[0] not in OURS:
            continue  # Path, Channel, ...
        if name not in module.__all__ and id(value) in elsewhere:
            continue  # jobs.errors.InvalidArgument, raised by jobs.selectors
        names.add(name)
    return names


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_are_exactly_all(name: str) -> None:
    module = importlib.import_module(name)
    assert _offered(module) == set(module.__all__)
    assert len(module.__all__) == len(set(module.__all__))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_nothing_public_is_importable_only_from_a_private_module() -> None:
    # Whatever a public function, method, property or field takes or returns, if it
    # is ours, a user must be able to import it without reaching into a `_` module.
    modules = [importlib.import_module(name) for name in PUBLIC]
    exported = {id(getattr(module, name)) for module in modules for name in module.__all__}
    stranded = set()
    for where, hints in _public_signatures():
        for parameter, hint in hints.items():
            if (where, parameter) in SEAMS:
                continue
            for kind in _types_in(hint):
                # Generated messages live in public modules (gen.jobs.v1): importable.
                private = any(part.startswith("_") for part in kind.__module__.split("."))
                ours = kind.__module__.partition(".")[0] in OURS
                if ours and private and id(kind) not in exported:
                    stranded.add(f"{where}({parameter}): {kind.__module__}.{kind.__qualname__}")
    assert sorted(stranded) == []


def _public_signatures() -> Iterator[tuple[str, dict[str, object]]]:
    """(where, annotations) of every public callable and class of the public modules."""
    for module in map(importlib.import_module, PUBLIC):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value):
                fields = typing.get_type_hints(value)
                yield name, {k: v for k, v in fields.items() if not k.startswith("_")}
                for attribute, member in vars(value).items():
                    where = f"{name}.{attribute}"
                    private = attribute.startswith("_") and not attribute.endswith("__")
                    if private or where in INTERNAL_CONSTRUCTORS:
                        continue
                    function = _function(member)
                    if function is not None:
                        yield where, typing.get_type_hints(function)
            elif callable(value):
                yield name, typing.get_type_hints(value)


def _function(member: object) -> Callable[..., object] | None:
    if isinstance(member, property):
        return member.fget
    if isinstance(member, (staticmethod, classmethod)):
        return member.__func__
    return member if inspect.isfunction(member) else None


def _types_in(hint: object) -> Iterator[type]:
    """The classes a type annotation names, through unions and generics."""
    if isinstance(hint, type):
        yield hint
    origin = typing.get_origin(hint)
    if isinstance(origin, type):
        yield origin
    for argument in typing.get_args(hint):
        yield from _types_in(argument)
