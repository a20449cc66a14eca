"""Choosing hosts with ``--on``: a Kubernetes label selector, or host names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jobs.selectors import Selector, parse_selector

from ._errors import NoMatchingHost
from ._inventory import Host

__all__ = ["Selection", "parse_selection", "select"]

_OPERATORS = re.compile(r"[=!()\s]")


@dataclass(frozen=True)
class Selection:
    """What ``--on`` asked for: host names, or a label selector (never both)."""

    text: str
    names: tuple[str, ...] | None
    selector: Selector | None

    def matches(self, host: Host) -> bool:
        """Whether ``host`` is selected."""
        if self.names is not None:
            return host.name in self.names
        assert self.selector is not None
        return self.selector.matches(host.labels)


def parse_selection(text: str, known: Iterable[str] = ()) -> Selection:
    """``name1,name2`` when every item is a known host name, else a label selector.

    A bare word that names a host selects that host; one that does not is a
    label that must exist (``gpu``), as in Kubernetes. Raises
    ``jobs.errors.InvalidSelector`` (with ``.position``) for a selector that
    does not parse. The empty text selects every host.
    """
    items = [item.strip() for item in text.split(",")]
    names = set(known)
    if text.strip() and not _OPERATORS.search(text) and all(item in names for item in items):
        return Selection(text, tuple(dict.fromkeys(items)), None)
    return Selection(text, None, parse_selector(text))


def select(hosts: Iterable[Host], selection: Selection) -> list[Host]:
    """The selected hosts in the order given; ``NoMatchingHost`` when there is none."""
    pool = list(hosts)
    chosen = [host for host in pool if selection.matches(host)]
    if not chosen:
        raise NoMatchingHost(selection.text, len(pool))
    return chosen
