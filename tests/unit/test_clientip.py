"""Client addresses for the rate limit: X-Forwarded-For only through a trusted proxy."""

from aiohttp.test_utils import make_mocked_request

from signaling.clientip import client_address, parse_networks


class Transport:
    """The socket end aiohttp asks for the peer's address."""

    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default=None):  # noqa: ANN201
        return (self.peer, 40000) if name == "peername" else default


def request(peer: str, forwarded: list[str] | None = None):  # noqa: ANN201
    headers = [("X-Forwarded-For", value) for value in forwarded or []]
    return make_mocked_request("POST", "/offer", headers=headers, transport=Transport(peer))


PROXY = parse_networks(["127.0.0.1", "10.0.0.0/8"])


def test_forwarded_for_is_ignored_by_default():
    assert client_address(request("203.0.113.7", ["198.51.100.1"])) == "203.0.113.7"
    assert client_address(request("127.0.0.1", ["198.51.100.1"])) == "127.0.0.1"


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_address(request("203.0.113.7", ["198.51.100.1"]), PROXY) == "203.0.113.7"


def test_trusted_proxy_names_the_right_most_untrusted_hop():
    # the client wrote "1.1.1.1" itself; the proxies appended the real hops
    got = client_address(request("127.0.0.1", ["1.1.1.1, 198.51.100.9, 10.1.2.3"]), PROXY)
    assert got == "198.51.100.9"
    got = client_address(request("127.0.0.1", ["1.1.1.1", "198.51.100.9:5555"]), PROXY)
    assert got == "198.51.100.9"


def test_garbage_in_forwarded_for_stops_at_the_last_trusted_hop():
    assert client_address(request("127.0.0.1", ["not-an-ip"]), PROXY) == "127.0.0.1"
    assert client_address(request("127.0.0.1", ["junk, 10.0.0.5"]), PROXY) == "10.0.0.5"
    assert client_address(request("127.0.0.1", []), PROXY) == "127.0.0.1"


def test_ipv6_and_mapped_ipv4():
    assert client_address(request("::ffff:203.0.113.7")) == "203.0.113.7"
    v6 = parse_networks(["::1"])
    assert client_address(request("::1", ["[2001:db8::1]:443"]), v6) == "2001:db8::1"
