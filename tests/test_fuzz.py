"""Property-based tests (hypothesis) over every profile and the JSON mapping engine: whatever a
target answers - any JSON document, any bytes, any status, any headers, lying lengths and
encodings - a scrape never raises, never ends in `internal_error`, reports success 0/1 with exactly
one reason on failure, and renders an exposition that `promtool check metrics` accepts.

Two paths:
- parse: `profile.parse` (and the health parser) on documents, without HTTP, for volume;
- scrape: the real Scraper and Fetcher against a loopback server whose response each example sets.

promtool costs ~40 ms a run, so it is batched: every exposition is parsed with prometheus_client's
parser in the example, and each distinct *structure* (the exposition with its sample values taken
out) goes to promtool once, when the test ends. The number of cases that ran is written to
.hypothesis/fuzz-report.json and printed at the end of the module. PHAROS_FUZZ_SCALE multiplies
the example counts (e.g. 10 for a long run).
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import math
import os
import re
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pharos_monitoring.exporter import catalogue as c
from pharos_monitoring.exporter.fetch import Fetcher
from pharos_monitoring.exporter.profiles import PROFILES
from pharos_monitoring.exporter.profiles.base import Profile
from pharos_monitoring.exporter.reading import DocumentError, Reading
from pharos_monitoring.exporter.routes import RouteTable
from pharos_monitoring.exporter.scrape import Scraper, Target
from pharos_monitoring.exporter.collect import render

from helpers import RawServer, promtool_check_metrics, read_request

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SCALE = float(os.environ.get("PHAROS_FUZZ_SCALE", "1"))
REPORT = ROOT / ".hypothesis" / "fuzz-report.json"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=False,
        database=DirectoryBasedExampleDatabase(str(ROOT / ".hypothesis" / "examples")),
        # function_scoped_fixture: the `expositions` batch is meant to span all examples of a test.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    )


# --- what is fuzzed: every profile, and json mapping modules with their sample documents --------
def _profile_targets() -> dict[str, tuple[Profile, object]]:
    return {name: (profile, json.loads((FIXTURES / "profiles" / f"{name}.json").read_text())) for name, profile in PROFILES.items()}


JSONMAP_TARGETS = {
    # target name: (mapping file, module, sample document)
    "jsonmap:json_exporter": ("jsonmap/json_exporter-config.yml", "default", "jsonmap/json_exporter-data.json"),
    "jsonmap:json_exporter-animals": ("jsonmap/json_exporter-config.yml", "animals", "jsonmap/json_exporter-animal-data.json"),
    "jsonmap:converter": ("jsonmap/json_exporter-converter-config.yml", "default", "jsonmap/json_exporter-converter-data.json"),
    "jsonmap:jolokia": ("../../examples/jolokia.yml", "jolokia-jvm", "jsonmap/jolokia-read-java-lang.json"),
    "jsonmap:jolokia-bulk": ("../../examples/jolokia.yml", "jolokia-jvm-bulk", "jsonmap/jolokia-bulk-response.json"),
    "jsonmap:spring-gc": ("../../examples/spring-actuator.yml", "spring-gc-minor", "jsonmap/spring-jvm.gc.pause-minor.json"),
    "jsonmap:spring-health": ("../../examples/spring-actuator.yml", "spring-health", "jsonmap/spring-health.json"),
}


def _jsonmap_target(name: str) -> tuple[Profile, object]:
    from pharos_monitoring.exporter.jsonmap import load_modules_file

    mapping, module, document = JSONMAP_TARGETS[name]
    modules = load_modules_file(str(FIXTURES / mapping))
    return modules[module].profile(), json.loads((FIXTURES / document).read_text())


PROFILE_TARGETS = _profile_targets()
TARGETS = sorted(PROFILE_TARGETS) + sorted(JSONMAP_TARGETS)


@functools.cache
def target(name: str) -> tuple[Profile, object]:
    return PROFILE_TARGETS[name] if name in PROFILE_TARGETS else _jsonmap_target(name)


def _keys(document, found: set[str]) -> set[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            found.add(key)
            _keys(value, found)
    elif isinstance(document, list):
        for value in document:
            _keys(value, found)
    return found


KEYS = sorted(set().union(*(_keys(json.loads(path.read_text()), set()) for path in FIXTURES.rglob("*.json"))))

# --- strategies -----------------------------------------------------------------------------------
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 2**53 + 1, 10**400, -(10**400)])  # beyond a float's range: OverflowError
    | st.floats()  # NaN and infinities included: json.loads accepts them
    | st.text(max_size=30)
    | st.sampled_from(["", "NaN", "1e999", "12", "-0", "PASS", "FAIL", "GET", "/orders/12", "\x00", "é\u2028"])
)
keys = st.sampled_from(KEYS) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25,
)


@st.composite
def mutated(draw, document):
    """`document` with one to four random edits (replace, retype, delete or add a member), each
    at a random depth: near-valid documents reach deep into a profile, where bugs hide."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        document = _edit(draw, document)
    return document


