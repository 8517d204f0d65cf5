"""The metric vocabulary of Pharos: every metric name and label, defined once.

This module is the contract between the exporter, the dashboards and the alerts. Profiles fill these
metrics from one runtime's JSON; dashboards and alert rules import the names from here, so a rename
breaks a test instead of a panel. `docs/metrics.md` is generated from this module
(`python -m exporter.metrics_doc`) and a test keeps the two in step.

Naming follows Prometheus' rules (base units, `_total` for counters, `_seconds`/`_bytes` suffixes)
and OpenTelemetry's semantic conventions where one exists (`http_server_request_duration_seconds`
with `http_request_method`, `http_route`, `http_response_status_code`). Runtime-neutral metrics
that OpenTelemetry has no name for use the `runtime_` prefix; the exporter's own metrics use
`pharos_`.
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Metric:
    """One metric family of the vocabulary.

    `name` is what a PromQL query uses: counters end in `_total`; a histogram's `name` is the
    base to which `_bucket`, `_count` and `_sum` are appended.
    """

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    group: str = ""

    @property
    def family(self) -> str:
        """The family name in the exposition's `# TYPE` line (counters drop `_total`)."""
        if self.type == COUNTER and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name

    @property
    def bucket(self) -> str:
        return self.name + "_bucket"

    @property
    def count(self) -> str:
        return self.name + "_count"

    @property
    def sum(self) -> str:
        return self.name + "_sum"


class Label:
    """Label names, so that dashboards and alerts never type one twice."""

    TARGET = "target"  # the exporter's name of a configured target (sidecar mode only)
    GC_KIND = "kind"  # minor | major (see GC_KINDS)
    SPACE = "space"  # a memory space: old, young, eden, heap, stack, ...
    METHOD = "http_request_method"
    ROUTE = "http_route"
    STATUS = "http_response_status_code"
    CHECK = "check"
    RUNTIME = "runtime"
    RUNTIME_VERSION = "runtime_version"
    APP = "application"
    APP_VERSION = "application_version"
    REASON = "reason"
    PROFILE = "profile"
    RESULT = "result"
    # Labels that Prometheus and the generated scrape configs attach, used by dashboards/alerts.
    INSTANCE = "instance"
    JOB = "job"
    SERVICE = "service"
    ENVIRONMENT = "environment"
    COMPONENT = "component"  # on the monitoring's own jobs (prometheus, alertmanager, pharos-exporter)
    TEAM = "team"  # the team owning a service (stack file), which Alertmanager routes on
    REPLICA = "replica"  # which Prometheus of an HA pair (external label; kept in the store on the Watchdog only)
    # Docker Swarm: the swarm collector (exporter/swarm.py) and the generated swarm discovery.
    NODE = "node"  # a swarm node's hostname
    NODE_ID = "node_id"
    TASK = "task"  # a swarm task without its id: SERVICE.SLOT (SERVICE.NODEID for a global service)
    SLOT = "slot"  # a replicated task's slot number (0 for tasks of global services)
    STATE = "state"  # of a node, a task or a service update; values in SWARM_*_STATES
    DESIRED_STATE = "desired_state"
    AVAILABILITY = "availability"
    ROLE = "role"
    ENGINE_VERSION = "engine_version"
    MODE = "mode"
    IMAGE = "image"
    STACK = "stack"
    HEALTH = "health"
    # Runtime processes (Pharo Process, OS thread) and handle tables; `state` is Label.STATE.
    PRIORITY = "priority"  # the runtime's own scale (Pharo: 10-80, higher runs first)
    TABLE = "table"  # a bounded handle table of the runtime, e.g. external_semaphores
    HEALTH_STATUS = "status"  # of application_health_status: values in HEALTH_STATUSES
    GC_PHASE = "phase"  # of a garbage collection: values in GC_PHASES
    JIT_KIND = "kind"  # what a JIT compiler compiled: values in JIT_KINDS


