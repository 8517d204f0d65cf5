"""Swarm: is every node up, does every service run all its tasks, and which tasks keep failing?

Read from the exporter's swarm collector (exporter/swarm.py). Its state scope, on a manager: each
node with its role, engine version and the tasks it runs in each state; desired against running
tasks per service; task failures per service and node over time and over the last hour, with the
SwarmTaskRestartLoop threshold. Its containers scope, on every node (the compose file's
`pharos-node-agent`; both scopes in one exporter on a one-node swarm): the OOM kills among those
failures (SwarmContainerOOMKilled), container health, and the CPU, memory and network of each task
container. From node_exporter (the `node` job): each node's CPU, memory, network and disks with
their free space predicted.
"""

from __future__ import annotations

from pharos_monitoring.alerts import catalogue as alerts
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.alerts import upstream as u
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import house as h

UID = h.SWARM_UID  # stable: links and bookmarks depend on it
TITLE = "Pharos / Swarm"
# The labels that identify one collector's reading: every join between swarm series is on them.
READING = (L.ENVIRONMENT, L.JOB, L.INSTANCE)
NODE_KEYS = (L.NODE, L.ROLE, L.ENGINE_VERSION)
RESTART_LOOP = h.AlertThreshold(alerts.SWARM_TASK_RESTART_LOOP, "per_minute")
READY_STATES = ((1, "ready", h.GREEN), (0, "not ready", h.RED))
YES_GREEN = h.steps((None, h.RED), (1, h.GREEN))
ZERO_GREEN = h.steps((None, h.GREEN), (1, h.RED))
RECENT = "1h"  # "recent" task failures: over the last hour, whatever the time range on screen
# Any OOM kill fires SwarmContainerOOMKilled: a cell is red from the first one.
OOM_KILLED = h.event_color_steps(alerts.SWARM_CONTAINER_OOM_KILLED)
OOM_KILLS_TITLE = f"OOM kills, last {RECENT}"
FILLING_HOURS = h.AlertThreshold(alerts.NODE_FILESYSTEM_FILLING_UP, "hours")
_DISKS = q.not_matches(u.NODE_FSTYPE, q.one_of(u.NODE_VIRTUAL_FSTYPES))
_PHYSICAL = q.not_matches(u.NODE_DEVICE, q.one_of(u.NODE_VIRTUAL_DEVICES))


def _nodes(metric: c.Metric, *extra: q.Matcher) -> q.Expr:
    return h.scoped(metric.name, L.ENVIRONMENT, extra=extra)


def _services(metric: c.Metric, *extra: q.Matcher) -> q.Expr:
    return h.scoped(metric.name, L.ENVIRONMENT, L.SERVICE, extra=extra)


def _per_node(expr: q.Expr) -> q.Expr:
    """`expr` (one series per node) with the node's role and engine version, one row per node."""
    with_info = q.binary(_nodes(c.SWARM_NODE_INFO), "*", expr, f"on ({', '.join(READING + (L.NODE,))}) group_left ()")
    return q.max_by(NODE_KEYS, with_info)


def _state_colours(column: str) -> dict:
    """A field override colouring the cells of a task-state column: running, failed, on the way."""
    by_state = {c.SWARM_TASK_RUNNING: h.GREEN, **{failed: h.RED for failed in c.SWARM_TASK_FAILED_STATES}}
    options = {state: {"color": colour, "index": index} for index, (state, colour) in enumerate(by_state.items())}
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [
            {"id": "mappings", "value": [
                {"type": "value", "options": options},
                {"type": "regex", "options": {"pattern": ".+", "result": {"color": h.ORANGE, "index": len(options)}}},
            ]},
            {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}},
        ],
    }


def _current_tasks() -> q.Expr:
    return _services(c.SWARM_TASKS, q.eq(L.DESIRED_STATE, c.SWARM_TASK_RUNNING))


def _failures_per_minute() -> q.Expr:
    failures = q.rate(_services(c.SWARM_TASK_FAILURES), h.RATE_WINDOW)
    return q.binary(q.sum_by((L.ENVIRONMENT, L.SERVICE, L.NODE), failures), "*", 60)