def _edit(draw, node):
    container = isinstance(node, (dict, list)) and len(node) > 0
    if container and draw(st.integers(0, 3)) > 0:  # usually go deeper
        key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        node[key] = _edit(draw, node[key])
        return node
    action = draw(st.sampled_from(["replace", "delete", "add"] if isinstance(node, (dict, list)) else ["replace"]))
    if action == "replace":
        return draw(json_values)
    if action == "delete" and node:
        key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        del node[key]
    elif isinstance(node, dict):
        node[draw(keys)] = draw(json_values)
    else:
        node.append(draw(json_values))
    return node


@functools.cache
def documents(name: str):
    _, sample = target(name)
    return json_values | mutated(sample)


# --- checking expositions -------------------------------------------------------------------------
CASES: Counter[str] = Counter()
PROMTOOL_RUNS: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()  # scrape path: how the examples ended, to see what was reached
OUTCOME_EXAMPLES: dict[str, str] = {}  # and the first detail of each
_VALUE = re.compile(r"(?m)^([^#\n].*) \S+$")


class Expositions:
    """Parses every exposition now; hands each distinct structure to promtool in `check()`."""

    def __init__(self) -> None:
        self.structures: dict[str, str] = {}

    def add(self, text: str) -> list:
        families = list(text_string_to_metric_families(text))  # raises on anything unparsable
        for family in families:
            for sample in family.samples:
                assert isinstance(sample.value, float) or isinstance(sample.value, int)
        self.structures.setdefault(_VALUE.sub(r"\1 V", text), text)
        return families

    def check(self, test: str) -> None:
        for text in self.structures.values():
            promtool_check_metrics(text)
        PROMTOOL_RUNS[test] += len(self.structures)


@pytest.fixture
def expositions(request):
    batch = Expositions()
    yield batch
    batch.check(request.node.originalname)


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    REPORT.parent.mkdir(exist_ok=True)
    summary = {
        "cases": dict(sorted(CASES.items())),
        "scrape_outcomes": dict(OUTCOMES.most_common()),
        "scrape_outcome_examples": dict(sorted(OUTCOME_EXAMPLES.items())),
        "promtool_runs": dict(sorted(PROMTOOL_RUNS.items())),
        "scale": SCALE,
    }
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # on the terminal, not into a test's captured output
        reporter.write_line("")
        for key, count in sorted(CASES.items()):
            reporter.write_line(f"fuzz: {count:6d} cases  {key}")
        outcomes = ", ".join(f"{reason} {count}" for reason, count in OUTCOMES.most_common())
        reporter.write_line(f"fuzz: scrapes ended in: {outcomes}")
        reporter.write_line(f"fuzz: {sum(CASES.values()):6d} cases in all; promtool checked {sum(PROMTOOL_RUNS.values())} distinct expositions ({REPORT})")


# --- the parse path ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TARGETS)
@fuzz_settings(150)
@given(data=st.data())
def test_parse_any_document(name: str, data, expositions):
    profile, _ = target(name)
    document = data.draw(documents(name))
    CASES[f"parse {name}"] += 1
    reading = Reading(RouteTable(50))
    try:
        profile.parse(document, reading)
    except (DocumentError, OverflowError):
        return  # what the scraper reports as invalid_document; anything else would be internal_error
    expositions.add(render(reading.families({"target": "app"})).decode())


@fuzz_settings(150)
@given(status=st.integers(100, 599) | st.sampled_from([200, 503]), document=json_values | st.none() | mutated({"status": "PASS"}))
def test_parse_any_health_answer(status: int, document, expositions):
    CASES["parse health (stargate)"] += 1
    health = PROFILES["stargate"].health
    reading = Reading()
    try:
        health.parse(status, document, reading)
    except (DocumentError, OverflowError):
        return  # the scraper counts this as unhealthy
    expositions.add(render(reading.families()).decode())


# --- the scrape path: a loopback target answering whatever the example says ---------------------
class Scripted:
    """The bytes every request gets until the next example; `close` ends the connection after."""

    response = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    close = True


def scripted(connection, server):
    for _ in range(20):  # a kept-alive connection serves a few requests (profile, then health)
        if read_request(connection, server, limit=2.0) is None:
            return
        connection.sendall(Scripted.response)
        if Scripted.close:
            return


@pytest.fixture(scope="module")
def loopback():
    with RawServer(scripted) as server:
        yield server


HTML = b"<!doctype html><html><head><title>Login</title></head><body>Please sign in</body></html>"
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789", min_size=1, max_size=16)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=40)
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/html", "text/plain", "", "application/octet-stream"]
ENCODINGS = ["", "identity", "gzip", "x-gzip", "deflate", "br", "GZIP", "gzip, gzip", "compress"]
FRAMINGS = ["length", "length_short", "length_long", "no_length", "chunked", "chunked_unframed", "two_lengths"]