GC_KIND_MINOR = "minor"  # young generation / scavenge (Pharo: incremental GC)
GC_KIND_MAJOR = "major"  # whole heap (Pharo: full GC; Go: every cycle)
GC_KINDS = (GC_KIND_MINOR, GC_KIND_MAJOR)
# `phase` of runtime_gc_phase_duration_seconds_total: parts of one kind of collection (Pharo
# reports them for full GCs only: parameterAt: 72, 73 and 18).
GC_PHASE_MARK, GC_PHASE_SWEEP, GC_PHASE_COMPACT = GC_PHASES = ("mark", "sweep", "compact")
# `kind` of the runtime_jit_* counters: Pharo's Cog JIT compiles methods and blocks apart.
JIT_KIND_METHOD, JIT_KIND_BLOCK = JIT_KINDS = ("method", "block")

# `state` of runtime_processes: Pharo's process states, lower-cased (Stargate's `status`). Other
# runtimes map onto them: an OS thread running or runnable is `active`, one sleeping `blocked`.
PROCESS_STATES = ("active", "ready", "blocked", "suspended", "terminating", "terminated")
# `state` of runtime_handle_table_slots. Used plus free is the table's current size, which may
# grow up to runtime_handle_table_slots_limit: the share used is used / limit.
HANDLE_SLOT_USED = "used"
HANDLE_SLOT_FREE = "free"
HANDLE_SLOT_STATES = (HANDLE_SLOT_USED, HANDLE_SLOT_FREE)
HANDLE_TABLE_EXTERNAL_SEMAPHORES = "external_semaphores"  # Pharo's ExternalSemaphoreTable
HANDLE_TABLE_FILE_DESCRIPTORS = "file_descriptors"  # a process's open files against RLIMIT_NOFILE
# `status` of application_health_status (Stargate's PASS | WARN | FAIL, lower-cased).
HEALTH_PASS, HEALTH_WARN, HEALTH_FAIL = HEALTH_STATUSES = ("pass", "warn", "fail")

# Route label values the exporter itself produces.
ROUTE_OVERFLOW = "__overflow__"  # routes beyond the per-target cap are summed here
ROUTE_UNKNOWN = "__unknown__"  # the application reported no route

# Why a scrape of a target failed: a bounded set, exposed as `pharos_scrape_error{reason}`.
SCRAPE_ERROR_REASONS = (
    "connection_refused",  # nothing listens at the target's address
    "connection_error",  # DNS failure, reset, unreachable network
    "timeout",  # no complete answer before the scrape deadline
    "tls_error",  # certificate or handshake failure
    "auth_failed",  # HTTP 401 or 403 from the target
    "http_status",  # any other non-2xx status
    "too_large",  # body larger than the configured cap
    "not_json",  # the body is not JSON (an HTML error page, for example)
    "invalid_document",  # JSON, but not the shape the profile expects (wrong types)
    "concurrency_limit",  # too many scrapes of this target or overall already running
    "internal_error",  # a bug in the exporter: please report it
)

# Why series of a target's document were rewritten or left out (config `limits`), exposed as
# `pharos_scrape_limited_series{reason}`: a target's output stays bounded whatever it sends.
LIMIT_REASONS = (
    "series_limit",  # left out: the target already has max_series_per_target series
    "label_too_long",  # a label value shortened to max_label_value_length characters
    "label_not_utf8",  # characters UTF-8 cannot encode (lone surrogates) replaced by U+FFFD
)

_RUNTIME = "Runtime"
_HTTP = "HTTP server"
_APP = "Application"
_PROCESS = "Process"
_EXPORTER = "Exporter"
# Metrics the exporter reports itself (about scrapes, the target's process): never limited.
OWN_GROUPS = frozenset({_EXPORTER, _PROCESS})

