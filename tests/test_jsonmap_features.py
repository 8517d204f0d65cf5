"""What json mappings do beyond json_exporter, each over loopback HTTP with a realistic payload:
map keys as labels, labels from parent objects, string-to-number maps, label maps, duplicate
label sets, missing keys, the series limit and the modules' own metrics."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from pharos_monitoring.exporter.jsonmap import ModuleStats

from jsonmap_support import dropped, key, module_from, same, serve_and_scrape, series, value

# Elasticsearch's GET /_nodes/stats/thread_pool, trimmed: nodes keyed by id, pools keyed by name.
NODES_STATS = {
    "_nodes": {"total": 2, "successful": 2, "failed": 0},
    "cluster_name": "search-prod",
    "nodes": {
        "aXq3Zb7uQ0mN1lP2kR4sVw": {
            "name": "es-data-0",
            "roles": ["data", "ingest"],
            "thread_pool": {
                "search": {"threads": 13, "queue": 0, "active": 2, "rejected": 0, "completed": 918273},
                "write": {"threads": 8, "queue": 4, "active": 8, "rejected": 17, "completed": 5540021},
            },
        },
        "Tn0pL5cYd2s8eK9fH1jGxQ": {
            "name": "es-data-1",
            "roles": ["data"],
            "thread_pool": {
                "search": {"threads": 13, "queue": 1, "active": 5, "rejected": 2, "completed": 902211},
                "write": {"threads": 8, "queue": 0, "active": 1, "rejected": 0, "completed": 5412990},
            },
        },
    },
}

THREAD_POOLS = """
modules:
  test:
    metrics:
    - name: elasticsearch_thread_pool
      type: object
      help: Elasticsearch thread pools, per node
      path: '{.nodes}'
      parent_key_label: node_id     # the key of each node under .nodes
      parent_labels:
        node: '{.name}'             # read from the node object
      root_labels:
        cluster: '{.cluster_name}'  # read from the whole document
      children: '{.thread_pool}'
      key_label: pool               # the key of each pool under .thread_pool
      values:
        queue: '{.queue}'
        rejected: '{.rejected}'
"""


def test_map_keys_and_parent_objects_become_labels(loopback_server):
    outcome, text = serve_and_scrape(loopback_server, module_from(THREAD_POOLS), NODES_STATS)
    assert outcome.success
    got = series(text, "elasticsearch_thread_pool_")
    assert got == {
        key("elasticsearch_thread_pool_queue", node_id="aXq3Zb7uQ0mN1lP2kR4sVw", node="es-data-0", cluster="search-prod", pool="search"): 0,
        key("elasticsearch_thread_pool_queue", node_id="aXq3Zb7uQ0mN1lP2kR4sVw", node="es-data-0", cluster="search-prod", pool="write"): 4,
        key("elasticsearch_thread_pool_queue", node_id="Tn0pL5cYd2s8eK9fH1jGxQ", node="es-data-1", cluster="search-prod", pool="search"): 1,
        key("elasticsearch_thread_pool_queue", node_id="Tn0pL5cYd2s8eK9fH1jGxQ", node="es-data-1", cluster="search-prod", pool="write"): 0,
        key("elasticsearch_thread_pool_rejected", node_id="aXq3Zb7uQ0mN1lP2kR4sVw", node="es-data-0", cluster="search-prod", pool="search"): 0,
        key("elasticsearch_thread_pool_rejected", node_id="aXq3Zb7uQ0mN1lP2kR4sVw", node="es-data-0", cluster="search-prod", pool="write"): 17,
        key("elasticsearch_thread_pool_rejected", node_id="Tn0pL5cYd2s8eK9fH1jGxQ", node="es-data-1", cluster="search-prod", pool="search"): 2,
        key("elasticsearch_thread_pool_rejected", node_id="Tn0pL5cYd2s8eK9fH1jGxQ", node="es-data-1", cluster="search-prod", pool="write"): 0,
    }


def test_keys_of_an_object_of_numbers_label_a_value_metric(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: cache_hit_ratio
      path: '{.caches}'
      key_label: cache
""")
    outcome, text = serve_and_scrape(loopback_server, module, {"caches": {"users": 0.93, "sessions": 0.71, "tokens": 1}})
    assert series(text, "cache_hit_ratio") == {
        key("cache_hit_ratio", cache="users"): 0.93,
        key("cache_hit_ratio", cache="sessions"): 0.71,
        key("cache_hit_ratio", cache="tokens"): 1,
    }


