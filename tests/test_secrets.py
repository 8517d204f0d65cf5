"""Secrets stay secret: every generator and the local stack run with known secret values, then
every file they wrote, every log, every API answer and the command line and environment of every
process they started are searched for those values (tests/secret_scan.py: as they are,
URL-encoded, JSON-escaped and base64 at any alignment, in raw bytes).

- `pharos build` (every environment, and one) and `pharos dashboards build`, with Slack webhook
  URLs, the SMTP password and the exporter's basic-auth password in files, as the stack file wants;
- inline secrets in a stack file or an exporter configuration: refused, without being echoed;
- the exporter: `--check-config`, then serving with a bearer token (file) and a basic-auth
  password (environment variable) towards its targets and a web configuration guarding itself,
  logging at debug;
- `pharos up --fast`: its own SMTP password and webhook URLs, used end to end (mail through AUTH,
  Slack through the webhook path) before the scan.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import bcrypt
import psutil
import pytest
import requests
import yaml

from pharos_monitoring.cli import main
from secret_scan import SecretScanner, pharos_up_secrets, process_tree, scan_pharos_up

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from delivery_faults import FAULTY, DrillError, LocalStack, messages, pager_mail, pager_slack, wait_for  # noqa: E402 - found through the line above

# Distinctive values: nothing else in the project could hold them by chance.
SECRETS = {
    "Slack webhook token": "xoxwebhookTOKEN7c1f0a9e55d2",
    "SMTP password": "smtp-PASSWORD-6b2d19f0c4",
    "exporter basic-auth password": "exporter-PASSWORD-d41e7a03b8",
    "Grafana token": "glsa_GRAFANA_TOKEN_93ac51e0f7d6",
    "target bearer token": "target-BEARER-0e8f21c7a5b3",
    "target basic-auth password": "target-PASSWORD-5c90d3b7e12a",
    "exporter web password": "web-PASSWORD-a7f3e9021c6d",
}
TIMEOUT = 30
SIGNAL_SECONDS = 120


def write_secret(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def scrubbed_environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PHAROS_")}
    return environment | extra


def run(command: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pharos_monitoring.cli", *command], capture_output=True, env=environment, timeout=120)


# --- the scanner itself ---------------------------------------------------------------------------
def test_the_scanner_finds_a_secret_in_every_form_and_place(tmp_path: Path):
    secret = SECRETS["exporter web password"]
    (tmp_path / "plain.log").write_text(f"password={secret}\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    header = base64.b64encode(f"prometheus:{secret}".encode())
    (tmp_path / "deep" / "er" / "headers.bin").write_bytes(b"\x00\x01Authorization: Basic " + header + b"\xff")
    (tmp_path / "escaped.json").write_text(json.dumps({"url": f"https://x/?p={secret}&q=\"\\"}))
    smtp_plain = base64.b64encode(b"\0alertmanager\0" + secret.encode())
    (tmp_path / "smtp.txt").write_bytes(b"AUTH PLAIN " + smtp_plain)
    (tmp_path / "clean.txt").write_text("nothing here " + secret[:-1])
    scanner = SecretScanner({"web": secret})
    assert scanner.scan_files(tmp_path) == 5
    assert sorted((Path(leak.where).name, leak.form.split(" (")[0]) for leak in scanner.leaks) == [
        ("escaped.json", "as is"), ("headers.bin", "base64"), ("plain.log", "as is"), ("smtp.txt", "base64"),
    ]
    assert secret not in scanner.report(), "a report must name secrets, not show them"

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", f"--token={secret}"], env=scrubbed_environment(TOKEN=secret))
    try:
        wait_for(lambda: sleeper.pid in psutil.pids(), TIMEOUT, "the sleeper")
        found = SecretScanner({"web": secret})
        for process in process_tree([sleeper.pid]):
            found.scan_process(process)
        assert [leak.where.split(" of ")[0] for leak in found.leaks] == ["command line", "environment"]
        allowed = SecretScanner({"web": secret})
        allowed.scan_process(psutil.Process(sleeper.pid), environ_excludes=["web"])
        assert [leak.where.split(" of ")[0] for leak in allowed.leaks] == ["command line"]
    finally:
        sleeper.kill()
        sleeper.wait(timeout=TIMEOUT)


# --- generators ------------------------------------------------------------------------------------
def user_stack(tmp_path: Path) -> Path:
    """examples/stack.yml with every secret in a file of ours, and basic auth towards the exporters."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    data = yaml.safe_load((ROOT / "examples" / "stack.yml").read_text())
    for number, receiver in enumerate(data["receivers"].values()):
        for slack in receiver.get("slack", []):
            url = f"https://hooks.slack.com/services/T0PHAROS/B{number:04d}/{SECRETS['Slack webhook token']}{number}"
            slack["webhook_url_file"] = write_secret(secrets_dir, f"slack-{number}-{slack['channel'].lstrip('#')}", url)
    data["smtp"]["auth_password_file"] = write_secret(secrets_dir, "smtp-password", SECRETS["SMTP password"])
    data["exporter_auth"] = {"username": "prometheus", "password_file": write_secret(secrets_dir, "exporter-password", SECRETS["exporter basic-auth password"])}
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_build_and_dashboards_write_no_secret(tmp_path: Path):
    stack = user_stack(tmp_path)
    # A generator must not copy its environment anywhere either: give it a secret there too.
    environment = scrubbed_environment(GRAFANA_TOKEN=SECRETS["Grafana token"], GRAFANA_PASSWORD=SECRETS["Grafana token"])
    scanner = SecretScanner(SECRETS)
    commands = {
        "every environment": ["build", "--config", str(stack), "--out", str(tmp_path / "out-all")],
        "production": ["build", "--config", str(stack), "--out", str(tmp_path / "out-production"), "--environment", "production"],
        "dashboards": ["dashboards", "build", "--out", str(tmp_path / "dashboards")],
    }
    for what, command in commands.items():
        result = run(command, environment)
        assert result.returncode == 0, f"{what}: {result.stderr.decode()}"
        scanner.scan(f"output of pharos {' '.join(command[:2])} ({what})", result.stdout + result.stderr)
    scanner.scan(str(stack), stack.read_bytes())
    written = sum(scanner.scan_files(tmp_path / out) for out in ("out-all", "out-production", "dashboards"))
    assert written > 10, "the generators wrote almost nothing"
    alertmanager = (tmp_path / "out-all" / "production" / "alertmanager" / "alertmanager.yml").read_text()
    assert "smtp_auth_password_file" in alertmanager and "api_url_file" in alertmanager, "the secrets are not referenced by file"
    prometheus = (tmp_path / "out-all" / "production" / "prometheus" / "prometheus.yml").read_text()
    assert "password_file" in prometheus, "the exporter's basic auth is not referenced by file"
    assert not scanner.leaks, scanner.report()