# --- Runtime: garbage collection -------------------------------------------------------------
GC_COLLECTIONS = Metric(
    "runtime_gc_collections_total",
    COUNTER,
    "Garbage collections since the runtime started, by kind (minor: young generation, major: whole heap).",
    (Label.GC_KIND,),
    _RUNTIME,
)
GC_DURATION = Metric(
    "runtime_gc_duration_seconds_total",
    COUNTER,
    "Time spent in garbage collection since the runtime started, by kind, in seconds.",
    (Label.GC_KIND,),
    _RUNTIME,
)
GC_PHASE_DURATION = Metric(
    "runtime_gc_phase_duration_seconds_total",
    COUNTER,
    "Time spent in one phase of garbage collection since the runtime started, by kind and phase (mark, sweep, compact), "
    "in seconds; part of runtime_gc_duration_seconds_total of that kind, and not every runtime reports every phase.",
    (Label.GC_KIND, Label.GC_PHASE),
    _RUNTIME,
)
GC_TENURED_OBJECTS = Metric(
    "runtime_gc_tenured_objects_total",
    COUNTER,
    "Objects promoted (tenured) from the young generation to the old one since the runtime started.",
    (),
    _RUNTIME,
)
GC_HEAP_GOAL = Metric(
    "runtime_gc_heap_goal_bytes",
    GAUGE,
    "Heap size at which the next garbage collection is due, in bytes.",
    (),
    _RUNTIME,
)

# --- Runtime: memory -------------------------------------------------------------------------
MEMORY_SPACE = Metric(
    "runtime_memory_bytes",
    GAUGE,
    "Size of a memory space of the runtime in bytes. Spaces may nest (eden is part of young): do not sum across spaces.",
    (Label.SPACE,),
    _RUNTIME,
)
MEMORY_FREE = Metric(
    "runtime_memory_free_bytes",
    GAUGE,
    "Free bytes within a memory space of the runtime.",
    (Label.SPACE,),
    _RUNTIME,
)
MEMORY_LIMIT = Metric(
    "runtime_memory_limit_bytes",
    GAUGE,
    "Largest size a memory space may grow to, in bytes; absent when the runtime sets no limit.",
    (Label.SPACE,),
    _RUNTIME,
)
MEMORY_TOTAL = Metric(
    "runtime_memory_total_bytes",
    GAUGE,
    "All memory the runtime has obtained from the operating system, in bytes.",
    (),
    _RUNTIME,
)

# --- Runtime: identity and lifetime ----------------------------------------------------------
START_TIME = Metric(
    "runtime_start_time_seconds",
    GAUGE,
    "Start time of the runtime since the Unix epoch, in seconds.",
    (),
    _RUNTIME,
)
UPTIME = Metric(
    "runtime_uptime_seconds",
    GAUGE,
    "Seconds since the runtime started, as the runtime reports it.",
    (),
    _RUNTIME,
)
RUNTIME_INFO = Metric(
    "runtime_info",
    GAUGE,
    "Always 1; labels name the runtime, its version and the application running on it.",
    (Label.RUNTIME, Label.RUNTIME_VERSION, Label.APP, Label.APP_VERSION),
    _RUNTIME,
)

# --- Runtime: processes and handle tables ---------------------------------------------------
PROCESSES = Metric(
    "runtime_processes",
    GAUGE,
    "Processes (Pharo) or threads of the runtime, by scheduling state (see PROCESS_STATES) and priority on the runtime's own scale.",
    (Label.STATE, Label.PRIORITY),
    _RUNTIME,
)
HANDLE_TABLE_SLOTS = Metric(
    "runtime_handle_table_slots",
    GAUGE,
    "Slots of a bounded handle table of the runtime (Pharo: external semaphores; a process: file descriptors), by state (used | free). "
    "Used plus free is the table's current size, which may grow up to its limit.",
    (Label.TABLE, Label.STATE),
    _RUNTIME,
)
HANDLE_TABLE_LIMIT = Metric(
    "runtime_handle_table_slots_limit",
    GAUGE,
    "Most slots a handle table of the runtime may hold; when all are used, new handles fail.",
    (Label.TABLE,),
    _RUNTIME,
)

