"""Magic links: e-mailed URLs that open one order's page without its access token.

The token rides in the URL fragment (`/o/<order>#token=<link>`), so it never reaches a server log or
a Referer. It is the order id and an expiry signed under the server secret: nothing is stored, and a
link opens its own order only, until it expires.
"""

from datetime import datetime, timedelta

from shared.cursors import read_cursor, sign_cursor
from shared.errors import BadInput

PURPOSE = b"miaofa:order-link:v1"
LIFETIME = timedelta(days=30)


def order_link_token(order_id: str, now: datetime, secret: str) -> str:
    expires = int((now + LIFETIME).timestamp())
    return sign_cursor(PURPOSE, {"order": order_id}, str(expires).encode(), secret)


def opens(token: str, order_id: str, now: datetime, secret: str) -> bool:
    """Whether `token` is a link signed for this order that has not expired."""
    try:
        expires = read_cursor(PURPOSE, {"order": order_id}, token, secret)
    except BadInput:
        return False
    return expires.isdigit() and int(expires) > now.timestamp()


def order_url(base_url: str, order_id: str, now: datetime, secret: str) -> str:
    return f"{base_url}/o/{order_id}#token={order_link_token(order_id, now, secret)}"