# Spring Boot's /actuator/health with components; statuses are words.
HEALTH = {
    "status": "DOWN",
    "components": {
        "db": {"status": "UP", "details": {"database": "PostgreSQL", "validationQuery": "isValid()"}},
        "diskSpace": {"status": "UP", "details": {"total": 499963174912, "free": 91754450944, "threshold": 10485760}},
        "redis": {"status": "DOWN", "details": {"error": "io.lettuce.core.RedisConnectionException"}},
        "mail": {"status": "OUT_OF_SERVICE"},
        "ldap": {"status": "UNKNOWN_TO_US"},
    },
}


def test_text_values_map_to_numbers_with_a_declared_default(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: app_health_component_status
      type: object
      help: 0 up, 1 out of service, 2 down, 3 anything else
      path: '{.components}'
      key_label: component
      values:
        code: '{.status}'
      value_map: {UP: 0, OUT_OF_SERVICE: 1, DOWN: 2, '*': 3}
""")
    outcome, text = serve_and_scrape(loopback_server, module, HEALTH)
    assert series(text, "app_health_component_status") == {
        key("app_health_component_status_code", component="db"): 0,
        key("app_health_component_status_code", component="diskSpace"): 0,
        key("app_health_component_status_code", component="redis"): 2,
        key("app_health_component_status_code", component="mail"): 1,
        key("app_health_component_status_code", component="ldap"): 3,  # the declared default
    }


def test_without_a_default_unmapped_text_is_dropped_and_counted(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: app_health_component_up
      type: object
      path: '{.components}'
      key_label: component
      values:
        code: '{.status}'
      value_map: {up: 1, down: 0}     # matched regardless of case, as json_exporter's valueconverter
""")
    outcome, text = serve_and_scrape(loopback_server, module, HEALTH)
    assert series(text, "app_health_component_up") == {
        key("app_health_component_up_code", component="db"): 1,
        key("app_health_component_up_code", component="diskSpace"): 1,
        key("app_health_component_up_code", component="redis"): 0,
    }
    assert dropped(text, "test", "not_a_number") == 2


def test_label_maps_rename_label_values_and_null_drops_a_series(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: queue_depth
      type: object
      path: '{.queues[*]}'
      labels:
        queue: '{.name}'
        tier: '{.priority}'
      label_map:
        tier: {'1': high, '2': normal, '*': low}
        queue: {dead-letter: ~}            # not exported at all
      values:
        messages: '{.depth}'
""")
    document = {"queues": [
        {"name": "orders", "priority": 1, "depth": 12},
        {"name": "emails", "priority": 2, "depth": 40},
        {"name": "reports", "priority": 9, "depth": 3},
        {"name": "dead-letter", "priority": 1, "depth": 981},
    ]}  # fmt: skip
    outcome, text = serve_and_scrape(loopback_server, module, document)
    assert series(text, "queue_depth") == {
        key("queue_depth_messages", queue="orders", tier="high"): 12,
        key("queue_depth_messages", queue="emails", tier="normal"): 40,
        key("queue_depth_messages", queue="reports", tier="low"): 3,
    }
    assert sum(dropped(text, "test", reason) for reason in ("missing", "not_a_number", "duplicate", "limit")) == 0


DUPLICATES = """
modules:
  test:
    metrics:
    - name: backend_requests
      type: object
      path: '{.backends[*]}'
      labels:
        host: '{.host}'
      values:
        total: '{.requests}'
    - name: service_up
      path: '{.up}'
"""


def test_a_duplicate_label_set_drops_one_sample_not_the_scrape(loopback_server, caplog):
    document = {"up": True, "backends": [
        {"host": "10.0.0.1", "requests": 10},
        {"host": "10.0.0.2", "requests": 20},
        {"host": "10.0.0.1", "requests": 99},  # same labels again
    ]}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="pharos.exporter"):
        outcome, text = serve_and_scrape(loopback_server, module_from(DUPLICATES), document)
    assert outcome.success
    assert value(text, "backend_requests_total", host="10.0.0.1") == 10  # the first one is kept
    assert value(text, "backend_requests_total", host="10.0.0.2") == 20
    assert value(text, "service_up") == 1  # the rest of the scrape is there
    assert dropped(text, "test", "duplicate") == 1
    assert value(text, "pharos_module_scrape_series", module="test") == 3
    assert any("duplicate" in record.getMessage() and "10.0.0.1" in record.getMessage() for record in caplog.records)


def test_duplicates_can_be_summed_instead(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: pool_connections
      type: object
      path: '{.pools[*]}'
      duplicates: sum
      labels:
        database: '{.db}'
      values:
        open: '{.open}'
""")
    document = {"pools": [{"db": "orders", "open": 3}, {"db": "orders", "open": 4}, {"db": "users", "open": 1}]}
    outcome, text = serve_and_scrape(loopback_server, module, document)
    assert series(text, "pool_connections") == {key("pool_connections_open", database="orders"): 7, key("pool_connections_open", database="users"): 1}
    assert dropped(text, "test", "duplicate") == 0


