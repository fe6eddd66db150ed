"""`miaofa-merchant licenses`: an order's licenses, one license with its activations, revoke,
reinstate and reissue one; `miaofa-merchant license-keys`: the signing keys, a rotation, retiring a
key that leaked (docs/licenses.md "A key that leaked").
Nothing printed holds a license key itself: only its id (the buyer holds the key)."""

import urllib.parse
from typing import Any

from infra.cli_support import Parser, count_of
from infra.merchant.api import ONCE, quoted
from infra.merchant.commands import Command


def _line(license: dict[str, Any]) -> str:
    limit = license["max_machines"] or "no limit"
    expires = license["expires_at"] or "never"
    return (
        f"{license['license_id']}  {license['status']:<8} unit {license['unit']}  "
        f"{len(license['activations'])}/{limit} machines  expires {expires}"
    )


class Licenses(Command):
    def list(self) -> int:
        query = urllib.parse.urlencode({"order_id": self.args.order})
        body = self.api.call(
            "GET", f"/merchant/licenses?{query}", self.console, "the order's licenses"
        ).json()
        found = body.get("licenses", []) if isinstance(body, dict) else []
        self.show(body, lambda: [*(_line(item) for item in found), f"{count_of(len(found), 'license')}"])
        return 0

    def show_it(self) -> int:
        license = self.api.call(
            "GET", f"/merchant/licenses/{quoted(self.args.id)}", self.console, f"license {self.args.id}"
        ).json()
        self.show(license, lambda: _detail(license))
        return 0

    def revoke(self) -> int:
        """Revoking again changes nothing: safe to retry."""
        body = {"reason": self.args.reason} if self.args.reason else {}
        return self._change("revoke", body)

    def reinstate(self) -> int:
        """Reinstating again changes nothing: safe to retry."""
        return self._change("reinstate", {})

    def reissue(self) -> int:
        """Reissuing again changes nothing: safe to retry."""
        return self._change("reissue", {})

    def _change(self, change: str, body: dict[str, Any]) -> int:
        license = self.api.json_call(
            "POST",
            f"/merchant/licenses/{quoted(self.args.id)}/{change}",
            self.console,
            f"{change} {self.args.id}",
            body,
        )
        self.show(license, lambda: [_line(license)])
        return 0


def _detail(license: dict[str, Any]) -> list[str]:
    lines = [
        _line(license),
        f"order        {license['order_id']}",
        f"product      {license['product_id']}",
        f"entitlements {', '.join(license['entitlements']) or '-'}",
        f"issued       {license['issued_at']}  key {license['kid']}",
    ]
    if license["status"] == "revoked":
        lines.append(
            f"revoked      {license['revoked_at']} by {license['revoked_by']}: {license['revoked_reason']}"
        )
    lines += [f"machine      {a['machine']}…  since {a['activated_at']}" for a in license["activations"]]
    return lines


class LicenseKeys(Command):
    def show_it(self) -> int:
        keys = self.api.call("GET", "/merchant/license-keys", self.console, "the license keys").json()
        self.show(keys, lambda: _keys(keys))
        return 0

    def rotate(self) -> int:
        """Each run makes one more key: sent once, never retried."""
        keys = self.api.json_call(
            "POST", "/merchant/license-keys/rotate", self.console, "rotate the license key", {}, attempts=ONCE
        )
        self.show(keys, lambda: _keys(keys))
        self.console.note("licenses signed before stay valid: their keys stay published")
        return 0

    def retire(self) -> int:
        """Retiring again changes nothing: safe to retry."""
        kid = self.args.kid
        keys = self.api.json_call(
            "POST", f"/merchant/license-keys/{quoted(kid)}/retire", self.console, f"retire key {kid}", {}
        )
        self.show(keys, lambda: _keys(keys))
        self.console.note(
            f"what key {kid} signed no longer verifies: reissue the licenses you keep "
            "(miaofa-merchant licenses reissue ID)"
        )
        return 0


def _keys(keys: dict[str, Any]) -> list[str]:
    return [
        *(f"{key['kid']}{'  current' if key['kid'] == keys['current'] else ''}" for key in keys["keys"]),
        *(f"{key['kid']}  retired {key['retired_at']}" for key in keys.get("retired", [])),
        f"published at {keys['url']}",
    ]


def register(commands: Any, where: Parser) -> None:
    licenses = commands.add_parser(
        "licenses", help="license keys sold: list an order's, show, revoke, reinstate, reissue"
    )
    licenses.set_defaults(area=Licenses)
    actions = licenses.add_subparsers(
        dest="action", required=True, metavar="{list,show,revoke,reinstate,reissue}"
    )
    listed = actions.add_parser("list", parents=[where], help="an order's licenses: status and activations")
    listed.add_argument("--order", required=True, metavar="ID", help="the order (ord_…)")
    listed.set_defaults(run=Licenses.list)
    one = Parser(add_help=False)
    one.add_argument("id", metavar="ID", help="the license (lic_…)")
    actions.add_parser(
        "show", parents=[where, one], help="a license and its activations (machines by their hash)"
    ).set_defaults(run=Licenses.show_it)
    revoked = actions.add_parser(
        "revoke", parents=[where, one], help="the license stops activating (safe to run again)"
    )
    revoked.add_argument("--reason", metavar="TEXT", help="kept with the license (at most 200 characters)")
    revoked.set_defaults(run=Licenses.revoke)
    actions.add_parser(
        "reinstate", parents=[where, one], help="a revoked license activates again (safe to run again)"
    ).set_defaults(run=Licenses.reinstate)
    actions.add_parser(
        "reissue",
        parents=[where, one],
        help="sign the license again under the current key; the buyer's order page shows it (safe to run again)",
    ).set_defaults(run=Licenses.reissue)

    keys = commands.add_parser(
        "license-keys", help="the keys your licenses are signed with: show, rotate, retire"
    )
    keys.set_defaults(area=LicenseKeys)
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="{show,rotate,retire}")
    key_actions.add_parser("show", parents=[where], help="every published key id, and where").set_defaults(
        run=LicenseKeys.show_it
    )
    key_actions.add_parser(
        "rotate", parents=[where], help="a fresh key signs from now on; the old ones stay published"
    ).set_defaults(run=LicenseKeys.rotate)
    retired = key_actions.add_parser(
        "retire",
        parents=[where],
        help="a rotated-out key that leaked: what it signed stops verifying (safe to run again)",
    )
    retired.add_argument("kid", metavar="KID", help="the key id (license-keys show)")
    retired.set_defaults(run=LicenseKeys.retire)
