"""`pharos sinks`: where a local stack's notifications land, a real SMTP server and a Slack
incoming-webhook receiver, both on loopback.

    pharos sinks --dir DIR --smtp 127.0.0.1:2525 --slack 127.0.0.1:3000

- SMTP (aiosmtpd): every message is kept whole as `DIR/mail/NNNNNN.eml`, and described by one
  line of `DIR/mail/index.jsonl` (time, sender, recipients, subject, file).
- Slack: answers `POST /services/T.../B.../X...` like hooks.slack.com does (`ok`, or Slack's
  error words such as `invalid_payload`), keeps the JSON as `DIR/slack/NNNNNN.json` and a line in
  `DIR/slack/index.jsonl` (time, channel, title, text, webhook id). The webhook URL is a secret:
  only a short hash of its path is kept, to tell webhooks apart.
- PagerDuty, on the Slack port: answers `POST /v2/enqueue` like PagerDuty's Events API v2 (202
  `{"status": "success", "dedup_key": ...}`, or 400 `invalid event` with the errors), keeps the
  event as `DIR/pagerduty/NNNNNN.json` and a line in `DIR/pagerduty/index.jsonl` (time, action,
  dedup key, summary, severity, routing key id). The routing key is a secret: only a short hash
  of it is kept, as for webhooks.
Each message also prints one line. `pharos up` runs the sinks; `read_mail`/`read_slack`/
`read_pagerduty` read what they kept.

With `--smtp-password-file FILE` the SMTP sink requires AUTH (PLAIN or LOGIN, offered without TLS:
loopback only) as `--smtp-username` with the password in FILE, so that a sender's credentials are
really used. Faults on demand (the SMTP port down, Slack answering 500, ...) are set on the Slack
port under `/-/faults` (pharos/local/sink_faults.py; `pharos fault --sink`).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import signal
import sys
import threading
import time
import uuid
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from .sink_faults import FAULTS_PATH, SINK_NAMES, SLACK, SLACK_ERROR_WORDS, SMTP as SMTP_SINK, SinkFaultError, SinkFaults

MAIL_DIR = "mail"
SLACK_DIR = "slack"
PAGERDUTY_DIR = "pagerduty"
PAGERDUTY_PATH = "/v2/enqueue"  # PagerDuty's Events API v2, path and JSON
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
INDEX = "index.jsonl"
MAX_WEBHOOK_BYTES = 1 << 20  # Slack's own limit for a message is far below this
MAX_MAIL_BYTES = 10 << 20
WEBHOOK_PATH = re.compile(r"^/services/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")
DEFAULT_SMTP = "127.0.0.1:2525"
DEFAULT_SLACK = "127.0.0.1:3000"
DEFAULT_SMTP_USERNAME = "alertmanager"

# aiosmtpd logs every command line at INFO, AUTH with its base64 credentials among them.
_AIOSMTPD_LOG = logging.getLogger("mail.log")
_AIOSMTPD_LOG.setLevel(logging.WARNING)
# aiosmtpd itself sets the attribute it then warns about, at every successful AUTH.
_AIOSMTPD_LOG.addFilter(lambda record: not record.getMessage().startswith("Session.login_data is deprecated"))


class Inbox:
    """Keeps what arrives under one directory and announces it; safe to call from any thread."""

    def __init__(self, directory: Path, announce: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.directory = Path(directory)
        self.announce = announce
        self._lock = threading.Lock()
        kinds = (MAIL_DIR, SLACK_DIR, PAGERDUTY_DIR)
        for kind in kinds:
            (self.directory / kind).mkdir(parents=True, exist_ok=True)
        # Numbers continue after what an earlier run kept in the same directory.
        self._counts = {kind: len(_index_lines(self.directory / kind)) for kind in kinds}

    def add_mail(self, sender: str, recipients: list[str], data: bytes) -> dict:
        message = email.message_from_bytes(data, policy=email.policy.default)
        entry = {"from": sender, "to": list(recipients), "subject": str(message.get("Subject", ""))}
        entry = self._keep(MAIL_DIR, ".eml", data, entry)
        self.announce(f"pharos sinks: mail #{entry['seq']} to {', '.join(recipients)}: {entry['subject']}")
        return entry

    def add_slack(self, payload: dict, webhook_path: str) -> dict:
        attachment = (payload.get("attachments") or [{}])[0]
        entry = {
            "channel": str(payload.get("channel", "")),
            "title": str(attachment.get("title") or payload.get("text", "")),
            "text": str(attachment.get("text", "")),
            "webhook": _short_hash(webhook_path),
        }
        body = json.dumps(payload, indent=2, sort_keys=True).encode()
        entry = self._keep(SLACK_DIR, ".json", body, entry)
        self.announce(f"pharos sinks: slack #{entry['seq']} in {entry['channel'] or '(no channel)'}: {entry['title']}")
        return entry

    def add_pagerduty(self, event: dict) -> dict:
        """Keep an accepted Events API v2 event, its routing key replaced by a short hash."""
        payload = event.get("payload") or {}
        kept = {key: value for key, value in event.items() if key != "routing_key"}
        kept["routing_key_id"] = _short_hash(str(event["routing_key"]))
        entry = {
            "event_action": event["event_action"],
            "dedup_key": event["dedup_key"],
            "summary": str(payload.get("summary", "")),
            "severity": str(payload.get("severity", "")),
            "routing_key_id": kept["routing_key_id"],
        }
        body = json.dumps(kept, indent=2, sort_keys=True).encode()
        entry = self._keep(PAGERDUTY_DIR, ".json", body, entry)
        self.announce(f"pharos sinks: pagerduty #{entry['seq']} {entry['event_action']} {entry['dedup_key']}: {entry['summary']}")
        return entry

    def _keep(self, kind: str, suffix: str, content: bytes, entry: dict) -> dict:
        with self._lock:
            self._counts[kind] += 1
            seq = self._counts[kind]
            name = f"{seq:06d}{suffix}"
            (self.directory / kind / name).write_bytes(content)
            entry = {"seq": seq, "received_at": time.time(), **entry, "file": name}
            with open(self.directory / kind / INDEX, "a", encoding="utf-8") as index:
                index.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry


def _short_hash(secret: str) -> str:
    """Tells secrets apart without keeping them."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _index_lines(directory: Path) -> list[str]:
    try:
        return [line for line in (directory / INDEX).read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def read_mail(directory: Path) -> list[dict]:
    """The index entries of the mail kept under `directory`, oldest first."""
    return [json.loads(line) for line in _index_lines(Path(directory) / MAIL_DIR)]


def read_slack(directory: Path) -> list[dict]:
    return [json.loads(line) for line in _index_lines(Path(directory) / SLACK_DIR)]


def read_pagerduty(directory: Path) -> list[dict]:
    """The index entries of the PagerDuty events kept under `directory`, oldest first."""
    return [json.loads(line) for line in _index_lines(Path(directory) / PAGERDUTY_DIR)]


def pagerduty_event(directory: Path, entry: dict) -> dict:
    """A kept event as it arrived, but for its routing key (`routing_key_id`: a short hash)."""
    return json.loads((Path(directory) / PAGERDUTY_DIR / entry["file"]).read_text(encoding="utf-8"))


def mail_message(directory: Path, entry: dict) -> EmailMessage:
    data = (Path(directory) / MAIL_DIR / entry["file"]).read_bytes()
    return email.message_from_bytes(data, policy=email.policy.default)


def mail_text(directory: Path, entry: dict) -> str:
    """The readable text of a kept message: subject and every text part, without HTML markup."""
    import html

    message = mail_message(directory, entry)
    parts = [str(message.get("Subject", ""))]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            content = part.get_content()
            if part.get_content_subtype() == "html":
                content = re.sub(r"<(style|head)\b.*?</\1>", " ", content, flags=re.S | re.I)
                content = html.unescape(re.sub(r"<[^>]+>", " ", content))
            parts.append(content)
    return re.sub(r"\s+", " ", "\n".join(parts))


# --- SMTP --------------------------------------------------------------------------------------
class _MailHandler:
    def __init__(self, inbox: Inbox, faults: SinkFaults, auth_required: bool):
        self.inbox = inbox
        self.faults = faults
        # Checked here rather than by aiosmtpd's auth_required, which warns at every connection
        # when AUTH comes without TLS (by design on a loopback-only sink).
        self.auth_required = auth_required

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:  # noqa: N802 - aiosmtpd's naming
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        status = self.faults.refuse(SMTP_SINK)
        if status:
            return f"{status} {status // 100}.3.0 pharos sinks: delivery refused on purpose (pharos fault --sink smtp)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's naming
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        self.inbox.add_mail(envelope.mail_from, list(envelope.rcpt_tos), data)
        return "250 Message accepted for delivery"


def _authenticator(username: str, password: str, announce: Callable[[str], None]):
    """aiosmtpd authenticator accepting this one user name and password (PLAIN and LOGIN)."""
    expected = (username.encode(), password.encode())

    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        # Both compared whatever the first gives: the time taken tells nothing.
        same_user = hmac.compare_digest(auth_data.login, expected[0])
        same_password = hmac.compare_digest(auth_data.password, expected[1])
        if same_user and not same_password and hmac.compare_digest(auth_data.password.rstrip(b"\r\n"), expected[1]):
            announce(
                f"pharos sinks: AUTH refused for {username}: the password sent ends with a line break. Alertmanager 0.25 "
                "sends smtp_auth_password_file as it is: write the file without a final newline (printf '%s' ...)"
            )
        return AuthResult(success=same_user and same_password, handled=False)

    return check


class _RelaySMTP(SMTP):
    # Ask for LOGIN's user name and password in the words Postfix, Dovecot and Exchange use; clients
    # such as Alertmanager's check them (aiosmtpd's own "User Name\0" they refuse).
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"


class SmtpSink:
    """aiosmtpd on its own event loop in a thread; port 0 picks a free port (see `port`).

    `credentials` (user, password) make AUTH required; `listen(False)` closes the port (a relay
    that is down), `listen(True)` opens it again on the same port."""

    def __init__(self, inbox: Inbox, host: str, port: int, faults: SinkFaults | None = None, credentials: tuple[str, str] | None = None):
        self.inbox, self.host, self.port = inbox, host, port
        self.faults = faults or SinkFaults()
        self.credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._switch = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink", daemon=True)

    def _protocol(self) -> SMTP:
        options: dict = {}
        if self.credentials:
            # No TLS on a loopback sink: AUTH is offered without it (senders check the host is loopback).
            options = {"authenticator": _authenticator(*self.credentials, self.inbox.announce), "auth_require_tls": False}
        handler = _MailHandler(self.inbox, self.faults, auth_required=bool(self.credentials))
        return _RelaySMTP(handler, hostname="pharos-sinks", data_size_limit=MAX_MAIL_BYTES, loop=self._loop, **options)

    async def _open(self) -> None:
        self._server = await self._loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def start(self) -> None:
        self._loop.run_until_complete(self._open())
        self._thread.start()

    @property
    def listening(self) -> bool:
        return self._server is not None

    def listen(self, listening: bool) -> None:
        """Open or close the port; OSError when it cannot be opened again (taken meanwhile)."""
        with self._switch:
            if listening != self.listening and self._thread.is_alive():
                asyncio.run_coroutine_threadsafe(self._open() if listening else self._close(), self._loop).result(timeout=10)

    def stop(self) -> None:
        with self._switch:
            if self._thread.is_alive():
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
            if not self._loop.is_closed() and not self._loop.is_running():
                self._loop.close()


# --- Slack -------------------------------------------------------------------------------------
class _WebhookHandler(BaseHTTPRequestHandler):
    inbox: Inbox  # set on the subclass SlackSink makes
    faults: SinkFaults  # likewise
    server_version = "pharos-slack-sink"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith(FAULTS_PATH):
            return self._faults("POST")
        if self.path == PAGERDUTY_PATH:
            return self._pagerduty()
        if not WEBHOOK_PATH.match(self.path):
            return self._answer(404, "no_service")
        body = self._body()
        if body is None:
            return
        status = self.faults.refuse(SLACK)
        if status:
            return self._answer(status, SLACK_ERROR_WORDS.get(status, "fault_injected"))
        payload = _payload(body, self.headers.get("Content-Type", ""))
        if not isinstance(payload, dict):
            return self._answer(400, "invalid_payload")
        if not (payload.get("text") or payload.get("attachments") or payload.get("blocks")):
            return self._answer(400, "no_text")
        self.inbox.add_slack(payload, self.path)
        self._answer(200, "ok")

    def _pagerduty(self) -> None:
        body = self._body()
        if body is None:
            return
        event = _payload(body, "application/json")
        problems = _pagerduty_problems(event)
        if problems:
            answer = {"status": "invalid event", "message": "Event object is invalid", "errors": problems}
            return self._answer(400, json.dumps(answer), "application/json")
        event = {**event, "dedup_key": event.get("dedup_key") or uuid.uuid4().hex}
        self.inbox.add_pagerduty(event)
        answer = {"status": "success", "message": "Event processed", "dedup_key": event["dedup_key"]}
        self._answer(202, json.dumps(answer), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith(FAULTS_PATH):
            return self._faults("GET")
        self._answer(200, "pharos Slack sink: POST incoming-webhook JSON to /services/T.../B.../X...")

    def do_DELETE(self) -> None:  # noqa: N802
        if self.path.startswith(FAULTS_PATH):
            return self._faults("DELETE")
        self._answer(405, "method_not_allowed")

    def _body(self) -> bytes | None:
        """The request body, or None once an error has been answered."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._answer(411, "length_required")
            return None
        if int(length) > MAX_WEBHOOK_BYTES:
            self._answer(413, "request_too_large")
            return None
        return self.rfile.read(int(length))

    def _faults(self, method: str) -> None:
        """/-/faults (GET: every sink) and /-/faults/SINK (GET, POST a fault, DELETE it)."""
        sink = self.path[len(FAULTS_PATH):].strip("/")
        if sink and sink not in SINK_NAMES:
            return self._answer(404, f"no sink {sink!r}; use {FAULTS_PATH}/{' or /'.join(SINK_NAMES)}")
        if method != "GET" and not sink:
            return self._answer(405, f"{method} needs a sink: {FAULTS_PATH}/{' or /'.join(SINK_NAMES)}")
        try:
            if method == "POST":
                body = self._body()
                if body is None:
                    return
                try:
                    document = json.loads(body or b"{}")
                except ValueError:
                    return self._answer(400, "the body is not JSON; send an object such as {\"status\": 500}")
                self.faults.set(sink, document)
            elif method == "DELETE":
                self.faults.clear(sink)
        except SinkFaultError as error:
            return self._answer(400, str(error))
        except OSError as error:
            return self._answer(500, f"the {sink} sink cannot listen again: {error.strerror or error}")
        described = self.faults.describe()
        self._answer(200, json.dumps(described[sink] if sink else described, sort_keys=True), "application/json")

    def _answer(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the request line holds the webhook secret
        pass


def _payload(body: bytes, content_type: str) -> object:
    """Slack accepts a JSON body or a form field `payload` holding JSON."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/x-www-form-urlencoded"):
            text = parse_qs(text).get("payload", [""])[0]
        return json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None


def _pagerduty_problems(event: object) -> list[str]:
    """What PagerDuty's Events API v2 would refuse in `event` (the fields it requires), [] if nothing."""
    if not isinstance(event, dict):
        return ["the body is not a JSON object"]
    problems = []
    if not isinstance(event.get("routing_key"), str) or not event["routing_key"]:
        problems.append("'routing_key' is missing or blank")
    if event.get("event_action") not in PAGERDUTY_ACTIONS:
        problems.append(f"'event_action' must be one of {', '.join(PAGERDUTY_ACTIONS)}")
    if event.get("event_action") in ("acknowledge", "resolve") and not event.get("dedup_key"):
        problems.append("'dedup_key' is required to acknowledge or resolve")
    if event.get("event_action") != "trigger":
        return problems
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return problems + ["'payload' is missing"]
    for field in ("summary", "source"):
        if not isinstance(payload.get(field), str) or not payload[field]:
            problems.append(f"'payload.{field}' is missing or blank")
    if payload.get("severity") not in PAGERDUTY_SEVERITIES:
        problems.append(f"'payload.severity' must be one of {', '.join(PAGERDUTY_SEVERITIES)}")
    return problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class SlackSink:
    def __init__(self, inbox: Inbox, host: str, port: int, faults: SinkFaults | None = None):
        self.faults = faults or SinkFaults()
        handler = type("WebhookHandler", (_WebhookHandler,), {"inbox": inbox, "faults": self.faults})
        self._server = _Server((host, port), handler)
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="slack-sink", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()


class Sinks:
    """Both sinks over one inbox; `with Sinks(...) as sinks:` starts and stops them."""

    def __init__(
        self,
        directory: Path,
        smtp: tuple[str, int],
        slack: tuple[str, int],
        announce: Callable[[str], None] | None = None,
        smtp_credentials: tuple[str, str] | None = None,
    ):
        self.inbox = Inbox(directory, announce) if announce else Inbox(directory)
        self.faults = SinkFaults(on_change=self._fault_changed)
        self.smtp = SmtpSink(self.inbox, *smtp, faults=self.faults, credentials=smtp_credentials)
        self.slack = SlackSink(self.inbox, *slack, faults=self.faults)

    def _fault_changed(self, sink: str) -> None:
        if sink == SMTP_SINK:
            self.smtp.listen(not self.faults.fault(SMTP_SINK).down)

    def start(self) -> None:
        self.smtp.start()
        try:
            self.slack.start()
        except BaseException:
            self.smtp.stop()
            raise

    def stop(self) -> None:
        self.faults.close()
        self.slack.stop()
        self.smtp.stop()

    def __enter__(self) -> "Sinks":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the command -------------------------------------------------------------------------------
def loopback_address(text: str) -> tuple[str, int]:
    """HOST:PORT on a loopback address: the sinks accept anything, so they never face a network."""
    host, separator, port = text.rpartition(":")
    host = host.strip("[]")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:2525 (port 0 picks a free one)")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(f"{text!r}: the sinks accept any message, so they listen on loopback only (127.0.0.1, ::1)")
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, metavar="DIR", help="keep messages in DIR/mail and DIR/slack")
    parser.add_argument("--smtp", type=loopback_address, default=DEFAULT_SMTP, metavar="HOST:PORT", help=f"SMTP server address (default {DEFAULT_SMTP})")
    parser.add_argument("--slack", type=loopback_address, default=DEFAULT_SLACK, metavar="HOST:PORT", help=f"Slack webhook receiver address (default {DEFAULT_SLACK})")
    parser.add_argument("--smtp-password-file", metavar="FILE", help="require SMTP AUTH with the password in FILE (never on the command line); default: no AUTH")
    parser.add_argument("--smtp-username", default=DEFAULT_SMTP_USERNAME, metavar="NAME", help=f"the user name SMTP AUTH requires (default {DEFAULT_SMTP_USERNAME})")