MISSING = """
modules:
  test:
    metrics:
    - name: optional_gauge
      path: '{.optional}'
      allow_missing_key: true
    - name: required_gauge
      path: '{.required}'
    - name: item_size
      type: object
      path: '{.items[*]}'
      allow_missing_key: true
      labels:
        id: '{.id}'
      values:
        bytes: '{.size}'
"""


def test_missing_keys_are_quiet_where_allowed_and_counted_where_not(loopback_server, caplog):
    document = {"items": [{"id": "a", "size": 10}, {"id": "b"}]}
    with caplog.at_level(logging.DEBUG, logger="pharos.exporter"):
        outcome, text = serve_and_scrape(loopback_server, module_from(MISSING), document)
    assert outcome.success
    assert value(text, "optional_gauge") is None
    assert value(text, "item_size_bytes", id="a") == 10
    assert value(text, "item_size_bytes", id="b") is None
    assert dropped(text, "test", "missing") == 1  # only required_gauge
    messages = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert any("required_gauge" in message for message in messages)
    assert not any("optional_gauge" in message or "item_size" in message for message in messages)


def test_a_drop_is_logged_as_a_warning_once_then_quietly(loopback_server, caplog):
    module = module_from(MISSING)
    url = loopback_server('{"items": []}') + "/stats"
    from jsonmap_support import scrape

    with caplog.at_level(logging.DEBUG, logger="pharos.exporter"):
        for _ in range(3):
            scrape(module, url)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING and "required_gauge" in record.getMessage()]
    debug = [record for record in caplog.records if record.levelno == logging.DEBUG and "required_gauge" in record.getMessage()]
    assert len(warnings) == 1
    assert len(debug) == 2


def test_max_series_caps_a_module_and_counts_the_rest(loopback_server):
    module = module_from("""
modules:
  test:
    max_series: 100
    metrics:
    - name: shard_docs
      type: object
      path: '{.shards[*]}'
      labels:
        shard: '{.id}'
      values:
        count: '{.docs}'
""")
    outcome, text = serve_and_scrape(loopback_server, module, {"shards": [{"id": index, "docs": index * 10} for index in range(250)]})
    assert outcome.success
    assert len(series(text, "shard_docs_count")) == 100
    assert dropped(text, "test", "limit") == 150


