"""/probe?module=...&target=... through a running exporter, json_exporter's interface: the
documented example served on loopback, an unknown module, a target off the allow-list, and the
modules' counters on the exporter's own /metrics.

These run once the exporter's configuration takes `modules:` (docs/json-mapping.md, "Integration
into the exporter"); until then they are skipped, saying so."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
import yaml

from pharos_monitoring.exporter import config as config_module

from jsonmap_support import documented, families, series, value

FIXTURES = Path(__file__).parent / "fixtures" / "jsonmap"


def _config(extra_allow: str = "127.0.0.0/8"):
    data = yaml.safe_load((FIXTURES / "json_exporter-config.yml").read_text())
    data["probe"] = {"allow": [extra_allow]}
    try:
        return config_module.parse(data, "pharos.yml")
    except config_module.ConfigError as error:
        if "modules: unknown key" in str(error):
            pytest.skip("the exporter's configuration does not take modules yet (docs/json-mapping.md, integration)")
        raise


@pytest.fixture
def exporter_url():
    from pharos_monitoring.exporter.collect import Exporter
    from pharos_monitoring.exporter.serving.server import make_server

    exporter = Exporter(_config())
    server = make_server(exporter, "127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    exporter.close()
    thread.join(timeout=5)


def test_probe_with_a_module_gives_the_documented_series(exporter_url, loopback_server):
    target = loopback_server((FIXTURES / "json_exporter-data.json").read_bytes()) + "/examples/data.json"
    response = requests.get(f"{exporter_url}/probe", params={"module": "default", "target": target}, timeout=10)
    assert response.status_code == 200
    ours = {name: family for name, family in families(response.text).items() if not name.startswith("pharos_")}
    assert ours == documented("json_exporter-expected.prom")
    assert value(response.text, "pharos_scrape_success") == 1

    own = requests.get(f"{exporter_url}/metrics", timeout=10).text
    assert value(own, "pharos_module_scrapes_total", module="default", result="success") == 1
    assert value(own, "pharos_module_scrapes_total", module="animals", result="success") == 0
    assert series(own, "pharos_module_dropped_samples_total")


def test_an_unknown_module_is_a_bad_request_naming_the_modules(exporter_url, loopback_server):
    target = loopback_server(b"{}") + "/"
    response = requests.get(f"{exporter_url}/probe", params={"module": "defualt", "target": target}, timeout=10)
    assert response.status_code == 400
    assert "defualt" in response.text and "animals, default" in response.text


def test_a_module_cannot_reach_past_the_allow_list(exporter_url):
    response = requests.get(f"{exporter_url}/probe", params={"module": "default", "target": "http://192.0.2.1:8000/data.json"}, timeout=10)
    assert response.status_code == 403
