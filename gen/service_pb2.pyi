import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_EXITED: _ClassVar[JobState]
    JOB_STATE_SIGNALED: _ClassVar[JobState]
    JOB_STATE_STOPPED: _ClassVar[JobState]
    JOB_STATE_TIMED_OUT: _ClassVar[JobState]
    JOB_STATE_OOM_KILLED: _ClassVar[JobState]
    JOB_STATE_SHUTDOWN: _ClassVar[JobState]
    JOB_STATE_LOST: _ClassVar[JobState]

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_UNSPECIFIED: _ClassVar[Stream]
    STREAM_STDOUT: _ClassVar[Stream]
    STREAM_STDERR: _ClassVar[Stream]

class Namespace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NAMESPACE_UNSPECIFIED: _ClassVar[Namespace]
    NAMESPACE_PID: _ClassVar[Namespace]
    NAMESPACE_MOUNT: _ClassVar[Namespace]
    NAMESPACE_NET: _ClassVar[Namespace]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_EXITED: JobState
JOB_STATE_SIGNALED: JobState
JOB_STATE_STOPPED: JobState
JOB_STATE_TIMED_OUT: JobState
JOB_STATE_OOM_KILLED: JobState
JOB_STATE_SHUTDOWN: JobState
JOB_STATE_LOST: JobState
STREAM_UNSPECIFIED: Stream
STREAM_STDOUT: Stream
STREAM_STDERR: Stream
NAMESPACE_UNSPECIFIED: Namespace
NAMESPACE_PID: Namespace
NAMESPACE_MOUNT: Namespace
NAMESPACE_NET: Namespace

class IoLimit(_message.Message):
    __slots__ = ("device", "bytes_per_second")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    device: str
    bytes_per_second: int
    def __init__(self, device: _Optional[str] = ..., bytes_per_second: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("cpu", "memory", "pids", "io_read", "io_write")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    IO_READ_FIELD_NUMBER: _ClassVar[int]
    IO_WRITE_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    memory: int
    pids: int
    io_read: _containers.RepeatedCompositeFieldContainer[IoLimit]
    io_write: _containers.RepeatedCompositeFieldContainer[IoLimit]
    def __init__(self, cpu: _Optional[float] = ..., memory: _Optional[int] = ..., pids: _Optional[int] = ..., io_read: _Optional[_Iterable[_Union[IoLimit, _Mapping]]] = ..., io_write: _Optional[_Iterable[_Union[IoLimit, _Mapping]]] = ...) -> None: ...

class EnvVar(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "owner", "command", "cwd", "state", "pid", "exit_code", "signal", "started_at", "ended_at", "limits", "isolation", "timeout_seconds", "output_bytes", "dropped_bytes", "lost_bytes", "name", "labels", "usage", "user", "uid")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOST_BYTES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    command: _containers.RepeatedScalarFieldContainer[str]
    cwd: str
    state: JobState
    pid: int
    exit_code: int
    signal: int
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    limits: Limits
    isolation: _containers.RepeatedScalarFieldContainer[Namespace]
    timeout_seconds: float
    output_bytes: int
    dropped_bytes: int
    lost_bytes: int
    name: str
    labels: _containers.ScalarMap[str, str]
    usage: Usage
    user: str
    uid: int
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., cwd: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., pid: _Optional[int] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., isolation: _Optional[_Iterable[_Union[Namespace, str]]] = ..., timeout_seconds: _Optional[float] = ..., output_bytes: _Optional[int] = ..., dropped_bytes: _Optional[int] = ..., lost_bytes: _Optional[int] = ..., name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., user: _Optional[str] = ..., uid: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("cpu_user_seconds", "cpu_system_seconds", "memory_peak_bytes", "io_read_bytes", "io_write_bytes", "source")
    CPU_USER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CPU_SYSTEM_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    IO_READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    IO_WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    cpu_user_seconds: float
    cpu_system_seconds: float
    memory_peak_bytes: int
    io_read_bytes: int
    io_write_bytes: int
    source: str
    def __init__(self, cpu_user_seconds: _Optional[float] = ..., cpu_system_seconds: _Optional[float] = ..., memory_peak_bytes: _Optional[int] = ..., io_read_bytes: _Optional[int] = ..., io_write_bytes: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("command", "env", "cwd", "limits", "isolation", "timeout_seconds", "name", "labels", "user")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    command: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedCompositeFieldContainer[EnvVar]
    cwd: str
    limits: Limits
    isolation: _containers.RepeatedScalarFieldContainer[Namespace]
    timeout_seconds: float
    name: str
    labels: _containers.ScalarMap[str, str]
    user: str
    def __init__(self, command: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[_Union[EnvVar, _Mapping]]] = ..., cwd: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., isolation: _Optional[_Iterable[_Union[Namespace, str]]] = ..., timeout_seconds: _Optional[float] = ..., name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., user: _Optional[str] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ("job_id", "grace_seconds", "signal")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    grace_seconds: float
    signal: int
    def __init__(self, job_id: _Optional[str] = ..., grace_seconds: _Optional[float] = ..., signal: _Optional[int] = ...) -> None: ...

class StopResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("selector", "states")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    selector: str
    states: _containers.RepeatedScalarFieldContainer[JobState]
    def __init__(self, selector: _Optional[str] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("job_id", "follow", "offset", "tail_lines", "since", "until", "streams", "timestamps")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    follow: bool
    offset: int
    tail_lines: int
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    streams: _containers.RepeatedScalarFieldContainer[Stream]
    timestamps: bool
    def __init__(self, job_id: _Optional[str] = ..., follow: _Optional[bool] = ..., offset: _Optional[int] = ..., tail_lines: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., streams: _Optional[_Iterable[_Union[Stream, str]]] = ..., timestamps: _Optional[bool] = ...) -> None: ...

class LogsResponse(_message.Message):
    __slots__ = ("offset", "stream", "data", "time", "dropped")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    offset: int
    stream: Stream
    data: bytes
    time: _timestamp_pb2.Timestamp
    dropped: int
    def __init__(self, offset: _Optional[int] = ..., stream: _Optional[_Union[Stream, str]] = ..., data: _Optional[bytes] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dropped: _Optional[int] = ...) -> None: ...

class WaitRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WaitResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("name", "labels", "version", "capabilities", "load", "certificate_names")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NAMES_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    version: str
    capabilities: Capabilities
    load: Load
    certificate_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., load: _Optional[_Union[Load, _Mapping]] = ..., certificate_names: _Optional[_Iterable[str]] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("cgroup", "controllers", "namespaces", "block_devices")
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    BLOCK_DEVICES_FIELD_NUMBER: _ClassVar[int]
    cgroup: str
    controllers: _containers.RepeatedScalarFieldContainer[str]
    namespaces: _containers.RepeatedScalarFieldContainer[Namespace]
    block_devices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cgroup: _Optional[str] = ..., controllers: _Optional[_Iterable[str]] = ..., namespaces: _Optional[_Iterable[_Union[Namespace, str]]] = ..., block_devices: _Optional[_Iterable[str]] = ...) -> None: ...

class Load(_message.Message):
    __slots__ = ("running_jobs", "caller_running_jobs", "max_running_per_account", "max_streams_per_account")
    RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    CALLER_RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNNING_PER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_PER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    running_jobs: int
    caller_running_jobs: int
    max_running_per_account: int
    max_streams_per_account: int
    def __init__(self, running_jobs: _Optional[int] = ..., caller_running_jobs: _Optional[int] = ..., max_running_per_account: _Optional[int] = ..., max_streams_per_account: _Optional[int] = ...) -> None: ...
