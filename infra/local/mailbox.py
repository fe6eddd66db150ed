"""/_local/mail: the mail the shop sent through the embedded SES, newest first (local mode only).

HTML for people, `?format=json` for tests. The embedded AWS runs in this process, so the sent mail
is read straight from moto's SES backend, as an SES console would show a sandbox account's."""

import json
import re
from html import escape

from moto.ses.models import ses_backends

from infra.local.aws import ACCOUNT, REGION

PREFIX = "/_local"
_URL = re.compile(r"https?://[^\s<>\"]+")


def sent() -> list[dict]:
    messages = ses_backends[ACCOUNT][REGION].sent_messages
    return [
        {
            "id": m.id,
            "from": m.source,
            "to": list(m.destinations.get("ToAddresses", [])),
            "subject": m.subject,
            "body": m.body,
        }
        for m in reversed(messages)
        if hasattr(m, "subject")
    ]


def handle(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    if method != "GET" or path != f"{PREFIX}/mail":
        return 404, {"content-type": "text/plain"}, b"not found"
    mails = sent()
    if query.get("format") == "json":
        return 200, {"content-type": "application/json"}, json.dumps(mails, ensure_ascii=False).encode()
    items = "".join(
        f"<article><h2>{escape(m['subject'])}</h2><p>To {escape(', '.join(m['to']))} · from "
        f"{escape(m['from'])}</p><pre>{_linked(m['body'])}</pre></article>"
        for m in mails
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Local mail</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1"></head>'
        '<body style="font-family:system-ui;max-width:44rem;margin:1rem auto;padding:0 1rem">'
        "<h1>Mail sent by the local shop</h1><p>Local mode: nothing leaves this machine.</p>"
        f"{items or '<p>No mail yet.</p>'}</body></html>"
    )
    return 200, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}, page.encode()


def _linked(text: str) -> str:
    """The text escaped, its URLs clickable (the magic links)."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        out.append(f'<a href="{url}" rel="noreferrer">{url}</a>')
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)