# --- Runtime: scheduling and the JIT compiler ------------------------------------------------
PROCESS_SWITCHES = Metric(
    "runtime_process_switches_total",
    COUNTER,
    "Switches from one process (Pharo) or thread of the runtime to another since it started; for an operating-system "
    "process, its voluntary and involuntary context switches.",
    (),
    _RUNTIME,
)
JIT_COMPILATIONS = Metric(
    "runtime_jit_compilations_total",
    COUNTER,
    "Methods or blocks the runtime's JIT compiler translated to machine code since the runtime started, by kind (method | block).",
    (Label.JIT_KIND,),
    _RUNTIME,
)
JIT_COMPILATION_DURATION = Metric(
    "runtime_jit_compilation_duration_seconds_total",
    COUNTER,
    "Time the runtime's JIT compiler spent compiling since the runtime started, by kind (method | block), in seconds.",
    (Label.JIT_KIND,),
    _RUNTIME,
)
JIT_CODE_COMPACTIONS = Metric(
    "runtime_jit_code_compactions_total",
    COUNTER,
    "Compactions of the JIT compiler's machine code zone since the runtime started; it compacts when the zone is full, "
    "so a steady rate means the zone is too small for the code that runs.",
    (),
    _RUNTIME,
)
JIT_CODE_COMPACTION_DURATION = Metric(
    "runtime_jit_code_compaction_duration_seconds_total",
    COUNTER,
    "Time spent compacting the JIT compiler's machine code zone since the runtime started, in seconds.",
    (),
    _RUNTIME,
)
JIT_CODE_ZONE_SIZE = Metric(
    "runtime_jit_code_zone_bytes",
    GAUGE,
    "Size of the JIT compiler's machine code zone, in bytes.",
    (),
    _RUNTIME,
)
JIT_CODE_ZONE_METHODS = Metric(
    "runtime_jit_code_zone_methods",
    GAUGE,
    "Methods that have machine code in the JIT compiler's code zone now.",
    (),
    _RUNTIME,
)

# --- HTTP server (OpenTelemetry http.server.*) -----------------------------------------------
HTTP_REQUEST_DURATION = Metric(
    "http_server_request_duration_seconds",
    HISTOGRAM,
    "Duration of HTTP server requests in seconds. `_count` counts requests; buckets only where the application reports them.",
    (Label.METHOD, Label.ROUTE, Label.STATUS),
    _HTTP,
)
HTTP_RESPONSE_SIZE = Metric(
    "http_server_response_body_size_bytes",
    HISTOGRAM,
    "Size of HTTP server response bodies in bytes. `_sum` is the bytes sent; `_count` the responses.",
    (Label.METHOD, Label.ROUTE, Label.STATUS),
    _HTTP,
)
HTTP_ACTIVE_REQUESTS = Metric(
    "http_server_active_requests",
    GAUGE,
    "HTTP server requests in flight.",
    (),
    _HTTP,
)

# --- Application health ----------------------------------------------------------------------
APP_HEALTHY = Metric(
    "application_healthy",
    GAUGE,
    "1 when the application reports itself healthy, 0 when it reports a problem.",
    (),
    _APP,
)
APP_HEALTH_STATUS = Metric(
    "application_health_status",
    GAUGE,
    "1 for the status the application reports (pass, warn: working but near a threshold, fail), 0 for the others; "
    "only for applications that report one (Stargate, the pharo format's health.status).",
    (Label.HEALTH_STATUS,),
    _APP,
)
APP_HEALTH_CHECK = Metric(
    "application_health_check_healthy",
    GAUGE,
    "1 when one named health check of the application passes, 0 when it fails.",
    (Label.CHECK,),
    _APP,
)