@st.composite
def responses(draw, name: str):
    """(bytes on the wire, whether the connection closes after them) of an arbitrary answer."""
    kind = draw(st.sampled_from(["json", "json", "json", "bytes", "html", "json_then_junk"]))
    if kind == "json":
        body = json.dumps(draw(documents(name)), allow_nan=True).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=2000))
    elif kind == "html":
        body = HTML
    else:
        body = json.dumps(draw(documents(name))).encode() + draw(st.binary(min_size=1, max_size=20))
    # Mostly well-formed, so that many answers get as far as the profile; the rest anything.
    encoding = draw(token) if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(["", "", "", *ENCODINGS]))
    if encoding.lower() in ("gzip", "x-gzip") and draw(st.booleans()):
        body = gzip.compress(body)
    elif encoding == "deflate" and draw(st.booleans()):
        body = zlib.compress(body)
    status = 200 if draw(st.integers(0, 3)) else draw(st.sampled_from([100, 101, 204, 206, 301, 304, 401, 403, 404, 500, 503]) | st.integers(100, 599))
    framing = "length" if draw(st.booleans()) else draw(st.sampled_from(FRAMINGS))
    # Framings whose end the client cannot find, and 1xx answers (the client waits for another
    # status line), end with the connection: examples stay fast without losing the lie.
    close = framing not in ("length", "chunked") or status < 200 or draw(st.booleans())
    headers = [("Content-Type", draw(st.sampled_from(CONTENT_TYPES) | header_text))]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "length_short":
        headers.append(("Content-Length", str(draw(st.integers(0, max(0, len(body) - 1))))))
    elif framing == "length_long":
        headers.append(("Content-Length", str(len(body) + draw(st.integers(1, 10_000)))))
    elif framing == "two_lengths":
        headers += [("Content-Length", str(len(body))), ("Content-Length", str(len(body) + 1))]
    elif framing in ("chunked", "chunked_unframed"):
        headers.append(("Transfer-Encoding", "chunked"))
        if framing == "chunked":
            size = draw(st.integers(1, 64))
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)) + b"0\r\n\r\n"
    headers += draw(st.lists(st.tuples(token, header_text), max_size=3))
    if close:
        headers.append(("Connection", "close"))
    reason = draw(st.sampled_from(["OK", "Whatever", ""]))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{key}: {value}\r\n" for key, value in headers) + "\r\n"
    return head.encode("latin-1") + body, close


@pytest.mark.parametrize("name", TARGETS)
@fuzz_settings(60)
@given(data=st.data())
def test_scrape_any_answer(name: str, data, loopback, expositions):
    profile, _ = target(name)
    Scripted.response, Scripted.close = data.draw(responses(name))
    CASES[f"scrape {name}"] += 1
    fetcher = Fetcher(max_bytes=64 * 1024)
    scrape_target = Target(url=loopback.url("/stats"), profile=profile, fetcher=fetcher, routes=RouteTable(50), labels={"target": "app"})
    try:
        started = time.monotonic()
        outcome = Scraper(CollectorRegistry()).scrape(scrape_target, started + 2.0)
    finally:
        fetcher.close()
    OUTCOMES[outcome.reason or "success"] += 1
    OUTCOME_EXAMPLES.setdefault(outcome.reason or "success", outcome.detail)
    assert outcome.reason != "internal_error", outcome.detail
    families = expositions.add(render(outcome.families).decode())
    values = {(s.name, s.labels.get("reason")): s.value for f in families for s in f.samples if s.name.startswith("pharos_scrape_")}
    assert values[(c.SCRAPE_SUCCESS.name, None)] == (1.0 if outcome.success else 0.0)
    reasons = [reason for (sample, reason), value in values.items() if sample == c.SCRAPE_ERROR.name and value == 1.0]
    assert reasons == ([] if outcome.success else [outcome.reason])
    assert outcome.success or (outcome.reason in c.SCRAPE_ERROR_REASONS and outcome.detail)
    assert math.isfinite(values[(c.SCRAPE_DURATION.name, None)])


# --- found by fuzzing -----------------------------------------------------------------------------
def test_a_garbled_answer_quoting_connection_refused_is_not_a_refusal(loopback):
    """A 100 Continue followed by a body line the client reads as a status line: the error quotes
    the body, here a Spring health document reporting "Connection refused" of its own. Classified
    by message text, that was reported as connection_refused."""
    body = (FIXTURES / "jsonmap" / "spring-health.json").read_bytes()
    assert b"Connection refused" in body
    Scripted.response = b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n" + body.replace(b"\n", b" ")
    Scripted.close = True
    fetcher = Fetcher()
    try:
        outcome = Scraper(CollectorRegistry()).scrape(
            Target(url=loopback.url("/stats"), profile=PROFILES["pharo"], fetcher=fetcher, routes=RouteTable(50)), time.monotonic() + 2
        )
    finally:
        fetcher.close()
    assert outcome.reason == "connection_error", outcome.detail
    assert "BadStatusLine" in outcome.detail