def _recent_oom_kills(by: tuple[str, ...]) -> q.Expr:
    """Task containers the kernel's OOM killer ended in the last hour, counted by the engine that
    ran each one (the task itself only says "exit 137"): on the nodes whose containers an exporter
    reads."""
    return q.sum_by(by, q.Expr(f"increase({_services(c.SWARM_CONTAINER_OOM_KILLS)}[{RECENT}])"))


def build(fleet: bool = False):
    layout = h.Layout()

    layout.section("Nodes")
    running_here = q.sum_by(READING + (L.NODE,), _nodes(c.SWARM_TASKS, q.eq(L.STATE, c.SWARM_TASK_RUNNING), q.eq(L.DESIRED_STATE, c.SWARM_TASK_RUNNING)))
    layout.add(
        h.table(
            "Nodes",
            "Every node of the swarm: ready (1) or not (0), active for new tasks (1) or paused/drained (0), and the tasks it runs.",
            NODE_KEYS,
            [
                h.Column("Ready", _per_node(_nodes(c.SWARM_NODE_STATE, q.eq(L.STATE, c.SWARM_NODE_READY))), thresholds=YES_GREEN, decimals=0),
                h.Column("Active", _per_node(_nodes(c.SWARM_NODE_AVAILABILITY, q.eq(L.AVAILABILITY, "active"))), thresholds=YES_GREEN, decimals=0),
                h.Column("Running tasks", _per_node(running_here), decimals=0),
            ],
            sort_by="Running tasks",
        ),
        12,
        8,
    )
    layout.add(
        h.state_timeline(
            "Node readiness",
            "Whether the managers see each node as ready; anything else (down, disconnected, unknown) is not ready.",
            [h.target(q.max_by((L.NODE,), _nodes(c.SWARM_NODE_STATE, q.eq(L.STATE, c.SWARM_NODE_READY))), h.legend_for(L.NODE))],
            READY_STATES,
        ),
        12,
        8,
    )
    layout.add(
        h.table(
            "Tasks on each node, by state",
            "The current tasks (desired state running) of the selected services on each node, by their state: "
            "anything but running is a task starting, being placed or failing.",
            (L.NODE, L.SERVICE, L.STATE),
            [h.Column("Tasks", q.sum_by((L.NODE, L.SERVICE, L.STATE), _current_tasks()), decimals=0)],
            sort_by="Tasks",
        ),
        12,
        8,
    )

    layout.add(
        h.table(
            "Tasks held by each node",
            "Every current task (desired state running) and the node that holds it, coloured by its state: green running, "
            "red failed or rejected, orange anything on the way (pending, assigned, preparing, starting).",
            (L.NODE, L.TASK, L.STATE),
            [h.Column("Tasks", q.sum_by((L.NODE, L.TASK, L.STATE), _services(c.SWARM_TASK_CURRENT)), decimals=0)],
            sort_by="Tasks",
            links=[_state_colours(L.STATE)],
        ),
        12,
        8,
    )

    layout.section("Services")
    layout.add(
        h.timeseries(
            "Desired and running tasks, per service",
            "Tasks each service should run and tasks that run; a gap lasting 5 minutes fires SwarmServiceDegraded.",
            [
                h.target(q.max_by((L.SERVICE,), _services(c.SWARM_SERVICE_DESIRED)), h.legend_for(L.SERVICE) + " desired", "A"),
                h.target(q.max_by((L.SERVICE,), _services(c.SWARM_SERVICE_RUNNING)), h.legend_for(L.SERVICE) + " running", "B"),
            ],
            h.COUNT,
        ),
        14,
        8,
    )
    missing = q.binary(_services(c.SWARM_SERVICE_DESIRED), "-", _services(c.SWARM_SERVICE_RUNNING))
    layout.add(
        h.table(
            "Services",
            "Desired and running tasks of each service, how many are missing (0 is good), and its task containers "
            f"the kernel's OOM killer ended in the last {RECENT} on the nodes whose containers an exporter reads "
            f"(red: {alerts.SWARM_CONTAINER_OOM_KILLED.name} fired).",
            (L.SERVICE,),
            [
                h.Column("Missing", q.max_by((L.SERVICE,), missing), thresholds=ZERO_GREEN, decimals=0),
                h.Column("Desired", q.max_by((L.SERVICE,), _services(c.SWARM_SERVICE_DESIRED)), decimals=0),
                h.Column("Running", q.max_by((L.SERVICE,), _services(c.SWARM_SERVICE_RUNNING)), decimals=0),
                h.Column(OOM_KILLS_TITLE, _recent_oom_kills((L.SERVICE,)), thresholds=OOM_KILLED, decimals=0),
            ],
            sort_by="Missing",
        ),
        10,
        8,
    )

    layout.section("Failures")
    layout.add(
        h.timeseries(
            "Task failures per minute, per service and node",
            "Tasks ending failed or rejected; above the dashed line for 5 minutes, SwarmTaskRestartLoop fires.",
            [h.target(_failures_per_minute(), h.legend_for(L.SERVICE, L.NODE))],
            h.PER_MINUTE,
            threshold=(RESTART_LOOP, _services(c.SWARM_TASK_FAILURES)),
        ),
        10,
        8,
    )
    layout.add(
        h.table(
            "Recent task failures",
            f"Tasks of each service that ended failed or rejected on each node in the last {RECENT} "
            "(`docker service ps SERVICE --no-trunc` shows their errors), and how many of them the kernel's OOM killer "
            "ended (known only on the nodes whose containers an exporter reads: empty for the others).",
            (L.SERVICE, L.NODE),
            [
                h.Column(f"Failures, last {RECENT}", q.sum_by((L.SERVICE, L.NODE), q.Expr(f"increase({_services(c.SWARM_TASK_FAILURES)}[{RECENT}])")), decimals=0),
                h.Column("Of them OOM kills", _recent_oom_kills((L.SERVICE, L.NODE)), thresholds=OOM_KILLED, decimals=0),
            ],
            sort_by=f"Failures, last {RECENT}",
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Containers by health",
            "Task containers by health-check status (none: the image has no health check).",
            [h.target(q.sum_by((L.SERVICE, L.HEALTH), _services(c.SWARM_CONTAINERS)), h.legend_for(L.SERVICE, L.HEALTH))],
            h.COUNT,
            stacked=True,
        ),
        6,
        8,
    )

    layout.section("Machines")
    layout.add(
        h.timeseries(
            "CPU busy, per node",
            "Share of each node's CPU time spent on anything but idling (node_exporter, job node; 100 % is every core busy).",
            [h.target(q.binary(1, "-", q.aggregate("avg", q.rate(_nodes(u.NODE_CPU_SECONDS, q.eq(u.NODE_CPU_MODE, u.NODE_CPU_IDLE)), h.RATE_WINDOW), by=(L.NODE,))), h.legend_for(L.NODE))],
            h.RATIO,
            soft_max=1,
        ),
        8,
        8,
    )
    available = q.divide(q.max_by((L.NODE,), _nodes(u.NODE_MEMORY_AVAILABLE)), q.max_by((L.NODE,), _nodes(u.NODE_MEMORY_TOTAL)))
    layout.add(
        h.timeseries(
            "Memory available vs. total, per node",
            f"Share of each node's memory available without swapping; below its threshold for 15 minutes, {alerts.NODE_MEMORY_PRESSURE.name} fires.",
            [h.target(available, h.legend_for(L.NODE))],
            h.RATIO,
            soft_max=1,
        ),
        8,
        8,
    )
    traffic = q.rate(_nodes(u.NODE_NETWORK_RECEIVE, _PHYSICAL), h.RATE_WINDOW)
    sent = q.rate(_nodes(u.NODE_NETWORK_TRANSMIT, _PHYSICAL), h.RATE_WINDOW)
    layout.add(
        h.timeseries(
            "Network, per node",
            "Bytes per second received and sent on each node's own network devices (loopback and container bridges left out).",
            [
                h.target(q.sum_by((L.NODE,), traffic), h.legend_for(L.NODE) + " received", "A"),
                h.target(q.sum_by((L.NODE,), sent), h.legend_for(L.NODE) + " sent", "B"),
            ],
            h.BYTES_PER_SECOND,
        ),
        8,
        8,
    )
    free = _nodes(u.NODE_FILESYSTEM_AVAIL, _DISKS)
    ahead = int(FILLING_HOURS.default * 3600)
    layout.add(
        h.timeseries(
            "Disk used ratio, per node and mount point",
            "Share of each disk in use (tmpfs, overlay and other file systems that are not disks left out).",
            [h.target(q.max_by((L.NODE, u.NODE_MOUNTPOINT), q.binary(1, "-", q.divide(free, _nodes(u.NODE_FILESYSTEM_SIZE, _DISKS)))), h.legend_for(L.NODE, u.NODE_MOUNTPOINT))],
            h.RATIO,
            soft_max=1,
        ),
        12,
        8,
    )
    layout.add(
        h.table(
            "Disks, and their free space predicted",
            f"Free space now, and in {FILLING_HOURS.default:g} hours at the rate of the last 6 hours (red below 0: full by then). "
            f"Little free space and a prediction below 0 within the threshold's horizon fire {alerts.NODE_FILESYSTEM_FILLING_UP.name}.",
            (L.NODE, u.NODE_MOUNTPOINT),
            [
                h.Column("Free", q.max_by((L.NODE, u.NODE_MOUNTPOINT), free), h.BYTES),
                h.Column(
                    f"Free in {FILLING_HOURS.default:g} h",
                    q.max_by((L.NODE, u.NODE_MOUNTPOINT), q.predict_linear(free, alerts.FILL_TREND_RANGE, ahead)),
                    h.BYTES,
                    thresholds=h.steps((None, h.RED), (0, h.GREEN)),
                ),
            ],
            sort_by="Free",
        ),
        12,
        8,
    )

    layout.section("Task containers")
    containers = (L.SERVICE, L.TASK)
    layout.add(
        h.timeseries(
            "CPU per task",
            "CPU of each task container, in cores (read in the background every 15 s: a step every 15 s).",
            [h.target(q.sum_by(containers, q.rate(_services(c.SWARM_CONTAINER_CPU), h.RATE_WINDOW)), h.legend_for(*containers))],
            h.CORES,
        ),
        8,
        8,
    )
    layout.add(
        h.timeseries(
            "Memory per task",
            "Memory of each task container, without the page cache the kernel may drop (as `docker stats`).",
            [h.target(q.max_by(containers, _services(c.SWARM_CONTAINER_MEMORY)), h.legend_for(*containers))],
            h.BYTES,
        ),
        8,
        8,
    )
    received = q.rate(_services(c.SWARM_CONTAINER_RECEIVED), h.RATE_WINDOW)
    layout.add(
        h.timeseries(
            "Network per task",
            "Bytes per second each task container receives and sends, on all its networks.",
            [
                h.target(q.sum_by(containers, received), h.legend_for(*containers) + " received", "A"),
                h.target(q.sum_by(containers, q.rate(_services(c.SWARM_CONTAINER_SENT), h.RATE_WINDOW)), h.legend_for(*containers) + " sent", "B"),
            ],
            h.BYTES_PER_SECOND,
        ),
        8,
        8,
    )

    variables = [
        h.datasource_variable(),
        h.environment_variable(c.SWARM_NODE_INFO, fleet),
        h.label_variable(L.SERVICE, "Service", c.SWARM_SERVICE_INFO, within=(L.ENVIRONMENT,), multi=True),
    ]
    links = [
        h.link_to("Services overview", h.SERVICES_OVERVIEW_UID, "Every service, worst first"),
        h.link_to("Service detail", h.SERVICE_DETAIL_UID, "Per instance: GC, memory, HTTP by route, process, health"),
        h.link_to("Pipeline health", h.PIPELINE_HEALTH_UID, "Exporter, Prometheus and Alertmanager themselves"),
    ]
    return h.dashboard(UID, TITLE, __doc__.splitlines()[0], variables, layout, links)