# --- The target's process (sidecar mode, optional, through psutil) ---------------------------
PROCESS_CPU = Metric(
    "process_cpu_seconds_total",
    COUNTER,
    "User and system CPU time spent by the target's process, in seconds.",
    (),
    _PROCESS,
)
PROCESS_RESIDENT_MEMORY = Metric(
    "process_resident_memory_bytes",
    GAUGE,
    "Resident memory of the target's process, in bytes.",
    (),
    _PROCESS,
)
PROCESS_VIRTUAL_MEMORY = Metric(
    "process_virtual_memory_bytes",
    GAUGE,
    "Virtual memory of the target's process, in bytes.",
    (),
    _PROCESS,
)
PROCESS_THREADS = Metric(
    "process_threads",
    GAUGE,
    "Operating-system threads of the target's process.",
    (),
    _PROCESS,
)
PROCESS_OPEN_FDS = Metric(
    "process_open_fds",
    GAUGE,
    "Open file descriptors of the target's process.",
    (),
    _PROCESS,
)
PROCESS_START_TIME = Metric(
    "process_start_time_seconds",
    GAUGE,
    "Start time of the target's process since the Unix epoch, in seconds.",
    (),
    _PROCESS,
)
PROCESS_UP = Metric(
    "pharos_process_found",
    GAUGE,
    "1 when the exporter found the target's process (by pid, pid file or name), 0 otherwise.",
    (),
    _PROCESS,
)

# --- The exporter's view of each scrape ------------------------------------------------------
SCRAPE_SUCCESS = Metric(
    "pharos_scrape_success",
    GAUGE,
    "1 when the last fetch of the target's stats succeeded and the document matched its profile, 0 otherwise.",
    (),
    _EXPORTER,
)
SCRAPE_DURATION = Metric(
    "pharos_scrape_duration_seconds",
    GAUGE,
    "Time the exporter took to fetch and convert the target's stats, in seconds.",
    (),
    _EXPORTER,
)
SCRAPE_RESPONSE_SIZE = Metric(
    "pharos_scrape_response_size_bytes",
    GAUGE,
    "Size of the target's stats response body, in bytes.",
    (),
    _EXPORTER,
)
SCRAPE_ERROR = Metric(
    "pharos_scrape_error",
    GAUGE,
    "1 for the reason the last scrape failed, 0 for every other reason; all 0 after a success.",
    (Label.REASON,),
    _EXPORTER,
)
SCRAPE_ROUTES = Metric(
    "pharos_scrape_routes",
    GAUGE,
    "Distinct HTTP route templates the exporter keeps for the target (capped; the rest go to the overflow route).",
    (),
    _EXPORTER,
)
SCRAPE_LIMITED_SERIES = Metric(
    "pharos_scrape_limited_series",
    GAUGE,
    "Series of the target's last document the exporter rewrote or left out to keep its output bounded, by reason "
    "(series_limit: left out beyond limits.max_series_per_target; label_too_long: a label value shortened to "
    "limits.max_label_value_length; label_not_utf8: characters UTF-8 cannot encode replaced by U+FFFD). Absent after a failed scrape.",
    (Label.REASON,),
    _EXPORTER,
)
# Counters on the exporter's own /metrics, across all scrapes since it started.
EXPORTER_SCRAPES = Metric(
    "pharos_exporter_scrapes_total",
    COUNTER,
    "Scrapes of targets by this exporter since it started, by profile and result (success | failure).",
    (Label.PROFILE, Label.RESULT),
    _EXPORTER,
)
EXPORTER_SCRAPE_ERRORS = Metric(
    "pharos_exporter_scrape_errors_total",
    COUNTER,
    "Failed scrapes of targets by this exporter since it started, by reason.",
    (Label.REASON,),
    _EXPORTER,
)
EXPORTER_PROBES_DENIED = Metric(
    "pharos_exporter_probes_denied_total",
    COUNTER,
    "Requests to /probe refused because the target is not on the allow-list.",
    (),
    _EXPORTER,
)
EXPORTER_BUILD_INFO = Metric(
    "pharos_exporter_build_info",
    GAUGE,
    "Always 1; labels give the exporter's version and Python version.",
    ("version", "python_version"),
    _EXPORTER,
)
EXPORTER_HTTP_CONNECTIONS = Metric(
    "pharos_exporter_http_connections",
    GAUGE,
    "Client connections open to the exporter's HTTP server.",
    (),
    _EXPORTER,
)
EXPORTER_HTTP_IN_FLIGHT = Metric(
    "pharos_exporter_http_requests_in_flight",
    GAUGE,
    "Requests being answered by the exporter's workers (at most --web.max-requests).",
    (),
    _EXPORTER,
)
EXPORTER_HTTP_REJECTED = Metric(
    "pharos_exporter_http_requests_rejected_total",
    COUNTER,
    "Requests or connections the exporter's HTTP server refused or dropped before any endpoint, by reason "
    "(max_requests, max_connections, rate_limit, auth_busy, header_timeout, bad_request, request_timeout).",
    (Label.REASON,),
    _EXPORTER,
)


