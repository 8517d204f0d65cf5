"""`pharos dashboards push` against a loopback imitation of Grafana's HTTP API.

Grafana cannot run here (docs/dashboards.md says so). `FakeGrafana` answers as Grafana's API
documentation says (developers/http_api/folder.md and dashboard.md: paths, bodies, status codes
and error bodies) and checks every request it gets against the same documentation: credentials,
JSON content type, the fields of each body, that a saved dashboard names an existing folder by
uid and passes Grafana's published dashboard schema. A request it does not recognise is answered
404, as Grafana answers an unknown API path.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pharos_monitoring import dashboards
from pharos_monitoring.dashboards.push import COMMIT_MESSAGE, MAX_UID_LENGTH
from pharos_monitoring.cli import main

import grafana_schema

TOKEN = "glsa_test_token_0123456789"
USER, PASSWORD = "pusher", "s3cret pass"
DASHBOARD_BODY_KEYS = {"dashboard", "folderId", "folderUid", "message", "overwrite"}
ALL_UIDS = sorted(board.uid for board in dashboards.build_all())  # test_dashboards.py counts them


class FakeGrafana:
    """Grafana's folder and dashboard API on 127.0.0.1, optionally under a sub-path."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}  # uid -> {"dashboard", "folderUid", "version"}
        self.requests: list[tuple[str, str, dict]] = []  # method, path, headers
        self.violations: list[str] = []  # requests that break the documented API
        self.answer_with: dict[tuple[str, str], tuple[int, dict]] = {}  # forced answers, by (method, path)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                fake._handle(self, "GET")

            def do_POST(self):  # noqa: N802
                fake._handle(self, "POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- the API ---------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        length = int(headers.get("content-length", 0))
        raw = handler.rfile.read(length) if length else b""
        path = handler.path
        self.requests.append((method, path, headers))
        status, body = self._answer(method, path, headers, raw)
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _authorized(self, headers: dict) -> bool:
        given = headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return given in (f"Bearer {TOKEN}", basic)

    def _answer(self, method: str, path: str, headers: dict, raw: bytes) -> tuple[int, dict]:
        if not path.startswith(self.prefix + "/api/"):
            return 404, {"message": "Not found"}
        path = path[len(self.prefix) :]
        if (method, path) in self.answer_with:
            return self.answer_with[(method, path)]
        if not self._authorized(headers):
            return 401, {"message": "Unauthorized"}
        if "application/json" not in headers.get("accept", ""):
            self.violations.append(f"{method} {path} without Accept: application/json")
        body = None
        if method == "POST":
            if not headers.get("content-type", "").startswith("application/json"):
                self.violations.append(f"{method} {path} without Content-Type: application/json")
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, {"message": "bad request data"}
        if method == "GET" and path.startswith("/api/folders/"):
            folder = self.folders.get(path.rsplit("/", 1)[1])
            return (200, folder) if folder else (404, {"message": "Folder not found", "status": "not-found"})
        if method == "GET" and path == "/api/folders":
            return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in self.folders.values()]
        if method == "POST" and path == "/api/folders":
            return self._create_folder(body)
        if method == "POST" and path == "/api/dashboards/db":
            return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _create_folder(self, body) -> tuple[int, dict]:
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"]:
            self.violations.append(f"folder body without a title: {body}")
            return 400, {"message": "folder title cannot be empty"}
        if set(body) - {"uid", "title", "parentUid", "description"}:
            self.violations.append(f"folder body with unknown fields: {sorted(set(body))}")
        uid = body.get("uid", f"generated{len(self.folders)}")
        if len(uid) > MAX_UID_LENGTH:
            return 400, {"message": "uid too long, max 40 characters"}
        if uid in self.folders or any(f["title"] == body["title"] for f in self.folders.values()):
            return 409, {"message": "a folder with the same name already exists"}
        folder = {"id": len(self.folders) + 1, "uid": uid, "title": body["title"], "url": f"/dashboards/f/{uid}/", "version": 1}
        self.folders[uid] = folder
        return 200, folder

    def _save_dashboard(self, body) -> tuple[int, dict]:
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return 400, {"message": "bad request data"}
        if set(body) - DASHBOARD_BODY_KEYS:
            self.violations.append(f"dashboard body with unknown fields: {sorted(set(body) - DASHBOARD_BODY_KEYS)}")
        model = body["dashboard"]
        if not model.get("title"):
            return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
        uid = model.get("uid")
        if not uid or len(uid) > MAX_UID_LENGTH:
            self.violations.append(f"dashboard without a stable uid: {uid!r}")
        if model.get("id") is not None:
            self.violations.append(f"dashboard {uid} sent with a foreign id {model['id']!r} (must be null)")
        problems = grafana_schema.dashboard_problems({key: value for key, value in model.items() if key != "id"})
        if problems:
            self.violations.append(f"dashboard {uid} breaks Grafana's schema: {problems[:3]}")
            return 400, {"message": "invalid dashboard"}
        folder = body.get("folderUid")
        if folder not in self.folders:
            return 400, {"message": "folder not found"}
        existing = self.dashboards.get(uid)
        if existing and not body.get("overwrite"):
            return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
        version = existing["version"] + 1 if existing else 1
        self.dashboards[uid] = {"dashboard": model, "folderUid": folder, "version": version, "message": body.get("message")}
        slug = model["title"].lower().replace(" / ", "-").replace(" ", "-")
        return 200, {"id": len(self.dashboards), "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success", "version": version, "slug": slug}


