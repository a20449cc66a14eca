"""The jobs benchmark suite: each figure next to a baseline measured in the same run.

Run with `nox -s bench` (or `python -m bench --help` from the project's root, in an
environment with jobs and grpcio installed). Sizes default to a few minutes in all
on a 2-core machine; every one is settable. The server is the real `jobs serve`, on
loopback, with its state on /dev/shm (when there is one) so that the disk is not
what is measured. These machines are noisy: read the ratios, not the absolute figures.

A scenario is `async def name(b: Bench) -> None` in a module of its own (one per
family), registered in `SCENARIOS` in `bench/__main__.py`; it records figures with
`b.add(Row(...))`.
"""