def all_metrics() -> list[Metric]:
    """Every metric of the vocabulary, in definition order."""
    return [value for value in globals().values() if isinstance(value, Metric)]


def by_name(name: str) -> Metric:
    """The metric whose PromQL name is `name`; KeyError names the unknown metric."""
    for metric in all_metrics():
        if metric.name == name:
            return metric
    raise KeyError(f"no metric named {name!r} in the Pharos catalogue (exporter/catalogue.py)")


# --- Docker Swarm (exporter/swarm.py: an opt-in collector; state on a manager, containers on every node) --
# Values of `state`, `availability` and `health` as the Docker Engine API names them. Enum-like
# gauges (`swarm_node_state`, ...) expose one series per value: 1 for the current one, 0 otherwise.
SWARM_NODE_STATES = ("unknown", "down", "ready", "disconnected")
SWARM_NODE_READY = "ready"
SWARM_NODE_AVAILABILITIES = ("active", "pause", "drain")
SWARM_UPDATE_STATES = ("updating", "paused", "completed", "rollback_started", "rollback_paused", "rollback_completed")
SWARM_TASK_RUNNING = "running"
SWARM_TASK_FAILED_STATES = ("failed", "rejected")  # a task that ended in one of these counts as a failure
SWARM_HEALTH_STATES = ("healthy", "unhealthy", "starting", "none")  # none: the container has no health check

_SWARM = "Docker Swarm"

SWARM_NODE_INFO = Metric(
    "swarm_node_info",
    GAUGE,
    "Always 1 for every node of the swarm; labels give its id, role (manager | worker) and Docker Engine version.",
    (Label.NODE, Label.NODE_ID, Label.ROLE, Label.ENGINE_VERSION),
    _SWARM,
)
SWARM_NODE_STATE = Metric(
    "swarm_node_state",
    GAUGE,
    "1 for the state a node is in (unknown, down, ready, disconnected), 0 for the others.",
    (Label.NODE, Label.STATE),
    _SWARM,
)
SWARM_NODE_AVAILABILITY = Metric(
    "swarm_node_availability",
    GAUGE,
    "1 for a node's availability to new tasks (active, pause, drain), 0 for the others.",
    (Label.NODE, Label.AVAILABILITY),
    _SWARM,
)
SWARM_SERVICE_INFO = Metric(
    "swarm_service_info",
    GAUGE,
    "Always 1 for every service of the swarm; labels give its mode (replicated | global), image and stack.",
    (Label.SERVICE, Label.MODE, Label.IMAGE, Label.STACK),
    _SWARM,
)
SWARM_SERVICE_DESIRED = Metric(
    "swarm_service_replicas_desired",
    GAUGE,
    "Tasks the swarm should run for a service (its replicas; for a global service, the eligible nodes).",
    (Label.SERVICE,),
    _SWARM,
)
SWARM_SERVICE_RUNNING = Metric(
    "swarm_service_replicas_running",
    GAUGE,
    "Tasks of a service that are running.",
    (Label.SERVICE,),
    _SWARM,
)
SWARM_SERVICE_UPDATE_STATE = Metric(
    "swarm_service_update_state",
    GAUGE,
    "1 for the state of a service's last rolling update or rollback, 0 for the others; all 0 if it was never updated.",
    (Label.SERVICE, Label.STATE),
    _SWARM,
)
SWARM_TASKS = Metric(
    "swarm_tasks",
    GAUGE,
    "Tasks the swarm keeps, by service, node, current state and desired state (running: current tasks; shutdown: history).",
    (Label.SERVICE, Label.NODE, Label.STATE, Label.DESIRED_STATE),
    _SWARM,
)
SWARM_TASK_CURRENT = Metric(
    "swarm_task_current",
    GAUGE,
    "Always 1 for each current task (desired state running), by service, task (SERVICE.SLOT, or SERVICE.NODEID "
    "for a global service), node and its state: which node holds which task, and how it is doing.",
    (Label.SERVICE, Label.TASK, Label.NODE, Label.STATE),
    _SWARM,
)
SWARM_TASK_FAILURES = Metric(
    "swarm_task_failures_total",
    COUNTER,
    "Tasks seen ending failed or rejected since the exporter started, by service and node.",
    (Label.SERVICE, Label.NODE),
    _SWARM,
)
SWARM_CONTAINER_OOM_KILLS = Metric(
    "swarm_container_oom_kills_total",
    COUNTER,
    "Task containers on the exporter's own node that the kernel's OOM killer ended (the engine's State.OOMKilled), "
    "each counted once since the exporter started, by service and node.",
    (Label.SERVICE, Label.NODE),
    _SWARM,
)
SWARM_CONTAINERS = Metric(
    "swarm_containers",
    GAUGE,
    "Running containers of swarm tasks on the exporter's own node, by service and health status (none: no health check).",
    (Label.SERVICE, Label.NODE, Label.HEALTH),
    _SWARM,
)
SWARM_COLLECTOR_SUCCESS = Metric(
    "pharos_swarm_collector_success",
    GAUGE,
    "1 when the swarm collector's last reading of its scope (the swarm state, this engine's task containers, or both) "
    "succeeded, 0 when the engine could not give it.",
    (),
    _SWARM,
)
SWARM_COLLECTOR_DURATION = Metric(
    "pharos_swarm_collector_duration_seconds",
    GAUGE,
    "Time the swarm collector's last reading of its scope took, in seconds.",
    (),
    _SWARM,
)

