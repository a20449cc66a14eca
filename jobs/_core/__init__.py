"""The job engine: jobs, their processes, output, records and containment.

It knows nothing of gRPC, protobuf, certificates or the CLI: anyio and the
standard library only (an import-linter contract checks it). The public names
are re-exported by ``jobs``.
"""
