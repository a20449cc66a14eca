"""The ``jobs`` command line: a thin client of the API, plus ``serve`` and ``pki``.

Each command lives in a module of its own; ``main`` holds the root group and the
one error boundary that turns expected errors into one line on stderr and an
exit code. Nothing imports this package.
"""
