"""A run's figures as JSON (`--json FILE`), and two runs side by side (`--compare`).

The file holds what is needed to tell two runs apart and compare them:

    {"format": 1,
     "metadata": {"date", "git_commit", "git_dirty", "python", "kernel", "cpus",
                  "args", "completed"},
     "figures": [{"scenario", "figure", "unit", "baseline", "baseline_name", "ratio"}]}

A figure is known by its scenario and its baseline's name (one scenario can be
compared to several baselines). These machines are noisy: compare ratios, which
are measured against a baseline in the same run, rather than raw figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._harness import Row

FORMAT = 1
PROJECT = Path(__file__).resolve().parent.parent


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    """Where and how the figures are measured (taken as the run starts: the tree may
    change during a run of minutes)."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        # The scenarios and sizes (not where the figures go or what they are compared to).
        "args": {
            name: value for name, value in vars(args).items() if name not in {"json", "compare"}
        },
    }


def _git(*command: str) -> str | None:
    """A git command's output in the project, or None without git or a repository."""
    try:
        done = subprocess.run(
            ["git", *command], cwd=PROJECT, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def document(meta: dict[str, Any], rows: list[Row], completed: bool) -> dict[str, Any]:
    """Every figure of the run, with its `metadata`, as `--json` writes them."""
    figures = [{**asdict(row), "ratio": row.ratio} for row in rows]
    return {"format": FORMAT, "metadata": {**meta, "completed": completed}, "figures": figures}


def write(path: Path, run: dict[str, Any]) -> None:
    """Write a `document` to ``path``."""
    path.write_text(json.dumps(run, indent=1) + "\n")


def load(text: str) -> dict[str, Any]:
    """A run written by `write` (``text`` is a file name: an argparse type)."""
    try:
        document = json.loads(Path(text).read_text())
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text} is not JSON: {exc}") from None
    if not (isinstance(document, dict) and document.get("format") == FORMAT):
        raise argparse.ArgumentTypeError(f"{text} is not a bench --json file (format {FORMAT})")
    return document


def writable(text: str) -> Path:
    """A file the run can be written to at its end (checked before minutes of running)."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no directory {path.parent} for {text}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    return path


def compare(old: dict[str, Any], new: dict[str, Any], out: Any = sys.stdout) -> None:
    """Print the figures of two runs side by side: figure and ratio, old then new, and
    how the ratio (or, without a baseline, the figure) changed."""
    for label, document in (("old", old), ("new", new)):
        meta = document.get("metadata", {})
        commit = (meta.get("git_commit") or "no git")[:10] + ("+" if meta.get("git_dirty") else "")
        done = "" if meta.get("completed", True) else ", incomplete"
        print(
            f"{label}: {meta.get('date')} {commit} Python {meta.get('python')} "
            f"Linux {meta.get('kernel')}{done}",
            file=out,
        )
    print(
        f"{'scenario':<46} {'baseline':<27} {'old':>10} {'new':>10} {'unit':<8}"
        f" {'old ratio':>9} {'new ratio':>9} {'change':>7}",
        file=out,
    )
    before = {_key(f): f for f in old.get("figures", [])}
    seen = set()
    for figure in new.get("figures", []):
        key = _key(figure)
        seen.add(key)
        previous = before.get(key)
        print(_line(figure["scenario"], figure["baseline_name"], previous, figure), file=out)
    for key, previous in before.items():
        if key not in seen:
            print(_line(previous["scenario"], previous["baseline_name"], previous, None), file=out)


def _key(figure: dict[str, Any]) -> tuple[str, str]:
    return figure["scenario"], figure["baseline_name"]


def _line(
    scenario: str, baseline: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> str:
    def number(value: float | None, spec: str, suffix: str = "") -> str:
        return format(value, spec) + suffix if value is not None else "-"

    old_figure, new_figure = (f["figure"] if f else None for f in (old, new))
    old_ratio, new_ratio = (f["ratio"] if f else None for f in (old, new))
    unit = (new or old or {}).get("unit", "")
    # With baselines the ratios are what can be compared across runs; without, the figures.
    if old_ratio and new_ratio:
        change: float | None = new_ratio / old_ratio
    elif old_ratio is None and new_ratio is None and old_figure and new_figure is not None:
        change = new_figure / old_figure
    else:
        change = None
    return (
        f"{scenario:<46} {baseline[:27]:<27} {number(old_figure, '10.1f'):>10}"
        f" {number(new_figure, '10.1f'):>10} {unit:<8} {number(old_ratio, '.2f', 'x'):>9}"
        f" {number(new_ratio, '.2f', 'x'):>9} {number(change, '.2f', 'x'):>7}"
    )