@pytest.fixture
def grafana():
    fake = FakeGrafana()
    yield fake
    fake.stop()


@pytest.fixture
def no_credentials(monkeypatch):
    for name in ("GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _push(*extra: str) -> int:
    return main(["dashboards", "push", *extra])


def test_push_creates_folder_and_every_dashboard_with_a_token(grafana, no_credentials, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert _push("--url", grafana.url) == 0
    assert grafana.violations == []
    assert list(grafana.folders) == ["pharos"] and grafana.folders["pharos"]["title"] == "Pharos"
    assert sorted(grafana.dashboards) == ALL_UIDS
    assert {entry["folderUid"] for entry in grafana.dashboards.values()} == {"pharos"}
    assert {entry["message"] for entry in grafana.dashboards.values()} == {COMMIT_MESSAGE}
    assert all(headers["authorization"] == f"Bearer {TOKEN}" for _, _, headers in grafana.requests)
    output = capsys.readouterr()
    assert "/d/pharos-services-overview/" in output.out and "(version 1)" in output.out
    assert TOKEN not in output.out + output.err


def test_push_again_overwrites_by_uid(grafana, no_credentials, monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert _push("--url", grafana.url) == 0
    first = {uid: entry["dashboard"] for uid, entry in grafana.dashboards.items()}
    assert _push("--url", grafana.url) == 0
    assert grafana.violations == []
    assert sorted(grafana.dashboards) == ALL_UIDS and len(grafana.folders) == 1
    assert {entry["version"] for entry in grafana.dashboards.values()} == {2}
    assert {uid: entry["dashboard"] for uid, entry in grafana.dashboards.items()} == first
    folder_creations = [path for method, path, _ in grafana.requests if (method, path) == ("POST", "/api/folders")]
    assert len(folder_creations) == 1


def test_push_with_basic_auth_into_a_named_folder(grafana, no_credentials, monkeypatch):
    monkeypatch.setenv("GRAFANA_USER", USER)
    monkeypatch.setenv("GRAFANA_PASSWORD", PASSWORD)
    assert _push("--url", grafana.url, "--folder", "Team Orders / Prod") == 0
    assert list(grafana.folders) == ["team-orders-prod"]
    assert all(headers["authorization"].startswith("Basic ") for _, _, headers in grafana.requests)


def test_push_with_a_token_file_to_grafana_under_a_sub_path(no_credentials, tmp_path):
    fake = FakeGrafana(prefix="/grafana")
    try:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        assert _push("--url", fake.url + "/", "--token-file", str(token_file)) == 0
        assert sorted(fake.dashboards) == ALL_UIDS and fake.violations == []
    finally:
        fake.stop()


def test_without_credentials_nothing_is_sent(grafana, no_credentials, capsys):
    assert _push("--url", grafana.url) == 1
    assert grafana.requests == []
    assert "GRAFANA_TOKEN" in capsys.readouterr().err


def test_empty_token_file_is_refused(grafana, no_credentials, tmp_path, capsys):
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert _push("--url", grafana.url, "--token-file", str(empty)) == 1
    assert "is empty" in capsys.readouterr().err and grafana.requests == []


def test_401_says_which_credentials_to_check(grafana, no_credentials, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", "expired-token")
    assert _push("--url", grafana.url) == 1
    error = capsys.readouterr().err
    assert "HTTP 401" in error and "GRAFANA_TOKEN" in error and "expired-token" not in error
    assert grafana.dashboards == {}


def test_403_asks_for_the_editor_role(grafana, no_credentials, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    grafana.answer_with[("POST", "/api/folders")] = (403, {"message": "You'll need additional permissions to perform this action."})
    assert _push("--url", grafana.url) == 1
    error = capsys.readouterr().err
    assert "HTTP 403" in error and "create folder 'Pharos'" in error and "Editor" in error


def test_404_points_at_the_url(grafana, no_credentials, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert _push("--url", grafana.url + "/not-grafana") == 1
    error = capsys.readouterr().err
    assert "HTTP 404" in error and "sub-path" in error and "--url" in error


def test_412_explains_the_precondition(grafana, no_credentials, monkeypatch, capsys):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    grafana.answer_with[("POST", "/api/dashboards/db")] = (
        412,
        {"message": "A dashboard with the same name in the folder already exists", "status": "name-exists"},
    )
    assert _push("--url", grafana.url) == 1
    error = capsys.readouterr().err
    assert "HTTP 412" in error and "name-exists" in error and "rename or delete it" in error


def test_unreachable_grafana_names_the_url(no_credentials, monkeypatch, capsys):
    from stack import free_port

    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{free_port()}"
    assert _push("--url", url) == 1
    error = capsys.readouterr().err
    assert f"cannot reach Grafana at {url}" in error and "--url" in error
