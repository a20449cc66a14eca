"""Kubernetes label selectors: parsing (with the position of an error), matching, label syntax."""

from __future__ import annotations

import pytest

from jobs.errors import InvalidArgument, InvalidSelector
from jobs.selectors import Operator, check_labels, parse_selector

LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("   ", True),
        ("app=web", True),
        ("app==web", True),
        ("app = web", True),
        ("app=api", False),
        ("app!=api", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("tier in (front,back)", True),
        ("tier in (back)", False),
        ("missing in (a)", False),
        ("tier notin (back, db)", True),
        ("tier notin (front)", False),
        ("missing notin (a)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front,env=prod", True),
        ("app=web, tier=back", False),
        ("app=web,!canary,env in (prod,staging)", True),
        ("app=", False),
        ("example.com/team", False),
    ],
)
def test_matching(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


def test_an_empty_value_matches_an_empty_label() -> None:
    assert parse_selector("app=").matches({"app": ""})
    assert parse_selector("example.com/team=a").matches({"example.com/team": "a"})


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("app=web,", 8),
        (",app", 0),
        ("app in web", 7),
        ("app in (a,b", 11),
        ("app notin ()", 11),
        ("app web", 4),
        ("app=w@b", 5),
        ("=web", 0),
        ("-app=x", 0),
        ("app=web tier=x", 8),
        ("!", 1),
    ],
)
def test_errors_name_the_position(text: str, position: int) -> None:
    with pytest.raises(InvalidSelector) as caught:
        parse_selector(text)
    assert caught.value.position == position, caught.value
    assert f"position {position}" in str(caught.value)
    assert isinstance(caught.value, InvalidArgument)


def test_round_trip() -> None:
    text = "app=web,tier in (a,b),!canary,env!=dev,team notin (x),zone"
    selector = parse_selector(text)
    assert [r.operator for r in selector.requirements] == [
        Operator.EQUALS,
        Operator.IN,
        Operator.NOT_EXISTS,
        Operator.NOT_EQUALS,
        Operator.NOT_IN,
        Operator.EXISTS,
    ]
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize(
    "labels",
    [
        {"app": "web"},
        {"app.kubernetes.io/name": "x-1_2.3"},
        {"a": ""},
        {"k" * 63: "v" * 63},
    ],
)
def test_valid_labels(labels: dict[str, str]) -> None:
    check_labels(labels)


@pytest.mark.parametrize(
    "labels",
    [
        {"": "x"},
        {"-app": "x"},
        {"app-": "x"},
        {"k" * 64: "x"},
        {"app": "v" * 64},
        {"app": "-x"},
        {"app": "a b"},
        {"Bad_Prefix/x": "y"},
        {"a/b/c": "y"},
        {"app": "x" * 100_000},
    ],
)
def test_invalid_labels(labels: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_labels(labels)
    assert len(str(caught.value)) < 400