def read_password(path: str) -> str:
    """The first line of a password file, as a mail relay keeps it (a sender whose password file
    ends with a newline and who sends it whole is refused, as by a real relay); ValueError naming
    the file and what to do."""
    try:
        with open(path, encoding="utf-8") as handle:
            password = handle.readline().strip()
    except OSError as error:
        raise ValueError(f"cannot read --smtp-password-file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--smtp-password-file {path} is not UTF-8 text") from None
    if not password:
        raise ValueError(f"--smtp-password-file {path} is empty; write the password on its first line")
    return password


def run(args: argparse.Namespace) -> int:
    try:
        credentials = (args.smtp_username, read_password(args.smtp_password_file)) if args.smtp_password_file else None
    except ValueError as error:
        print(f"pharos sinks: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sinks = Sinks(Path(args.dir), args.smtp, args.slack, smtp_credentials=credentials)
        sinks.start()
    except OSError as error:
        print(f"pharos sinks: cannot start: {error.strerror or error} ({error.filename or 'check --smtp and --slack'})", file=sys.stderr)
        return 1
    print(
        f"pharos sinks: SMTP on {sinks.smtp.host}:{sinks.smtp.port}"
        + (f" (AUTH required, user {args.smtp_username})" if credentials else "")
        + f", Slack webhooks at {sinks.slack.url}/services/..., PagerDuty events at {sinks.slack.url}{PAGERDUTY_PATH}, faults at {sinks.slack.url}{FAULTS_PATH}, keeping messages in {args.dir}",
        flush=True,
    )
    try:
        while not stop.wait(0.2):  # a short wait: signal handlers run between waits
            pass
    finally:
        sinks.stop()
    return 0
