"""`pharos dashboards push`: the dashboards, in their folder, uploaded to a running Grafana.

Through Grafana's HTTP API (docs: developers/http_api/folder and /dashboard): the folder is read
with `GET /api/folders/<uid>` and created with `POST /api/folders` when missing; each dashboard is
saved with `POST /api/dashboards/db`, `overwrite: true` and the folder's uid, so pushing again
replaces the dashboards (same uids) instead of adding copies. Credentials come from the
environment or a file, never from the command line: a service-account token (`GRAFANA_TOKEN` or
`--token-file`), else basic auth (`GRAFANA_USER`, `GRAFANA_PASSWORD`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import requests

from .prometheus import describe

TIMEOUT_SECONDS = 30
TOKEN_VARIABLE = "GRAFANA_TOKEN"
USER_VARIABLE = "GRAFANA_USER"
PASSWORD_VARIABLE = "GRAFANA_PASSWORD"
MAX_UID_LENGTH = 40  # Grafana's limit for folder and dashboard uids
COMMIT_MESSAGE = "pharos dashboards push"


class PushError(Exception):
    """The push failed; the message says what Grafana answered and what to do."""


@dataclass(frozen=True)
class Credentials:
    token: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], token_file: Path | None = None) -> "Credentials":
        if token_file is not None:
            try:
                token = token_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise PushError(f"cannot read --token-file {token_file}: {error.strerror}") from None
            if not token:
                raise PushError(f"--token-file {token_file} is empty: put the service-account token in it")
            return cls(token=token)
        if environ.get(TOKEN_VARIABLE, "").strip():
            return cls(token=environ[TOKEN_VARIABLE].strip())
        if environ.get(USER_VARIABLE) and environ.get(PASSWORD_VARIABLE):
            return cls(user=environ[USER_VARIABLE], password=environ[PASSWORD_VARIABLE])
        raise PushError(
            f"no Grafana credentials: set {TOKEN_VARIABLE} (a service-account token) or give --token-file, "
            f"or set {USER_VARIABLE} and {PASSWORD_VARIABLE} for basic auth"
        )

    def apply(self, session: requests.Session) -> None:
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        else:
            session.auth = (self.user, self.password)

    @property
    def source(self) -> str:
        return f"the token ({TOKEN_VARIABLE} or --token-file)" if self.token else f"{USER_VARIABLE}/{PASSWORD_VARIABLE}"


def folder_uid(title: str) -> str:
    """A stable folder uid from its title: `Pharos` -> `pharos`, `Team A / Prod` -> `team-a-prod`."""
    uid = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:MAX_UID_LENGTH].strip("-")
    if not uid:
        raise PushError(f"folder name {title!r} has no letters or digits to make a uid from: choose another --folder")
    return uid


@dataclass(frozen=True)
class Pushed:
    uid: str
    title: str
    url: str
    version: int


class Grafana:
    def __init__(self, url: str, credentials: Credentials, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        credentials.apply(self.session)

    def _request(self, method: str, path: str, action: str, body: dict | None = None, allowed: tuple[int, ...] = ()) -> requests.Response:
        try:
            response = self.session.request(method, f"{self.url}{path}", json=body, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise PushError(f"cannot reach Grafana at {self.url} to {action} ({describe(error)}); check --url") from None
        if response.ok or response.status_code in allowed:
            return response
        raise PushError(self._explain(response, method, path, action))

    def _explain(self, response: requests.Response, method: str, path: str, action: str) -> str:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        said = body.get("message") or response.text[:200].strip() or response.reason
        where = f"Grafana at {self.url} refused to {action} (HTTP {status} on {method} {path}: {said})"
        if status == 401:
            return f"{where}: the credentials were not accepted; check {self.credentials.source} (is the token expired or for another Grafana?)"
        if status == 403:
            return f"{where}: the account lacks permission; give the service account the Editor role (or folders:create and dashboards:write on the folder)"
        if status == 404:
            return f"{where}: nothing there; is --url Grafana's root URL, including its sub-path if it is served under one (e.g. https://host/grafana)?"
        if status == 412:
            reason = body.get("status", "")
            advice = {
                "name-exists": "another dashboard with the same title exists in that folder: rename or delete it",
                "version-mismatch": "the dashboard changed in Grafana meanwhile: push again",
                "plugin-dashboard": "a plugin owns that dashboard: remove the plugin's dashboard first",
            }.get(reason, "see Grafana's message")
            return f"{where}: precondition failed ({reason or 'no status'}): {advice}"
        if status == 409:
            return f"{where}: a folder with that title or uid already exists; choose another --folder, or rename the existing folder"
        return where

    def ensure_folder(self, title: str) -> str:
        """The uid of the folder `title`, created when missing."""
        uid = folder_uid(title)
        found = self._request("GET", f"/api/folders/{uid}", f"read folder {uid!r}", allowed=(404,))
        if found.status_code == 200:
            return uid
        self._request("POST", "/api/folders", f"create folder {title!r}", {"uid": uid, "title": title})
        return uid

    def push(self, dashboard: dict, folder: str) -> Pushed:
        # `id` belongs to one Grafana; the uid identifies the dashboard everywhere.
        model = {**dashboard, "id": None}
        body = {"dashboard": model, "folderUid": folder, "overwrite": True, "message": COMMIT_MESSAGE}
        answer = self._request("POST", "/api/dashboards/db", f"save dashboard {dashboard['uid']!r}", body).json()
        return Pushed(answer.get("uid", dashboard["uid"]), dashboard["title"], self.url + answer.get("url", ""), int(answer.get("version", 0)))


def push_all(url: str, folder_title: str, dashboards: list[dict], credentials: Credentials) -> list[Pushed]:
    grafana = Grafana(url, credentials)
    folder = grafana.ensure_folder(folder_title)
    return [grafana.push(dashboard, folder) for dashboard in dashboards]


def credentials_from(token_file: Path | None) -> Credentials:
    return Credentials.from_environment(os.environ, token_file)
