"""A merchant's webhook URL cannot make the shop call into its own network (SSRF).

Through the merchant API on the local runtime (local mode: loopback is a developer's own receiver
and is taken; nothing else internal is), in every form a resolver reads, and by name. At send time the
host is resolved and checked again and the connection goes to the address checked: a name that
rebinds to an internal address between the check and the connection is never connected to.

The network is the test's: `Network` answers DNS for the test's names and routes connections to the
test's servers on 127.0.0.1 (the OS resolver and connect; the code under test is not patched). The
public address stands in for a merchant's server; 169.254.169.254 for the instance metadata service."""

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from functions.notify import webhooks
from shared import notify, outbound, queues
from shared.adapters import merchants as merchant_store
from shared.adapters import webhooks as webhook_store
from shared.orders import utcnow
from shared.providers import ProviderRefused, ProviderUnavailable, UnexpectedAnswer
from tests.support import poll

PUBLIC = "93.184.215.14"
METADATA = "169.254.169.254"
NAME = "hooks.merchant.ssrf.test"


# ---------- the test's network ----------


class Network:
    """DNS for the names in `dns` (each lookup takes the next answer, the last one stays; an empty
    answer: no such name), connections to `routes` sent to servers on 127.0.0.1, every connect and
    every lookup of a test name recorded. Anything else is the real stack."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dns: dict[str, list[list[str]]] = {}
        self.routes: dict[tuple[str, int], tuple[str, int]] = {}
        self.lookups: list[str] = []
        self.connects: list[tuple[str, int]] = []
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            name = host.decode() if isinstance(host, bytes) else host
            if name not in self.dns:
                return real_getaddrinfo(host, port, family, type, proto, flags)
            self.lookups.append(name)
            answers = self.dns[name]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if not answer:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port or 0, 0, 0))
                if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port or 0))
                for a in answer
            ]

        def connect(sock, address):
            self.connects.append((address[0], address[1]))
            return real_connect(sock, self.routes.get((address[0], address[1]), address))

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)

    def to(self, port: int) -> list[str]:
        """The addresses connected to on `port`, in order."""
        return [address for address, to_port in self.connects if to_port == port]


@pytest.fixture
def network(monkeypatch) -> Network:
    return Network(monkeypatch)


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class Server:
    """An HTTP (or, with a TLS context, HTTPS) server on 127.0.0.1: counts connections, records
    requests and the TLS server name asked for, answers `status` with `headers`."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.requests: list[Request] = []
        self.server_names: list[str | None] = []
        self.status, self.headers = 200, {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests.append(
                    Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(owner.status)
                for name, value in {**owner.headers, "Content-Length": "0"}.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        class Counting(ThreadingHTTPServer):
            def verify_request(self, request, client_address) -> bool:
                owner.connections += 1
                return True

        self.server = Counting(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Certificates:
    """A test CA, and server certificates it signs for any name."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def ca_file(self) -> str:
        return str(self.directory / "ca.pem")

    def server_context(self, name: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(name, key, self.cert.subject, self.key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


def _builder(name: str, key, issuer: x509.Name, issuer_key) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "miaofa test CA")])
    cert = (
        _builder("miaofa test CA", key, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Certificates(directory, key, cert)


@pytest.fixture
def servers():
    """Servers a test starts (stopped afterwards)."""
    started: list[Server] = []

    def start(tls: ssl.SSLContext | None = None) -> Server:
        started.append(Server(tls))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def pools(certificates: Certificates, local_mode: bool = False):
    """The notify function's pools (webhooks.pool()), trusting the test CA."""
    return outbound.PinnedPools(
        local_mode,
        who="merchant webhook",
        timeout=webhooks.TIMEOUT,
        retries=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
        ca_certs=certificates.ca_file,
    )


class OneWebhook:
    """The shop store as send reads it: one merchant, one webhook."""

    def __init__(self, url: str) -> None:
        self.webhook = notify.MerchantWebhook(
            merchant_id="mer_ssrf",
            url=url,
            events=("order.paid",),
            secret=SecretStr("whsec_ssrf"),
            updated_at=utcnow(),
        )

    def recent_webhook(self, merchant_id: str) -> notify.MerchantWebhook | None:
        return self.webhook if merchant_id == self.webhook.merchant_id else None


def paid(n: int) -> notify.Notification:
    return notify.Notification(
        event_id=notify.event_id("order.paid", f"ord_ssrf{n}", "t"),
        type="order.paid",
        merchant_id="mer_ssrf",
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        data={"order_id": f"ord_ssrf{n}"},
    )


def send(notification: notify.Notification, url: str, http) -> webhooks.Sent:
    return webhooks.send(notification, OneWebhook(url), http, now=int(time.time()))


# ---------- at send time: resolved, checked, and connected to as checked ----------


@pytest.mark.parametrize("internal", ["127.0.0.1", METADATA])
def test_a_name_that_rebinds_to_an_internal_address_after_its_check_is_never_connected_to(
    network, certificates, servers, internal
):
    """DNS rebinding (TTL 0): the first answer is public, every later one internal. The first event goes
    to the address that was checked, over TLS for the URL's name; the next is refused. Nothing ever
    connects to the internal address, and each attempt looks the name up once."""
    merchant = servers(certificates.server_context(NAME))
    metadata = servers()
    url = f"https://{NAME}:{metadata.port}/hooks/miaofa"
    network.dns[NAME] = [[PUBLIC], [internal]]
    network.routes[(PUBLIC, metadata.port)] = ("127.0.0.1", merchant.port)
    network.routes[(METADATA, metadata.port)] = ("127.0.0.1", metadata.port)
    http = pools(certificates)

    assert send(paid(1), url, http) == webhooks.Sent.SENT
    with pytest.raises(ProviderRefused, match="public address"):
        send(paid(2), url, http)

    (got,) = merchant.requests
    assert got.path == "/hooks/miaofa" and got.headers["host"] == f"{NAME}:{metadata.port}"
    assert got.headers["miaofa-event-id"] == paid(1).event_id
    assert merchant.server_names == [NAME]  # SNI: the URL's name, not the address
    assert (metadata.connections, metadata.requests) == (0, [])
    assert network.to(metadata.port) == [PUBLIC]
    assert network.lookups == [NAME, NAME]


def test_in_local_mode_a_name_that_rebinds_from_loopback_to_the_metadata_service_is_refused(
    network, certificates, servers
):
    receiver, metadata = servers(), servers()
    url = f"http://{NAME}:{receiver.port}/hook"
    network.dns[NAME] = [["127.0.0.1"], [METADATA]]
    network.routes[(METADATA, receiver.port)] = ("127.0.0.1", metadata.port)
    http = pools(certificates, local_mode=True)

    assert send(paid(1), url, http) == webhooks.Sent.SENT
    with pytest.raises(ProviderRefused):
        send(paid(2), url, http)
    assert len(receiver.requests) == 1 and receiver.requests[0].headers["host"] == f"{NAME}:{receiver.port}"
    assert (metadata.connections, network.to(receiver.port)) == (0, ["127.0.0.1"])


def test_a_name_with_a_public_and_an_internal_address_is_refused_without_connecting(
    network, certificates, servers
):
    merchant = servers(certificates.server_context(NAME))
    network.dns[NAME] = [[PUBLIC, METADATA]]
    network.routes[(PUBLIC, 443)] = ("127.0.0.1", merchant.port)
    with pytest.raises(ProviderRefused):
        send(paid(1), f"https://{NAME}/hook", pools(certificates))
    assert network.to(443) == [] and merchant.connections == 0


def test_a_stored_url_that_no_longer_resolves_is_a_failed_attempt(network, certificates):
    network.dns[NAME] = [[]]
    with pytest.raises(ProviderUnavailable, match="does not resolve"):
        send(paid(1), f"https://{NAME}/hook", pools(certificates))


def test_the_certificate_is_still_checked_for_the_urls_name(network, certificates, servers):
    """Connecting to the checked address leaves TLS as it was: a certificate for another name fails."""
    impostor = servers(certificates.server_context("other.ssrf.test"))
    network.dns[NAME] = [[PUBLIC]]
    network.routes[(PUBLIC, 443)] = ("127.0.0.1", impostor.port)
    with pytest.raises(ProviderUnavailable):
        send(paid(1), f"https://{NAME}/hook", pools(certificates))
    assert impostor.requests == [] and impostor.server_names == [NAME]


@pytest.mark.parametrize(
    "location", [f"http://{METADATA}/latest/meta-data/", "https://{NAME}:{port}/elsewhere"]
)
def test_a_redirect_is_not_followed(network, certificates, servers, location):
    merchant, metadata = servers(certificates.server_context(NAME)), servers()
    network.dns[NAME] = [[PUBLIC]]
    network.routes[(PUBLIC, metadata.port)] = ("127.0.0.1", merchant.port)
    network.routes[(METADATA, 80)] = ("127.0.0.1", metadata.port)
    merchant.status = 302
    merchant.headers = {"Location": location.format(NAME=NAME, port=metadata.port)}
    with pytest.raises(UnexpectedAnswer, match="302"):
        send(paid(1), f"https://{NAME}:{metadata.port}/hook", pools(certificates))
    assert len(merchant.requests) == 1 and (metadata.connections, network.to(80)) == (0, [])


# ---------- at registration: the merchant API ----------

# Names the test's DNS answers while the merchant API checks a URL.
DNS = {
    "metadata.ssrf.test": [[METADATA]],
    "private.ssrf.test": [["10.0.0.7"]],
    "mixed.ssrf.test": [[PUBLIC, "10.0.0.7"]],
    "mapped.ssrf.test": [["::ffff:169.254.169.254"]],
    "ula.ssrf.test": [["fd00::1"]],
    "nowhere.ssrf.test": [[]],
    "public.ssrf.test": [[PUBLIC]],
    "loopback.ssrf.test": [["127.0.0.1"]],
}
REFUSED = [
    "https://2852039166/latest/meta-data/",
    "https://0xa9fea9fe/",
    "https://0251.0376.0251.0376/",
    "https://169.254.43518/",
    "https://169.254.169.254/",
    "https://10.0.0.1/hook",
    "https://012.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://100.64.0.1/hook",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[fd00::1]/hook",
    "https://[fd00:ec2::254]/",
    "https://[fe80::1]/hook",
    "http://10.0.0.1/hook",
    "https://metadata.ssrf.test/hook",
    "https://private.ssrf.test/hook",
    "https://mixed.ssrf.test/hook",
    "https://mapped.ssrf.test/hook",
    "https://ula.ssrf.test/hook",
]


@pytest.fixture
def merchant(runtime, shop, request):
    """A merchant of its own with a webhook already set (to 127.0.0.1); turned off afterwards."""
    merchant_id, key = merchant_store().create_merchant(f"SSRF {request.node.name}")
    set_to = shop.merchant("PUT", "/merchant/webhook", key=key, json={"url": "http://127.0.0.1:9/kept"})
    assert set_to.status_code == 200, set_to.text
    yield merchant_id, key
    shop.merchant("DELETE", "/merchant/webhook", key=key)


def put_webhook(shop, key: str, url: str):
    return shop.merchant("PUT", "/merchant/webhook", key=key, json={"url": url})


@pytest.mark.parametrize("url", REFUSED)
def test_the_merchant_api_refuses_an_internal_address_in_any_form_and_keeps_the_webhook(
    shop, merchant, network, url
):
    network.dns.update({name: [list(answer) for answer in answers] for name, answers in DNS.items()})
    merchant_id, key = merchant
    response = put_webhook(shop, key, url)
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (422, "invalid_url"), response.text
    assert "public address" in error["message"]
    assert webhook_store().webhook(merchant_id).url == "http://127.0.0.1:9/kept"


def test_the_merchant_api_says_a_name_does_not_resolve(shop, merchant, network):
    network.dns["nowhere.ssrf.test"] = [[]]
    response = put_webhook(shop, merchant[1], "https://nowhere.ssrf.test/hook")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_url")
    assert "does not resolve" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1:9/hook",
        "http://0x7f.1:9/hook",
        "http://0177.0.0.1:9/hook",
        "http://2130706433:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://loopback.ssrf.test:9/hook",
        "https://public.ssrf.test/hook",
        f"https://{PUBLIC}/hook",
    ],
)
def test_in_local_mode_the_merchant_api_takes_loopback_in_any_form_and_public_addresses(
    shop, merchant, network, url
):
    network.dns.update({name: [list(answer) for answer in answers] for name, answers in DNS.items()})
    response = put_webhook(shop, merchant[1], url)
    assert response.status_code == 200, response.text
    assert response.json()["url"] == url


def test_an_event_reaches_a_receiver_registered_under_a_loopback_alias(shop, merchant, servers):
    """The notify function, as the runtime runs it, connects to the checked address of `127.1`."""
    receiver = servers()
    merchant_id, key = merchant
    url = f"http://127.1:{receiver.port}/hooks/{merchant_id}"
    assert put_webhook(shop, key, url).status_code == 200
    stale = notify.Notification(
        event_id=notify.event_id("stock.low", "prd_ssrf", merchant_id),
        type="stock.low",
        merchant_id=merchant_id,
        created_at=utcnow(),
        data={"product_id": "prd_ssrf", "available": 0, "low_stock_threshold": 1},
    )
    assert queues.publish(stale, queues.notify_queue())
    (got,) = poll(lambda: receiver.requests, deadline=15)
    assert got.path == f"/hooks/{merchant_id}" and got.headers["host"] == f"127.1:{receiver.port}"
    assert got.headers["miaofa-event-id"] == stale.event_id
