"""Grafana's contact points and notification policies from the stack's receivers and routes.

The policy tree is not derived again from the routing: it is Alertmanager's route tree as
`alerts.alertmanager.render` builds it, translated node by node (matchers become Grafana's
`object_matchers`), so that an alert reaches the same receiver through either path.

Secrets stay out of the files: a Slack webhook URL is `$__file{PATH}`, which Grafana replaces with
the file's content when it loads the provisioning (PATH is the stack file's `webhook_url_file`,
the same file Alertmanager reads). Grafana expands `$NAME`, `${NAME}` and `$__env{...}` in every
contact point setting too, so any other `$` in them is written `$$`.

Mail needs Grafana's own SMTP settings (grafana.ini `[smtp]`, or `GF_SMTP_*` variables):
`smtp_environment` gives them from the stack's `smtp` section, the password as a file path.
"""

from __future__ import annotations

import re
from typing import Iterable

from .alertmanager import SLACK_TEXT, SLACK_TITLE, Receiver, Routing, Smtp, Timing, render
from .grafana import ORG_ID, uid

# Route keys Grafana's policies share with Alertmanager's routes; anything else is refused, so a
# new Alertmanager routing feature cannot silently vanish from the Grafana side.
_COPIED_ROUTE_KEYS = ("receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "continue")
_MATCHER = re.compile(r'^(?P<label>[A-Za-z_][A-Za-z0-9_]*)(?P<operator>=~|!~|!=|=)"(?P<value>(?:[^"\\]|\\.)*)"$')


def file_reference(path: str) -> str:
    """Grafana's placeholder for the content of the file at `path`."""
    if "}" in path:
        raise ValueError(f"{path!r} holds a '}}', which would end Grafana's $__file{{...}}; give the file another name")
    return f"$__file{{{path}}}"


def literal(text: str) -> str:
    """`text` as Grafana's provisioning must hold it to read it back unchanged: `$` doubled."""
    return text.replace("$", "$$")


# --- contact points ------------------------------------------------------------------------------
def _email(receiver: Receiver) -> dict:
    return {
        "uid": uid(receiver.name, "email"),
        "type": "email",
        "settings": {"addresses": ";".join(receiver.emails), "singleEmail": False},
        "disableResolveMessage": False,  # as Alertmanager's send_resolved: true
    }


def _slack(receiver: Receiver, index: int) -> dict:
    slack = receiver.slack[index]
    try:
        url = file_reference(slack.webhook_url_file)
    except ValueError as error:
        raise ValueError(f"{receiver.name}.slack[{index}].webhook_url_file: {error}") from None
    return {
        "uid": uid(receiver.name, "slack", str(index)),
        "type": "slack",
        "settings": {
            "url": url,
            "recipient": slack.channel,
            # Alertmanager's message templates: Grafana hands templates the same data.
            "title": literal(SLACK_TITLE),
            "text": literal(SLACK_TEXT),
        },
        "disableResolveMessage": False,
    }


def contact_point(receiver: Receiver, org_id: int = ORG_ID) -> dict:
    integrations = ([_email(receiver)] if receiver.emails else []) + [_slack(receiver, i) for i in range(len(receiver.slack))]
    return {"orgId": org_id, "name": receiver.name, "receivers": integrations}


def contact_points_file(receivers: Iterable[Receiver]) -> dict:
    """`provisioning/alerting/contact-points.yml`: one contact point per receiver of the stack."""
    return {"apiVersion": 1, "contactPoints": [contact_point(r) for r in sorted(receivers, key=lambda r: r.name)]}


# --- notification policies -----------------------------------------------------------------------
def object_matcher(matcher: str) -> list[str]:
    """An Alertmanager matcher such as `environment="production"` as Grafana's [label, op, value]."""
    match = _MATCHER.match(matcher)
    if match is None:
        raise ValueError(f"cannot translate the Alertmanager matcher {matcher!r} into a Grafana object matcher")
    value = re.sub(r"\\(.)", r"\1", match["value"])
    return [match["label"], match["operator"], value]


def policy(route: dict) -> dict:
    """One Alertmanager route (with its children) as a Grafana notification policy."""
    unknown = sorted(set(route) - set(_COPIED_ROUTE_KEYS) - {"matchers", "routes"})
    if unknown:
        raise ValueError(f"Alertmanager route keys {unknown} have no translation into a Grafana policy")
    translated = {key: route[key] for key in _COPIED_ROUTE_KEYS if key in route}
    if "matchers" in route:
        translated["object_matchers"] = [object_matcher(m) for m in route["matchers"]]
    if "routes" in route:
        translated["routes"] = [policy(child) for child in route["routes"]]
    return translated


def policies_file(receivers: Iterable[Receiver], routing: Routing, timing: Timing = Timing(), org_id: int = ORG_ID) -> dict:
    """`provisioning/alerting/policies.yml`: Alertmanager's route tree for these receivers and routes."""
    route = render(list(receivers), routing, timing, inhibitions=())["route"]
    return {"apiVersion": 1, "policies": [{"orgId": org_id, **policy(route)}]}


# --- Grafana's SMTP settings ---------------------------------------------------------------------
def smtp_environment(smtp: Smtp) -> dict[str, str]:
    """The `GF_SMTP_*` variables that give Grafana the stack's mail server; the password is read
    from its file (`__FILE`), never written here."""
    settings = {
        "GF_SMTP_ENABLED": "true",
        "GF_SMTP_HOST": smtp.smarthost,
        "GF_SMTP_FROM_ADDRESS": smtp.sender,
        # Alertmanager's require_tls: STARTTLS or give up; local test sinks offer none.
        "GF_SMTP_STARTTLS_POLICY": "MandatoryStartTLS" if smtp.require_tls else "NoStartTLS",
    }
    if smtp.auth_username:
        settings["GF_SMTP_USER"] = smtp.auth_username
    if smtp.auth_password_file:
        settings["GF_SMTP_PASSWORD__FILE"] = smtp.auth_password_file
    return dict(sorted(settings.items()))
