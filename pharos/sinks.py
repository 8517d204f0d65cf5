"""`pharos sinks`: where a local stack's notifications land, a real SMTP server and a Slack
incoming-webhook receiver, both on loopback.

    pharos sinks --dir DIR --smtp 127.0.0.1:2525 --slack 127.0.0.1:3000

- SMTP (aiosmtpd): every message is kept whole as `DIR/mail/NNNNNN.eml`, and described by one
  line of `DIR/mail/index.jsonl` (time, sender, recipients, subject, file).
- Slack: answers `POST /services/T.../B.../X...` like hooks.slack.com does (`ok`, or Slack's
  error words such as `invalid_payload`), keeps the JSON as `DIR/slack/NNNNNN.json` and a line in
  `DIR/slack/index.jsonl` (time, channel, title, text, webhook id). The webhook URL is a secret:
  only a short hash of its path is kept, to tell webhooks apart.
Each message also prints one line. `pharos up` runs the sinks; `read_mail`/`read_slack` read
what they kept.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import hashlib
import ipaddress
import json
import re
import signal
import sys
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs

from aiosmtpd.smtp import SMTP

MAIL_DIR = "mail"
SLACK_DIR = "slack"
INDEX = "index.jsonl"
MAX_WEBHOOK_BYTES = 1 << 20  # Slack's own limit for a message is far below this
MAX_MAIL_BYTES = 10 << 20
WEBHOOK_PATH = re.compile(r"^/services/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")
DEFAULT_SMTP = "127.0.0.1:2525"
DEFAULT_SLACK = "127.0.0.1:3000"


class Inbox:
    """Keeps what arrives under one directory and announces it; safe to call from any thread."""

    def __init__(self, directory: Path, announce: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.directory = Path(directory)
        self.announce = announce
        self._lock = threading.Lock()
        for kind in (MAIL_DIR, SLACK_DIR):
            (self.directory / kind).mkdir(parents=True, exist_ok=True)
        # Numbers continue after what an earlier run kept in the same directory.
        self._counts = {kind: len(_index_lines(self.directory / kind)) for kind in (MAIL_DIR, SLACK_DIR)}

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
            "webhook": hashlib.sha256(webhook_path.encode()).hexdigest()[:12],
        }
        body = json.dumps(payload, indent=2, sort_keys=True).encode()
        entry = self._keep(SLACK_DIR, ".json", body, entry)
        self.announce(f"pharos sinks: slack #{entry['seq']} in {entry['channel'] or '(no channel)'}: {entry['title']}")
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
    def __init__(self, inbox: Inbox):
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's naming
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        self.inbox.add_mail(envelope.mail_from, list(envelope.rcpt_tos), data)
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on its own event loop in a thread; port 0 picks a free port (see `port`)."""

    def __init__(self, inbox: Inbox, host: str, port: int):
        self.inbox, self.host, self.port = inbox, host, port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp-sink", daemon=True)

    def start(self) -> None:
        handler = _MailHandler(self.inbox)

        def protocol() -> SMTP:
            return SMTP(handler, hostname="pharos-sinks", data_size_limit=MAX_MAIL_BYTES, loop=self._loop)

        self._server = self._loop.run_until_complete(self._loop.create_server(protocol, self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return

        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()
        self._server = None


# --- Slack -------------------------------------------------------------------------------------
class _WebhookHandler(BaseHTTPRequestHandler):
    inbox: Inbox  # set on the subclass SlackSink makes
    server_version = "pharos-slack-sink"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not WEBHOOK_PATH.match(self.path):
            return self._answer(404, "no_service")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self._answer(411, "length_required")
        if int(length) > MAX_WEBHOOK_BYTES:
            return self._answer(413, "request_too_large")
        body = self.rfile.read(int(length))
        payload = _payload(body, self.headers.get("Content-Type", ""))
        if not isinstance(payload, dict):
            return self._answer(400, "invalid_payload")
        if not (payload.get("text") or payload.get("attachments") or payload.get("blocks")):
            return self._answer(400, "no_text")
        self.inbox.add_slack(payload, self.path)
        self._answer(200, "ok")

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, "pharos Slack sink: POST incoming-webhook JSON to /services/T.../B.../X...")

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class SlackSink:
    def __init__(self, inbox: Inbox, host: str, port: int):
        handler = type("WebhookHandler", (_WebhookHandler,), {"inbox": inbox})
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

    def __init__(self, directory: Path, smtp: tuple[str, int], slack: tuple[str, int], announce: Callable[[str], None] | None = None):
        self.inbox = Inbox(directory, announce) if announce else Inbox(directory)
        self.smtp = SmtpSink(self.inbox, *smtp)
        self.slack = SlackSink(self.inbox, *slack)

    def start(self) -> None:
        self.smtp.start()
        try:
            self.slack.start()
        except BaseException:
            self.smtp.stop()
            raise

    def stop(self) -> None:
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


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sinks = Sinks(Path(args.dir), args.smtp, args.slack)
        sinks.start()
    except OSError as error:
        print(f"pharos sinks: cannot start: {error.strerror or error} ({error.filename or 'check --smtp and --slack'})", file=sys.stderr)
        return 1
    print(
        f"pharos sinks: SMTP on {sinks.smtp.host}:{sinks.smtp.port}, Slack webhooks at {sinks.slack.url}/services/..., "
        f"keeping messages in {args.dir}",
        flush=True,
    )
    try:
        while not stop.wait(0.2):  # a short wait: signal handlers run between waits
            pass
    finally:
        sinks.stop()
    return 0