# --- Task containers on the exporter's node (exporter/container_stats.py, read in the background) --
_CONTAINER_LABELS = (Label.SERVICE, Label.TASK, Label.NODE)
SWARM_CONTAINER_CPU = Metric(
    "swarm_container_cpu_seconds_total",
    COUNTER,
    "CPU time the container of a swarm task used since it started, in seconds (its rate is cores in use).",
    _CONTAINER_LABELS,
    _SWARM,
)
SWARM_CONTAINER_MEMORY = Metric(
    "swarm_container_memory_usage_bytes",
    GAUGE,
    "Memory the container of a swarm task uses, without the page cache the kernel may drop (as `docker stats`).",
    _CONTAINER_LABELS,
    _SWARM,
)
SWARM_CONTAINER_MEMORY_LIMIT = Metric(
    "swarm_container_memory_limit_bytes",
    GAUGE,
    "Memory limit of the container of a swarm task (the node's memory when the service sets none).",
    _CONTAINER_LABELS,
    _SWARM,
)
SWARM_CONTAINER_RECEIVED = Metric(
    "swarm_container_network_receive_bytes_total",
    COUNTER,
    "Bytes the container of a swarm task received on all its networks since it started.",
    _CONTAINER_LABELS,
    _SWARM,
)
SWARM_CONTAINER_SENT = Metric(
    "swarm_container_network_transmit_bytes_total",
    COUNTER,
    "Bytes the container of a swarm task sent on all its networks since it started.",
    _CONTAINER_LABELS,
    _SWARM,
)
CONTAINER_STATS_AGE = Metric(
    "pharos_swarm_container_stats_age_seconds",
    GAUGE,
    "Seconds since the container stats served were read (they are read in the background, every 15 s by default).",
    (),
    _SWARM,
)
CONTAINER_STATS_DURATION = Metric(
    "pharos_swarm_container_stats_duration_seconds",
    GAUGE,
    "Time the last background reading of every task container's stats took, in seconds.",
    (),
    _SWARM,
)
CONTAINER_STATS_FAILURES = Metric(
    "pharos_swarm_container_stats_failures",
    GAUGE,
    "Task containers whose stats the last background reading could not get (ended in between, engine errors).",
    (),
    _SWARM,
)
