"""The token bucket and the connection count, on a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from jobs.server._limits import REPORT_INTERVAL, CallRate, Connections


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    rate = CallRate(2.0, 3, clock=clock)
    assert [rate.take("alice") for _ in range(4)] == [True, True, True, False]
    assert rate.take("bob")  # a bucket per account
    clock.now += 0.5  # one token back
    assert [rate.take("alice") for _ in range(2)] == [True, False]
    clock.now += 100  # never more than the burst
    assert [rate.take("alice") for _ in range(4)] == [True, True, True, False]


def test_refusals_are_reported_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    rate = CallRate(1.0, 1, clock=clock)
    with caplog.at_level(logging.WARNING, logger="jobs.server._limits"):
        rate.take("alice")
        for _ in range(50):
            assert not rate.take("alice")
        clock.now += REPORT_INTERVAL
        rate.take("alice")  # the refilled token
        for _ in range(7):
            rate.take("alice")
    assert [r.getMessage() for r in caplog.records] == [
        "over its call rate: account alice: refused 1 since the last report",
        "over its call rate: account alice: refused 50 since the last report",
    ]


def test_connections_per_address() -> None:
    connections = Connections(2, clock=Clock())
    assert [connections.acquire("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert connections.acquire("10.0.0.2")
    connections.release("10.0.0.1")
    assert connections.acquire("10.0.0.1")
