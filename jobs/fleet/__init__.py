"""jobs.fleet: the client side across many jobs servers, for the CLI and any async service.

- the inventory (``load_inventory``: ``hosts.toml``'s ``[[host]]`` tables) and
  discovery from etcd (``Discovery``: what servers registered, kept current);
- host selection (``parse_selection``/``select``: a label selector or names);
- fan-out with bounded concurrency (``fan_out``), ``Info`` from every host
  (``query_info``), and one command on many hosts (``FleetRun``), whose output a
  ``LineMerger`` writes line by line with ``[host]`` prefixes.

Example::

    hosts = select(load_inventory(path), parse_selection("role=web"))
    merger = LineMerger(sys.stdout.buffer, sys.stderr.buffer)
    results = await FleetRun(request, identity, merger).run(hosts)
    status = exit_status(results)
"""

from ._connect import DEFAULT_HOST_TIMEOUT as DEFAULT_HOST_TIMEOUT
from ._connect import Failure as Failure
from ._connect import HostFailed as HostFailed
from ._connect import Identity as Identity
from ._connect import host_errors as host_errors
from ._connect import open_host as open_host
from ._discover import Discovery as Discovery
from ._discover import discover as discover
from ._discover import host_from_entry as host_from_entry
from ._errors import DiscoveryFailed as DiscoveryFailed
from ._errors import FleetError as FleetError
from ._errors import InvalidInventory as InvalidInventory
from ._errors import NoMatchingHost as NoMatchingHost
from ._errors import UnknownHost as UnknownHost
from ._fanout import DEFAULT_PARALLEL as DEFAULT_PARALLEL
from ._fanout import fan_out as fan_out
from ._info import DEFAULT_INFO_TIMEOUT as DEFAULT_INFO_TIMEOUT
from ._info import HostInfo as HostInfo
from ._info import query_info as query_info
from ._inventory import Host as Host
from ._inventory import check_host_name as check_host_name
from ._inventory import load_inventory as load_inventory
from ._inventory import parse_address as parse_address
from ._lines import PARTIAL_MARK as PARTIAL_MARK
from ._lines import LineMerger as LineMerger
from ._run import DEFAULT_RESUME_WINDOW as DEFAULT_RESUME_WINDOW
from ._run import FleetRun as FleetRun
from ._run import HostResult as HostResult
from ._run import Output as Output
from ._run import exit_status as exit_status
from ._run import job_exit_code as job_exit_code
from ._run import least_loaded as least_loaded
from ._run import stream_output as stream_output
from ._select import Selection as Selection
from ._select import parse_selection as parse_selection
from ._select import select as select

__all__ = [
    "DEFAULT_HOST_TIMEOUT",
    "DEFAULT_INFO_TIMEOUT",
    "DEFAULT_PARALLEL",
    "DEFAULT_RESUME_WINDOW",
    "PARTIAL_MARK",
    "Discovery",
    "DiscoveryFailed",
    "Failure",
    "FleetError",
    "FleetRun",
    "Host",
    "HostFailed",
    "HostInfo",
    "HostResult",
    "Identity",
    "InvalidInventory",
    "LineMerger",
    "NoMatchingHost",
    "Output",
    "Selection",
    "UnknownHost",
    "check_host_name",
    "discover",
    "exit_status",
    "fan_out",
    "host_errors",
    "host_from_entry",
    "job_exit_code",
    "least_loaded",
    "load_inventory",
    "open_host",
    "parse_address",
    "parse_selection",
    "query_info",
    "select",
    "stream_output",
]
