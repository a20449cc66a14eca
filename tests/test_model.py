"""The job model's facts as they show up in logs and tracebacks: never an env value."""

from __future__ import annotations

import dataclasses

from jobs import JobInfo, JobSpec, JobState, Limits

SECRET = "s3cr3t-value-nobody-may-see"


def spec() -> JobSpec:
    return JobSpec(
        ("deploy", "--now"),
        env=(("TOKEN", SECRET), ("MODE", "fast")),
        cwd="/srv",
        limits=Limits(pids=8),
    )


def test_a_job_spec_shows_env_names_not_values() -> None:
    shown = repr(spec())
    assert SECRET not in shown
    assert "fast" not in shown
    assert "'TOKEN'" in shown
    assert "'MODE'" in shown
    assert "('deploy', '--now')" in shown
    assert SECRET not in str(spec())
    assert SECRET not in f"{[spec()]}"  # inside containers too


def test_a_job_info_shows_no_env_value() -> None:
    info = JobInfo(
        id="7f3c1a2b" * 4,
        owner="alice",
        spec=spec(),
        state=JobState.RUNNING,
        pid=4242,
        started_at=1_700_000_000.0,
    )
    shown = repr(info)
    assert SECRET not in shown
    assert "'TOKEN'" in shown
    assert "owner='alice'" in shown
    assert SECRET not in str(info)
    assert SECRET not in repr(dataclasses.replace(info, state=JobState.EXITED, exit_code=0))


def test_the_secret_is_still_there_to_run_with() -> None:
    assert dict(spec().env)["TOKEN"] == SECRET
