"""What a notification says: Alertmanager's Slack, mail and PagerDuty templates, with links that
tell the reader where to look and what to do.

Every message of a group carries:
- its severity and environment in the title. Mail subjects have fixed fields first, for filters:
  `[PHAROS][FIRING][critical][production] PharosHighErrorRate production/orders`;
- per alert, the summary and description while it fires; once it is resolved, when it ended and
  "While firing: <summary>". The annotations keep the value of the last evaluation before the
  end, and the description states it as a fact of now: a resolved alert never shows it;
- links: the Grafana service-detail dashboard for the group's environment and service, from an
  hour before the alert to now (or a quarter of an hour after its end), when the stack names its
  Grafana; an Alertmanager silence form filled with the group's labels (`group_by`); the runbook.

The templates are strings written into alertmanager.yml itself (no template files: the generated
file stands alone, and `amtool check-config` checks them). Alertmanager renders Slack, PagerDuty
and the mail's text part with Go's text/template, the mail's HTML part with html/template, which
escapes by context: the links are written once, with `urlquery` for every value and a choice of
`&` or `&amp;` between query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from pharos_monitoring.exporter.catalogue import Label as L

from .model import CRITICAL, SEVERITIES
from .upstream import ALERTNAME, SEVERITY

TIME_FORMAT = "2006-01-02 15:04:05 MST"  # Go's reference time
BEFORE_START_NS = 3600 * 10**9  # the dashboard opens an hour before the first alert started
AFTER_END_NS = 900 * 10**9  # and, once resolved, ends a quarter of an hour after it ended


@dataclass(frozen=True)
class Links:
    """Where messages link to besides Alertmanager and the runbooks."""

    service_dashboard: str = ""  # the Grafana URL of the service-detail dashboard; "" = no dashboard link


def _label(name: str) -> str:
    """A label all alerts of the group share (empty when they differ)."""
    return f".CommonLabels.{name}"


def _at(time: str) -> str:
    return f'{{{{ {time}.UTC.Format "{TIME_FORMAT}" }}}}'


def _or_none(name: str) -> str:
    return f'{{{{ or {_label(name)} "none" }}}}'


# --- titles --------------------------------------------------------------------------------------
_STATUS = "{{ .Status | toUpper }}"
_FIRING_COUNT = '{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}'
_WHAT = (
    f"{{{{ {_label(ALERTNAME)} }}}}"
    f"{{{{ with {_label(L.ENVIRONMENT)} }}}} in {{{{ . }}}}{{{{ end }}}}"
    f"{{{{ with {_label(L.SERVICE)} }}}} ({{{{ . }}}}){{{{ end }}}}"
)

# `[FIRING:1][critical] PharosHighErrorRate in production (orders)`
TITLE = f"[{_STATUS}{_FIRING_COUNT}][{_or_none(SEVERITY)}] {_WHAT}"

# `[PHAROS][FIRING][critical][production] PharosHighErrorRate production/orders`
MAIL_SUBJECT = (
    f"[PHAROS][{_STATUS}][{_or_none(SEVERITY)}][{_or_none(L.ENVIRONMENT)}] {{{{ {_label(ALERTNAME)} }}}}"
    f"{{{{ with {_label(L.ENVIRONMENT)} }}}} {{{{ . }}}}{{{{ end }}}}"
    f"{{{{ with {_label(L.SERVICE)} }}}}/{{{{ . }}}}{{{{ end }}}}"
)

SLACK_COLOR = f'{{{{ if eq .Status "firing" }}}}{{{{ if eq {_label(SEVERITY)} "{CRITICAL}" }}}}danger{{{{ else }}}}warning{{{{ end }}}}{{{{ else }}}}good{{{{ end }}}}'


# --- links ---------------------------------------------------------------------------------------
def silence_url() -> str:
    """Alertmanager's new-silence form with one matcher per label of the group, e.g. the filter
    `{alertname="PharosHighErrorRate",environment="production",service="orders"}`."""
    matchers = (
        '{{ range $i, $pair := .GroupLabels.SortedPairs }}{{ if $i }}%2C{{ end }}'
        '{{ $pair.Name | urlquery }}%3D{{ printf "%q" $pair.Value | urlquery }}{{ end }}'
    )
    return "{{ .ExternalURL }}/#/silences/new?filter=%7B" + matchers + "%7D"


def runbook_url() -> str:
    """The group's runbook; for alerts that bring none (not from the catalogue), Alertmanager's view of them."""
    return (
        "{{ with .CommonAnnotations.runbook_url }}{{ . }}{{ else }}"
        "{{ with (index .Alerts 0).Annotations.runbook_url }}{{ . }}{{ else }}"
        "{{ $.ExternalURL }}/#/alerts?receiver={{ $.Receiver | urlquery }}{{ end }}{{ end }}"
    )


def dashboard_url(links: Links, separator: str = "&") -> str:
    """The service-detail dashboard with the group's environment and service, around the alert
    (Grafana reads `from`/`to` as milliseconds; Go templates have no arithmetic, hence `000`)."""
    if not links.service_dashboard:
        return ""
    first = "(index .Alerts 0)"
    return (
        f"{links.service_dashboard}?from={{{{ ({first}.StartsAt.Add -{BEFORE_START_NS}).Unix }}}}000"
        f'{separator}to={{{{ if eq .Status "firing" }}}}now{{{{ else }}}}{{{{ ({first}.EndsAt.Add {AFTER_END_NS}).Unix }}}}000{{{{ end }}}}'
        + "".join(
            f"{{{{ with {_label(name)} }}}}{separator}var-{name}={{{{ . | urlquery }}}}{{{{ end }}}}"
            for name in (L.ENVIRONMENT, L.SERVICE)
        )
    )


def link_list(links: Links, separator: str = "&") -> list[tuple[str, str]]:
    """(text, URL template) of every link a message carries, in the order shown."""
    shown = [("Dashboard", dashboard_url(links, separator))] if links.service_dashboard else []
    return shown + [("Silence", silence_url()), ("Runbook", runbook_url())]


# --- the alerts of a group -----------------------------------------------------------------------
_LABEL_PAIRS = "{{ range .Labels.SortedPairs }}`{{ .Name }}={{ .Value }}` {{ end }}"
_PLAIN_LABEL_PAIRS = "{{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}"
_DURATION = "{{ (.EndsAt.Sub .StartsAt).Round 1000000000 }}"
_ENDED = f"Resolved at {_at('.EndsAt')}, after {_DURATION}."
_WHILE_FIRING = "{{ with .Annotations.summary }} While firing: {{ . }}{{ end }}"

SLACK_TEXT = (
    "{{ range .Alerts.Firing }}*{{ or .Annotations.summary .Labels.alertname }}*\n"
    "{{ with .Annotations.description }}{{ . }}\n{{ end }}"
    f"_Firing since {_at('.StartsAt')}_\n{_LABEL_PAIRS}\n{{{{ end }}}}"
    f"{{{{ range .Alerts.Resolved }}}}*{_ENDED}*{_WHILE_FIRING}\n{_LABEL_PAIRS}\n{{{{ end }}}}"
)


def slack_actions(links: Links) -> list[dict]:
    """Slack link buttons (attachment actions of type button with a url)."""
    return [{"type": "button", "text": text, "url": url} for text, url in link_list(links)]


def mail_text(links: Links) -> str:
    """The text/plain part."""
    shown = "".join(f"{text}: {url}\n" for text, url in link_list(links))
    return (
        f"{TITLE}\n\n"
        "{{ range .Alerts.Firing }}* {{ or .Annotations.summary .Labels.alertname }}\n"
        "{{ with .Annotations.description }}  {{ . }}\n{{ end }}"
        f"  Firing since {_at('.StartsAt')}\n  Labels: {_PLAIN_LABEL_PAIRS}\n\n{{{{ end }}}}"
        f"{{{{ range .Alerts.Resolved }}}}* {_ENDED}{_WHILE_FIRING}\n  Labels: {_PLAIN_LABEL_PAIRS}\n\n{{{{ end }}}}"
        f"{shown}Alertmanager: {{{{ .ExternalURL }}}}\n"
    )


def mail_html(links: Links) -> str:
    """The text/html part: the same as the text part, with the links clickable."""
    pairs = "{{ range .Labels.SortedPairs }}<code>{{ .Name }}={{ .Value }}</code> {{ end }}"
    shown = " | ".join(f'<a href="{url}">{text}</a>' for text, url in link_list(links, "&amp;"))
    return (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<h3>{TITLE}</h3>\n<ul>\n"
        "{{ range .Alerts.Firing }}<li><b>{{ or .Annotations.summary .Labels.alertname }}</b><br>\n"
        "{{ with .Annotations.description }}{{ . }}<br>\n{{ end }}"
        f"<i>Firing since {_at('.StartsAt')}</i><br>\n{pairs}</li>\n{{{{ end }}}}"
        f"{{{{ range .Alerts.Resolved }}}}<li><b>{_ENDED}</b>{_WHILE_FIRING}<br>\n{pairs}</li>\n{{{{ end }}}}"
        f"</ul>\n<p>{shown} | <a href=\"{{{{ .ExternalURL }}}}\">Alertmanager</a></p>\n</body></html>\n"
    )


# --- PagerDuty (Events API v2) -------------------------------------------------------------------
PAGERDUTY_DESCRIPTION = TITLE + '{{ if eq .Status "firing" }}{{ with .CommonAnnotations.summary }}: {{ . }}{{ end }}{{ end }}'
# PagerDuty's severities are critical, error, warning and info: ours are among them; anything else is an error.
_PAGERDUTY_KNOWS = " ".join(f'"{severity}"' for severity in SEVERITIES)
PAGERDUTY_SEVERITY = f"{{{{ if eq {_label(SEVERITY)} {_PAGERDUTY_KNOWS} }}}}{{{{ {_label(SEVERITY)} }}}}{{{{ else }}}}error{{{{ end }}}}"


def pagerduty_fields(links: Links) -> dict:
    """pagerduty_configs fields. Keyword arguments: `severity` and `component` are PagerDuty's
    field names here, which happen to be label names too (tests/test_alerts.py looks for typed ones)."""
    return {
        "description": PAGERDUTY_DESCRIPTION,
        **dict(severity=PAGERDUTY_SEVERITY, component=f"{{{{ {_label(L.SERVICE)} }}}}"),
        "class": f"{{{{ {_label(ALERTNAME)} }}}}",
        "group": f"{{{{ {_label(L.ENVIRONMENT)} }}}}",
        # Alertmanager's own `resolved` detail lists the annotations, the description among them.
        "details": {"resolved": f"{{{{ range .Alerts.Resolved }}}}{_ENDED}{_WHILE_FIRING}\n  Labels: {_PLAIN_LABEL_PAIRS}\n{{{{ end }}}}"},
        "links": [{"href": url, "text": text} for text, url in link_list(links)],
    }
