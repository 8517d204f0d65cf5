"""The `pharo` stats format: its JSON Schema, its specification page and the profile agree."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.profiles import get as get_profile
from pharos_monitoring.exporter.reading import DocumentError, Reading

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "exporter/profiles/schemas/pharo-stats.schema.json").read_text())
FIXTURE = json.loads((ROOT / "tests/fixtures/profiles/pharo.json").read_text())
SPEC = (ROOT / "docs/pharo-stats.md").read_text()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
PHARO = get_profile("pharo")


def parse(document) -> Reading:
    reading = Reading()
    PHARO.parse(document, reading)
    return reading


def exported_names(reading: Reading) -> set[str]:
    return {sample.name for family in reading.families() for sample in family.samples}


def spec_example() -> dict:
    block = re.search(r"## A complete example\s+```json\n(.*?)```", SPEC, re.S)
    assert block, "docs/pharo-stats.md lost its example"
    return json.loads(block.group(1))


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("document", [FIXTURE, spec_example()], ids=["fixture", "spec example"])
def test_the_fixture_and_the_spec_example_are_valid_and_parse(document):
    assert list(VALIDATOR.iter_errors(document)) == []
    assert c.HTTP_REQUEST_DURATION in parse(document)


def test_the_smallest_document_is_valid():
    assert VALIDATOR.is_valid({})
    assert parse({}).value(c.RUNTIME_INFO, ("pharo", "", "", "")) == 1.0


def _set(document, path, value):
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return document


_DELETE = object()

# (JSON path, wrong value, does the profile refuse it too?). The profile is lenient where it
# can be without guessing (numbers as booleans, numeric statuses as strings); the schema is not.
WRONG = [
    (("vm", "fullGCCount"), "12", True),
    (("vm", "oldSpace"), -1, False),
    (("vm", "totalFullGCTime"), None, True),
    (("runtime", "uptimeSeconds"), "a day", True),
    (("runtime", "version"), 11, False),
    (("health", "healthy"), "yes", True),
    (("health", "healthy"), _DELETE, True),
    (("health", "checks", "database"), 1, False),
    (("http", "activeRequests"), 2.5, False),
    (("http", "requests"), {"GET /orders": 1}, True),
    (("http", "durationBucketsMs"), "5,10", True),
    (("http", "requests", 0, "count"), _DELETE, True),
    (("http", "requests", 0, "count"), "1200", True),
    (("http", "requests", 0, "status"), "200", False),
    (("http", "requests", 0, "durationBucketCounts"), ["300"] * 8, True),
    (("http", "requests", 0, "totalDurationMs"), "18000", True),
    (("vm",), [], True),
    (("application",), "orders", True),
    (("processes",), {"blocked": 14}, True),
    (("processes", 0, "count"), "1", True),
    (("processes", 0, "priority"), "high", True),
    (("processes", 0, "state"), _DELETE, True),
    (("handleTables",), {"external_semaphores": 17}, True),
    (("handleTables", 0, "used"), "17", True),
    (("handleTables", 0, "max"), -1, False),
    (("vm", "processSwitchCount"), "many", True),
    (("vm", "processSwitchCount"), 1.5, False),
    (("vm", "totalGCMarkPhaseTime"), -1, False),
    (("vm", "totalJITCompileBlocksTime"), "380 ms", True),
    (("vm", "machineCodeZoneSize"), None, True),  # a VM without the JIT answers nil: leave the field out
    (("vm", "jittedMethodsCount"), [3104], True),
    (("health", "status"), "WARN", True),  # the IETF draft's words are lower case
    (("health", "status"), "degraded", True),
    (("health", "status"), True, True),
    (("health", "status"), None, True),
]


@pytest.mark.parametrize("path, value, profile_refuses", WRONG, ids=lambda x: repr(x)[:40])
def test_the_schema_rejects_wrong_types(path, value, profile_refuses):
    document = _set(copy.deepcopy(FIXTURE), path, value)
    assert not VALIDATOR.is_valid(document)
    if profile_refuses:
        with pytest.raises(DocumentError):
            parse(document)


def test_bucket_counts_need_bucket_bounds():
    document = copy.deepcopy(FIXTURE)
    del document["http"]["durationBucketsMs"]
    assert not VALIDATOR.is_valid(document)
    with pytest.raises(DocumentError, match=r"durationBucketCounts: has 8 entries but \$\.http\.durationBucketsMs has 0"):
        parse(document)


def test_the_profile_refuses_bounds_out_of_order():
    document = copy.deepcopy(FIXTURE)
    document["http"]["durationBucketsMs"] = [5, 10, 25, 25, 100, 250, 500, 1000]
    with pytest.raises(DocumentError) as refused:
        parse(document)
    assert refused.value.path == "$.http.durationBucketsMs[3]"
    assert "strictly ascending" in refused.value.problem


def test_the_profile_refuses_cumulative_bucket_counts():
    document = copy.deepcopy(FIXTURE)
    row = document["http"]["requests"][0]
    running, cumulative = 0, []
    for count in row["durationBucketCounts"]:
        running += count
        cumulative.append(running)
    row["durationBucketCounts"] = cumulative
    assert VALIDATOR.is_valid(document), "the schema cannot tell; the profile must"
    with pytest.raises(DocumentError) as refused:
        parse(document)
    assert refused.value.path == "$.http.requests[0].durationBucketCounts"
    assert "not cumulatively" in refused.value.problem


def test_requests_slower_than_the_last_bound_count_only_in_inf():
    reading = parse(FIXTURE)
    labels = ("GET", "/orders/{id}", "200")
    family = next(f for f in reading.families() if f.name == c.HTTP_REQUEST_DURATION.name)
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == c.HTTP_REQUEST_DURATION.bucket and (s.labels[c.Label.METHOD], s.labels[c.Label.ROUTE], s.labels[c.Label.STATUS]) == labels}
    assert buckets["1.0"] == 1198  # 300+500+300+50+30+10+5+3
    assert buckets["+Inf"] == 1200  # the row's count: two requests took longer than 1000 ms


def test_every_metric_the_profile_produces_is_in_the_spec_and_every_spec_metric_exists():
    produced = set()
    for family in parse(spec_example()).families():
        produced.add(family.name if family.type != c.COUNTER else family.name + "_total")
    missing = sorted(name for name in produced if f"`{name}" not in SPEC)
    assert not missing, f"docs/pharo-stats.md does not say where these come from: {missing}"
    known = {m.name for m in c.all_metrics()} | {m.bucket for m in c.all_metrics()} | {m.count for m in c.all_metrics()} | {m.sum for m in c.all_metrics()}
    mentioned = set(re.findall(r"`((?:runtime|http_server|application)_[a-z_]+)", SPEC))
    assert mentioned - known == set(), "the spec names metrics the catalogue does not have"


def test_every_schema_field_is_specified():
    fields = set()

    def walk(schema):
        if isinstance(schema, dict):
            fields.update(schema.get("properties", {}))
            for value in schema.values():
                walk(value)
        elif isinstance(schema, list):
            for value in schema:
                walk(value)

    walk(SCHEMA)
    unspecified = sorted(name for name in fields if f"`{name}`" not in SPEC)
    assert not unspecified


def test_processes_and_handle_tables_map_to_the_runtime_metrics():
    reading = parse(FIXTURE)
    assert reading.value(c.PROCESSES, ("blocked", "40")) == 14
    assert reading.value(c.HANDLE_TABLE_SLOTS, ("external_semaphores", c.HANDLE_SLOT_USED)) == 17
    assert reading.value(c.HANDLE_TABLE_LIMIT, ("external_semaphores",)) == 256


def test_process_rows_with_one_state_and_priority_add_up_and_states_are_lower_cased():
    reading = parse({"processes": [{"state": "BLOCKED", "priority": 40, "count": 2}, {"state": "blocked", "priority": 40.0, "count": 3}]})
    assert reading.value(c.PROCESSES, ("blocked", "40")) == 5


# --- the optional VM parameters (parameterAt: indices in docs/pharo-stats.md) ------------------
OPTIONAL_VM_FIELDS = (
    "totalGCMarkPhaseTime", "totalGCSweepPhaseTime", "totalGCCompactionPhaseTime", "processSwitchCount",
    "compiledMethodsCount", "totalJITCompileMethodsTime", "compiledBlocksCount", "totalJITCompileBlocksTime",
    "codeCompactionCount", "totalCodeCompactionTime", "machineCodeZoneSize", "jittedMethodsCount",
)
OPTIONAL_VM_METRICS = (
    c.GC_PHASE_DURATION, c.PROCESS_SWITCHES, c.JIT_COMPILATIONS, c.JIT_COMPILATION_DURATION,
    c.JIT_CODE_COMPACTIONS, c.JIT_CODE_COMPACTION_DURATION, c.JIT_CODE_ZONE_SIZE, c.JIT_CODE_ZONE_METHODS,
)


def sample_lines(reading: Reading) -> set[str]:
    return {line for family in reading.families() for line in family.sample_lines().splitlines()}


def test_the_optional_vm_parameters_of_the_fixture_give_these_series():
    document = {"vm": {name: FIXTURE["vm"][name] for name in OPTIONAL_VM_FIELDS}}
    assert VALIDATOR.is_valid(document)
    assert sample_lines(parse(document)) - sample_lines(parse({})) == {
        'runtime_gc_phase_duration_seconds_total{kind="major",phase="mark"} 1.8',
        'runtime_gc_phase_duration_seconds_total{kind="major",phase="sweep"} 0.45',
        'runtime_gc_phase_duration_seconds_total{kind="major",phase="compact"} 1.1',
        "runtime_process_switches_total 2.718281e+06",
        'runtime_jit_compilations_total{kind="method"} 40213.0',
        'runtime_jit_compilations_total{kind="block"} 9120.0',
        'runtime_jit_compilation_duration_seconds_total{kind="method"} 2.25',
        'runtime_jit_compilation_duration_seconds_total{kind="block"} 0.38',
        "runtime_jit_code_compactions_total 7.0",
        "runtime_jit_code_compaction_duration_seconds_total 0.042",
        "runtime_jit_code_zone_bytes 2.097152e+06",
        "runtime_jit_code_zone_methods 3104.0",
    }


def test_a_vm_section_without_the_optional_parameters_is_valid_and_gives_none_of_their_metrics():
    document = copy.deepcopy(FIXTURE)
    for name in OPTIONAL_VM_FIELDS:
        del document["vm"][name]
    assert VALIDATOR.is_valid(document)
    reading = parse(document)
    assert c.GC_DURATION in reading and c.MEMORY_SPACE in reading
    assert [metric.name for metric in OPTIONAL_VM_METRICS if metric in reading] == []


@pytest.mark.parametrize("name", OPTIONAL_VM_FIELDS)
def test_an_absent_vm_parameter_takes_only_its_own_series_away(name):
    document = copy.deepcopy(FIXTURE)
    del document["vm"][name]
    assert VALIDATOR.is_valid(document)
    gone = sample_lines(parse(FIXTURE)) - sample_lines(parse(document))
    assert len(gone) == 1 and sample_lines(parse(document)) <= sample_lines(parse(FIXTURE))


def test_a_wrong_vm_parameter_names_its_path():
    with pytest.raises(DocumentError) as refused:
        parse({"vm": {"processSwitchCount": "2718281"}})
    assert refused.value.path == "$.vm.processSwitchCount"


# --- health.status: pass | warn | fail ---------------------------------------------------------
@pytest.mark.parametrize("status", c.HEALTH_STATUSES)
def test_health_status_is_an_enum_gauge(status):
    document = {"health": {"healthy": status != c.HEALTH_FAIL, "status": status}}
    assert VALIDATOR.is_valid(document)
    reading = parse(document)
    assert {each: reading.value(c.APP_HEALTH_STATUS, (each,)) for each in c.HEALTH_STATUSES} == {
        each: 1.0 if each == status else 0.0 for each in c.HEALTH_STATUSES
    }


def test_without_a_status_there_is_no_health_status_metric():
    reading = parse({"health": {"healthy": True}})
    assert reading.value(c.APP_HEALTHY) == 1.0 and c.APP_HEALTH_STATUS not in reading


@pytest.mark.parametrize(("healthy", "status"), [(True, "fail"), (False, "pass"), (False, "warn")])
def test_healthy_and_a_disagreeing_status_each_give_their_own_metric(healthy, status):
    """Documented in docs/pharo-stats.md: not refused, nothing reconciled."""
    document = {"health": {"healthy": healthy, "status": status}}
    assert VALIDATOR.is_valid(document)
    reading = parse(document)
    assert reading.value(c.APP_HEALTHY) == (1.0 if healthy else 0.0)
    assert reading.value(c.APP_HEALTH_STATUS, (status,)) == 1.0


def test_a_wrong_status_names_its_path_and_the_allowed_words():
    with pytest.raises(DocumentError) as refused:
        parse({"health": {"healthy": True, "status": "PASS"}})
    assert refused.value.path == "$.health.status"
    assert '"pass", "warn" or "fail"' in refused.value.problem
