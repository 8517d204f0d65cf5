"""Swarm: is every node up, does every service run all its tasks, and which tasks keep failing?

Read from the exporter's swarm collector (`pharos exporter --swarm` on a manager): each node with
its role, engine version and the tasks it runs in each state; desired against running tasks per
service; task failures per service and node over time and over the last hour, with the
SwarmTaskRestartLoop threshold; container health on the collector's node.
"""

from __future__ import annotations

from pharos_monitoring.alerts import catalogue as alerts
from pharos_monitoring.alerts import promql as q
from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.catalogue import Label as L

from . import house as h

UID = "pharos-swarm"  # stable: links and bookmarks depend on it
TITLE = "Pharos / Swarm"
# The labels that identify one collector's reading: every join between swarm series is on them.
READING = (L.ENVIRONMENT, L.JOB, L.INSTANCE)
NODE_KEYS = (L.NODE, L.ROLE, L.ENGINE_VERSION)
RESTART_LOOP = h.AlertThreshold(alerts.SWARM_TASK_RESTART_LOOP, "per_minute")
READY_STATES = ((1, "ready", h.GREEN), (0, "not ready", h.RED))
YES_GREEN = h.steps((None, h.RED), (1, h.GREEN))
ZERO_GREEN = h.steps((None, h.GREEN), (1, h.RED))
RECENT = "1h"  # "recent" task failures: over the last hour, whatever the time range on screen


def _nodes(metric: c.Metric, *extra: q.Matcher) -> q.Expr:
    return h.scoped(metric.name, L.ENVIRONMENT, extra=extra)


def _services(metric: c.Metric, *extra: q.Matcher) -> q.Expr:
    return h.scoped(metric.name, L.ENVIRONMENT, L.SERVICE, extra=extra)


def _per_node(expr: q.Expr) -> q.Expr:
    """`expr` (one series per node) with the node's role and engine version, one row per node."""
    with_info = q.binary(_nodes(c.SWARM_NODE_INFO), "*", expr, f"on ({', '.join(READING + (L.NODE,))}) group_left ()")
    return q.max_by(NODE_KEYS, with_info)


def _current_tasks() -> q.Expr:
    return _services(c.SWARM_TASKS, q.eq(L.DESIRED_STATE, c.SWARM_TASK_RUNNING))


def _failures_per_minute() -> q.Expr:
    failures = q.rate(_services(c.SWARM_TASK_FAILURES), h.RATE_WINDOW)
    return q.binary(q.sum_by((L.ENVIRONMENT, L.SERVICE, L.NODE), failures), "*", 60)


def build():
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
        24,
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
        16,
        8,
    )
    missing = q.binary(_services(c.SWARM_SERVICE_DESIRED), "-", _services(c.SWARM_SERVICE_RUNNING))
    layout.add(
        h.table(
            "Services",
            "Desired and running tasks of each service, and how many are missing (0 is good).",
            (L.SERVICE,),
            [
                h.Column("Missing", q.max_by((L.SERVICE,), missing), thresholds=ZERO_GREEN, decimals=0),
                h.Column("Desired", q.max_by((L.SERVICE,), _services(c.SWARM_SERVICE_DESIRED)), decimals=0),
                h.Column("Running", q.max_by((L.SERVICE,), _services(c.SWARM_SERVICE_RUNNING)), decimals=0),
            ],
            sort_by="Missing",
        ),
        8,
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
        12,
        8,
    )
    layout.add(
        h.table(
            "Recent task failures",
            f"Tasks of each service that ended failed or rejected on each node in the last {RECENT} "
            "(`docker service ps SERVICE --no-trunc` shows their errors).",
            (L.SERVICE, L.NODE),
            [h.Column(f"Failures, last {RECENT}", q.sum_by((L.SERVICE, L.NODE), q.Expr(f"increase({_services(c.SWARM_TASK_FAILURES)}[{RECENT}])")), decimals=0)],
            sort_by=f"Failures, last {RECENT}",
        ),
        6,
        8,
    )
    layout.add(
        h.timeseries(
            "Containers by health",
            "Task containers on the collector's node by health-check status (none: the image has no health check).",
            [h.target(q.sum_by((L.SERVICE, L.HEALTH), _services(c.SWARM_CONTAINERS)), h.legend_for(L.SERVICE, L.HEALTH))],
            h.COUNT,
            stacked=True,
        ),
        6,
        8,
    )

    variables = [
        h.datasource_variable(),
        h.label_variable(L.ENVIRONMENT, "Environment", c.SWARM_NODE_INFO),
        h.label_variable(L.SERVICE, "Service", c.SWARM_SERVICE_INFO, within=(L.ENVIRONMENT,), multi=True),
    ]
    links = [
        h.link_to("Services overview", h.SERVICES_OVERVIEW_UID, "Every service, worst first"),
        h.link_to("Service detail", h.SERVICE_DETAIL_UID, "Per instance: GC, memory, HTTP by route, process, health"),
        h.link_to("Pipeline health", h.PIPELINE_HEALTH_UID, "Exporter, Prometheus and Alertmanager themselves"),
    ]
    return h.dashboard(UID, TITLE, __doc__.splitlines()[0], variables, layout, links)