INLINE_STACK_SECRETS = {
    "smtp password": ("smtp", "auth_password", "SMTP password"),
    "Slack webhook": ("receivers", "webhook_url", "Slack webhook token"),
    "exporter password": ("exporter_auth", "password", "exporter basic-auth password"),
}


@pytest.mark.parametrize("case", sorted(INLINE_STACK_SECRETS))
def test_an_inline_secret_in_a_stack_file_is_refused_without_echoing_it(case: str, tmp_path: Path, capsys):
    section, key, secret = INLINE_STACK_SECRETS[case]
    data = yaml.safe_load(user_stack(tmp_path).read_text())
    value = SECRETS[secret]
    if section == "receivers":
        data["receivers"]["production-pager"]["slack"][0] = {"channel": "#pages", key: f"https://hooks.slack.com/services/T/B/{value}"}
    else:
        data[section][key] = value
    stack = tmp_path / "inline.yml"
    stack.write_text(yaml.safe_dump(data))
    assert main(["build", "--config", str(stack), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert key in error and "file" in error, f"the refusal does not say what to do: {error}"
    scanner = SecretScanner(SECRETS)
    scanner.scan("the refusal", error)
    if (tmp_path / "out").exists():
        scanner.scan_files(tmp_path / "out")
    assert not scanner.leaks, scanner.report()


@pytest.mark.parametrize("auth", [{"bearer_token": SECRETS["target bearer token"]}, {"basic_auth": {"username": "u", "password": SECRETS["target basic-auth password"]}}])
def test_an_inline_secret_in_an_exporter_configuration_is_refused_without_echoing_it(auth: dict, tmp_path: Path, capsys):
    config = tmp_path / "exporter.yml"
    config.write_text(yaml.safe_dump({"targets": [{"name": "app", "url": "http://127.0.0.1:9/stats", "auth": auth}]}))
    assert main(["exporter", "--config", str(config), "--check-config"]) == 1
    error = capsys.readouterr().err
    assert "_file" in error and "_env" in error, f"the refusal does not say what to do: {error}"
    scanner = SecretScanner(SECRETS)
    scanner.scan("the refusal", error)
    assert not scanner.leaks, scanner.report()


# --- the exporter -----------------------------------------------------------------------------------
def guarded_target(loopback_server, header: str) -> str:
    """A stats endpoint answering the pharo fixture to requests carrying `header` only."""
    body = (ROOT / "tests" / "fixtures" / "profiles" / "pharo.json").read_bytes()

    class Guarded(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            allowed = self.headers.get("Authorization") == header
            payload = body if allowed else b'{"error": "unauthorized"}'
            self.send_response(200 if allowed else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    return loopback_server(Guarded) + "/stats"


def test_the_exporter_uses_its_secrets_and_shows_none(tmp_path: Path, loopback_server):
    basic = "Basic " + base64.b64encode(f"reader:{SECRETS['target basic-auth password']}".encode()).decode()
    bearer_url = guarded_target(loopback_server, "Bearer " + SECRETS["target bearer token"])
    basic_url = guarded_target(loopback_server, basic)
    config = tmp_path / "exporter.yml"
    config.write_text(yaml.safe_dump({
        "listen": "127.0.0.1:0",
        "targets": [
            {"name": "bearer", "url": bearer_url, "auth": {"bearer_token_file": write_secret(tmp_path, "token", SECRETS["target bearer token"])}},
            {"name": "basic", "url": basic_url, "auth": {"basic_auth": {"username": "reader", "password_env": "TARGET_PASSWORD"}}},
        ],
    }))
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": bcrypt.hashpw(SECRETS["exporter web password"].encode(), bcrypt.gensalt(4)).decode()}}))
    environment = scrubbed_environment(TARGET_PASSWORD=SECRETS["target basic-auth password"])
    arguments = ["exporter", "--config", str(config), "--web.config.file", str(web), "--log-level", "debug"]
    scanner = SecretScanner(SECRETS)

    checked = run([*arguments, "--check-config"], environment)
    assert checked.returncode == 0, checked.stderr.decode()
    scanner.scan("output of pharos exporter --check-config", checked.stdout + checked.stderr)

    log = tmp_path / "exporter.log"
    with open(log, "wb") as output:
        exporter = subprocess.Popen([sys.executable, "-m", "pharos_monitoring.cli", *arguments], stdout=output, stderr=subprocess.STDOUT, env=environment)
    try:
        serving = wait_for(lambda: exporter.poll() is None and "serving on http://" in log.read_text(), TIMEOUT, "the exporter to serve")
        assert serving
        address = log.read_text().split("serving on http://")[1].split()[0]
        metrics = requests.get(f"http://{address}/metrics", auth=("prometheus", SECRETS["exporter web password"]), timeout=TIMEOUT)
        assert metrics.status_code == 200, metrics.text
        for target in ("bearer", "basic"):
            assert f'pharos_scrape_success{{target="{target}"}} 1.0' in metrics.text, f"{target}: the secret did not reach the target"
        refused = requests.get(f"http://{address}/metrics", auth=("prometheus", "wrong-" + SECRETS["exporter web password"]), timeout=TIMEOUT)
        assert refused.status_code == 401
        process = psutil.Process(exporter.pid)
        # The target password came by environment variable, as the user gave it: only there may it be.
        scanner.scan_process(process, environ_excludes=["target basic-auth password"])
    finally:
        exporter.terminate()
        exporter.wait(timeout=TIMEOUT)
    scanner.scan(str(log), log.read_bytes())
    assert "GET /metrics" in log.read_text(), "the debug log shows no request: the scan would prove little"
    scanner.scan_files(tmp_path, skip=[tmp_path / "token"])
    assert not scanner.leaks, scanner.report()


# --- pharos up ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pharos_up_uses_its_secrets_and_shows_none(tmp_path: Path):
    stack = LocalStack(tmp_path)
    with stack:
        secrets = pharos_up_secrets(stack.state)
        assert {"smtp-password", "slack-production-pages", "slack-production-pages token"} <= set(secrets), sorted(secrets)
        stack.fault(FAULTY, "--error-ratio", "1")
        try:
            # Mail only through SMTP AUTH with the password, Slack only through the webhook's path.
            wait_for(lambda: any(pager_mail(m) for m in messages(stack.state)) and any(pager_slack(m) for m in messages(stack.state)), SIGNAL_SECONDS, "the page by mail and Slack")
        except DrillError as error:
            pytest.fail(f"{error}\n--- pharos up output ---\n{stack.log()}")
        scanner = SecretScanner(secrets)
        scan_pharos_up(scanner, stack.state, stack.described, stack.output)
    assert stack.exit_code == 0, stack.log()
    assert scanner.places > 50, "the scan saw almost nothing"
    assert not scanner.leaks, scanner.report()
