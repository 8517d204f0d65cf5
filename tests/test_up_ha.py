"""`pharos up --ha --fast` on the real binaries: production as a Prometheus pair, the Alertmanager as a
cluster of three, every one of them started with the flags `pharos build` wrote into ha.yml.

One `pharos up` serves the tests of this module, in order (each leaves it as the next expects):
what it describes and runs, the cluster settling, the pair's `replica` labels, both replicas heard
in the global store, then one replica and one Alertmanager killed with SIGKILL (pharos up goes on
and says so), and at last the stop, which must leave no process behind.

Everything listens on 127.0.0.1 on ports picked free; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
import requests
import yaml

from pharos_monitoring.alerts.catalogue import WATCHDOG
from pharos_monitoring.config import ha

from helpers import wait_for
from pharos_up import PharosUp

pytestmark = pytest.mark.slow

PAIRED = "production"
MEMBERS = 3
SETTLE_SECONDS = 60  # gossip settled: ~10 s on an idle machine
SIGNAL_SECONDS = 90  # first evaluations, a remote-write batch, the store's latency offset
GOES_ON_SECONDS = 10  # pharos up polls its children every quarter second
LIGHT_PROCESSES = 11


def get_json(url: str):
    try:
        return requests.get(url, timeout=5).json()
    except (requests.RequestException, ValueError):
        return None


def peers_ready(alertmanager: str) -> int:
    cluster = (get_json(f"{alertmanager}/api/v2/status") or {}).get("cluster") or {}
    return len(cluster.get("peers") or []) if cluster.get("status") == "ready" else 0


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    directory = tmp_path_factory.mktemp("up-ha")
    running = PharosUp(directory / "state", directory / "up.out", "--ha", "--fast")
    try:
        running.described = running.wait_described()
        yield running
    finally:
        running.stop()


def test_it_runs_and_describes_every_replica_and_member_with_the_builds_flags(up: PharosUp):
    described = up.described
    assert described["ha"] is True
    pair = described["prometheus_servers"][PAIRED]
    assert [server["replica"] for server in pair] == ["1", "2"]
    assert [server["replica"] for server in described["prometheus_servers"]["beta"]] == [None], "beta keeps one Prometheus"
    assert len(described["alertmanagers"]) == MEMBERS and all(member["cluster"] for member in described["alertmanagers"])
    assert described["prometheus"][PAIRED] == pair[0]["url"] and described["alertmanager"] == described["alertmanagers"][0]["url"]
    assert len(described["children"]) == LIGHT_PROCESSES + 3, "a second Prometheus and two more Alertmanagers"

    # What runs is what the build wrote: ha.yml's flags on each command line, REPLICA in each replica's environment.
    built = yaml.safe_load((up.state / "config" / PAIRED / ha.FLAGS_FILE).read_text())
    for server, replica in zip(pair, built["prometheus"], strict=True):
        process = psutil.Process(server["pid"])
        assert set(replica["flags"]) <= set(process.cmdline()), process.cmdline()
        assert process.environ().get(ha.REPLICA_VARIABLE) == replica["environment"][ha.REPLICA_VARIABLE]
        assert server["url"] == f"http://{replica['address']}"
    for member, flags in zip(described["alertmanagers"], built["alertmanager"], strict=True):
        assert set(flags["flags"]) <= set(psutil.Process(member["pid"]).cmdline())
        assert (member["url"], member["cluster"]) == (f"http://{flags['address']}", flags["cluster_address"])
    # --fast's group_interval of 5 s leaves the cluster a peer timeout of 2 s: (3 - 1) x 2 s < 5 s.
    assert all("--cluster.peer-timeout=2s" in flags["flags"] for flags in built["alertmanager"])

    introduction = up.log()
    for server in pair:
        assert f"{server['url']}  (replica=\"{server['replica']}\")" in introduction
    for member in described["alertmanagers"]:
        assert f"{member['url']}  (gossip {member['cluster']})" in introduction
    assert f"Alertmanager cluster of {MEMBERS}" in introduction


def test_the_three_alertmanagers_form_one_cluster(up: PharosUp):
    started = time.monotonic()
    for member in up.described["alertmanagers"]:
        url = member["url"]
        assert wait_for(lambda: peers_ready(url) == MEMBERS, SETTLE_SECONDS), f"{url}: {get_json(url + '/api/v2/status')}"
    print(f"\npharos up --ha: the cluster of {MEMBERS} settled {time.monotonic() - started:.1f} s after up.json")


def test_each_replica_carries_its_replica_label(up: PharosUp):
    for server in up.described["prometheus_servers"][PAIRED]:
        federated = lambda: requests.get(f"{server['url']}/federate", params={"match[]": 'up{job="prometheus"}'}, timeout=5).text  # noqa: E731
        text = wait_for(lambda: 'replica="' in federated() and federated(), SIGNAL_SECONDS)
        assert text and f'replica="{server["replica"]}"' in text and "${REPLICA}" not in text, text


def test_the_store_hears_both_replicas_watchdog(up: PharosUp):
    store = up.described["global_store"]
    expr = f'ALERTS{{alertname="{WATCHDOG.name}", environment="{PAIRED}"}}'

    def heard() -> set[str]:
        # nocache: the store would otherwise answer from its cache of what it had a moment ago
        answer = get_json(f"{store}/api/v1/query?nocache=1&query={requests.utils.quote(expr)}") or {}
        return {series["metric"].get(ha.REPLICA_LABEL) for series in answer.get("data", {}).get("result", [])}

    assert wait_for(lambda: heard() == {"1", "2"}, SIGNAL_SECONDS), f"the store hears {heard()}"
    # What the shape costs: the resident memory of every Prometheus and Alertmanager, once both replicas are heard.
    servers = [*(s for servers in up.described["prometheus_servers"].values() for s in servers), *up.described["alertmanagers"]]
    sizes = ", ".join(f"{s['name']} {psutil.Process(s['pid']).memory_info().rss / 2**20:.0f} MB" for s in servers)
    print(f"\npharos up --ha --fast: resident memory {sizes}")


def test_a_lost_replica_and_a_lost_member_are_survived_and_said(up: PharosUp):
    replica = up.described["prometheus_servers"][PAIRED][0]
    member = up.described["alertmanagers"][-1]
    os.kill(replica["pid"], signal.SIGKILL)
    said = f"pharos up: {replica['name']} exited with code -9; see "
    assert up.wait_said(said, GOES_ON_SECONDS), up.log()[-3000:]
    assert f"; {PAIRED}'s Prometheus pair goes on with 1 of 2 replicas" in up.log()
    os.kill(member["pid"], signal.SIGKILL)
    assert up.wait_said(f"pharos up: {member['name']} exited with code -9; see ", GOES_ON_SECONDS), up.log()[-3000:]
    assert f"; the Alertmanager cluster goes on with {MEMBERS - 1} of {MEMBERS} members" in up.log()
    time.sleep(3)  # a dozen of its polls later
    assert up.running(), up.log()[-3000:]
    assert "stopping everything" not in up.log()
    survivor = up.described["prometheus_servers"][PAIRED][1]["url"]
    assert requests.get(f"{survivor}/-/ready", timeout=5).status_code == 200
    assert peers_ready(up.described["alertmanagers"][0]["url"]) in (MEMBERS, MEMBERS - 1), "the cluster answers"
    assert up.log().count(" goes on with ") == 2, "one line per loss"


def test_stopping_stops_every_process(up: PharosUp):
    children = [psutil.Process(child["pid"]) for child in up.described["children"] if psutil.pid_exists(child["pid"])]
    assert up.stop() == 0, up.log()[-3000:]
    assert f"pharos up: stopped {LIGHT_PROCESSES + 3} processes\n" in up.log()

    def gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)

    assert wait_for(gone, 10), [p.name() for p in children if p.is_running()]
    assert not (up.state / "up.json").exists()