def test_scale_converts_units(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: job_duration_seconds
      path: '{.durationMillis}'
      scale: 0.001
    - name: disk
      type: object
      path: '{.disk}'
      values:
        used_bytes: '{.usedMiB}'
        used_ratio: '{.usedPercent}'
      scale: {used_bytes: 1048576, used_ratio: 0.01}
""")
    outcome, text = serve_and_scrape(loopback_server, module, {"durationMillis": 1500, "disk": {"usedMiB": 2, "usedPercent": 37.5}})
    assert value(text, "job_duration_seconds") == 1.5
    assert value(text, "disk_used_bytes") == 2 * 1048576
    assert value(text, "disk_used_ratio") == 0.375


def test_per_scrape_and_cumulative_module_metrics(loopback_server):
    registry = CollectorRegistry()
    stats = ModuleStats(registry)
    module = module_from(DUPLICATES)
    document = {"up": "yes", "backends": [{"host": "a", "requests": 1}, {"host": "a", "requests": 2}]}
    outcome, text = serve_and_scrape(loopback_server, module, document, stats)
    stats.record_scrape("test", outcome.success, outcome.duration)
    assert value(text, "pharos_module_scrape_series", module="test") == 1
    assert dropped(text, "test", "duplicate") == 1
    assert dropped(text, "test", "not_a_number") == 1  # "yes" is not a number
    assert value(text, "pharos_module_scrape_mapping_seconds", module="test") >= 0
    assert registry.get_sample_value("pharos_module_dropped_samples_total", {"module": "test", "reason": "duplicate"}) == 1
    assert registry.get_sample_value("pharos_module_dropped_samples_total", {"module": "test", "reason": "not_a_number"}) == 1
    assert registry.get_sample_value("pharos_module_scrapes_total", {"module": "test", "result": "success"}) == 1
    assert registry.get_sample_value("pharos_module_scrape_duration_seconds_count", {"module": "test"}) == 1


def test_a_failed_fetch_is_a_failed_scrape_without_module_series(loopback_server):
    module = module_from(DUPLICATES)
    from jsonmap_support import scrape

    outcome, text = scrape(module, loopback_server("<html>oops</html>", content_type="text/html") + "/stats")
    assert not outcome.success
    assert outcome.reason == "not_json"
    assert value(text, "pharos_scrape_success") == 0
    assert not series(text, "pharos_module_")


def test_nan_from_null_is_exported_as_json_exporter_does(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: last_latency
      path: '{.latency}'
""")
    outcome, text = serve_and_scrape(loopback_server, module, {"latency": None})
    assert same(value(text, "last_latency"), float("nan"))


def test_a_metric_that_fails_inside_the_engine_does_not_lose_the_others(loopback_server, caplog):
    module = module_from(DUPLICATES)

    def broken(document, scrape):
        raise RuntimeError("a bug in the engine")

    module._extractors[0].run = broken  # the first entry fails however the document looks
    with caplog.at_level(logging.ERROR, logger="pharos.exporter"):
        outcome, text = serve_and_scrape(loopback_server, module, {"up": 1, "backends": []})
    assert outcome.success
    assert value(text, "service_up") == 1
    assert dropped(text, "test", "expression_error") == 1
    assert any("backend_requests" in record.getMessage() and record.exc_info for record in caplog.records)


def test_one_entry_can_feed_the_catalogue_and_keep_a_metric_of_its_own(loopback_server):
    module = module_from("""
modules:
  test:
    metrics:
    - name: gc
      type: object
      path: '{.collectors}'
      key_label: kind
      label_map: {kind: {young: minor, old: major, '*': ~}}
      values:
        count: '{.count}'
        pauses: '{.pauses}'
      maps_to: {count: runtime_gc_collections_total}
""")
    document = {"collectors": {"young": {"count": 30, "pauses": 31}, "old": {"count": 2, "pauses": 4}, "concurrent": {"count": 9, "pauses": 0}}}
    outcome, text = serve_and_scrape(loopback_server, module, document)
    assert series(text, "runtime_gc_") == {key("runtime_gc_collections_total", kind="minor"): 30, key("runtime_gc_collections_total", kind="major"): 2}
    assert series(text, "gc_pauses") == {key("gc_pauses", kind="minor"): 31, key("gc_pauses", kind="major"): 4}
