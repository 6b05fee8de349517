"""Who may ask for what: the optional bearer token and the per-client rate limits.

Call requests (`POST /offer`, `POST /v1/calls`) pass `CallGate.admit` before their body is
read, so a flood costs a token comparison and a token-bucket lookup per request. The token is
checked first and a failed attempt spends only the address's *failure* bucket: a client
guessing tokens behind a shared NAT gets 429 on its own wrong guesses while its neighbours,
who hold the token, keep their call rate. `/ice-config` and hang-ups need the token too;
`/ice-config` has its own buckets at the call rate. Refused requests count in
`telugu_s2s_rejected_requests{reason=...}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from agent.process.metrics import AgentMetrics
from signaling.auth import check_bearer
from signaling.clientip import IpNetwork, client_address
from signaling.guards import ClientError
from signaling.ratelimit import RateLimit, RateLimiter, retry_after_s

AUTH_FAILURES = RateLimit(10, 60.0, 10)
"""Wrong or missing tokens one address may send per minute before it gets 429 instead of 401."""


@dataclass(frozen=True)
class AccessPolicy:
    """The server's admission settings; the default admits everyone (the local demo)."""

    rate_limit: RateLimit | None = None
    """Call requests (and, in separate buckets, /ice-config requests) per client address;
    None: no limit."""
    trusted_proxies: tuple[IpNetwork, ...] = ()
    """TCP peers whose X-Forwarded-For names the client; empty: the header is ignored."""
    api_token: str | None = None
    """Bearer token that call requests, /ice-config and hang-ups must carry; None: none."""
    auth_failures: RateLimit = AUTH_FAILURES
    """Failed token attempts per client address before they are answered 429."""
    max_clients: int = 10_000
    """Most client addresses each rate limiter remembers at once."""
    behind_router: bool = False
    """A worker behind `serve --workers`' router, on a private Unix socket: the client is the
    one address the router puts in X-Forwarded-For (the router checks tokens and rates)."""


class CallGate:
    """Applies an AccessPolicy to incoming requests."""

    def __init__(self, policy: AccessPolicy, metrics: AgentMetrics) -> None:
        self.policy = policy
        self.metrics = metrics
        self.calls = _limiter(policy.rate_limit, policy.max_clients)
        self.ice = _limiter(policy.rate_limit, policy.max_clients)
        self.failures = RateLimiter(policy.auth_failures, policy.max_clients)

    def client(self, request: web.Request) -> str:
        """The address a request counts against (X-Forwarded-For only via trusted proxies,
        or from the router of a worker)."""
        if self.policy.behind_router:
            return request.headers.get("X-Forwarded-For", "unknown")
        return client_address(request, self.policy.trusted_proxies)

    def admit(self, request: web.Request) -> str:
        """A call request: the token, then the call rate. Returns the client's address;
        ClientError 401 or 429 otherwise."""
        client = self.authenticate(request)
        self._spend(self.calls, client, "rate_limited", "too many call requests")
        return client

    def admit_ice(self, request: web.Request) -> str:
        """An /ice-config request: the token, then the address's /ice-config rate."""
        client = self.authenticate(request)
        self._spend(self.ice, client, "rate_limited", "too many /ice-config requests")
        return client

    def authenticate(self, request: web.Request) -> str:
        """Pass when no token is configured or the request carries it; 401 otherwise, 429
        once the address has failed too often. Returns the client's address."""
        client = self.client(request)
        try:
            check_bearer(request, self.policy.api_token)
        except ClientError:
            self._spend(self.failures, client, "auth_failures", "too many failed token attempts")
            self.metrics.rejected.labels(reason="unauthorized").inc()
            raise
        return client

    def _spend(self, limiter: RateLimiter | None, client: str, reason: str, what: str) -> None:
        if limiter is None:
            return
        wait_s = limiter.take(client)
        if wait_s > 0:
            self.metrics.rejected.labels(reason=reason).inc()
            err = ClientError(429, reason, f"{what} from this address; slow down")
            err.headers["Retry-After"] = str(retry_after_s(wait_s))
            raise err


def _limiter(limit: RateLimit | None, max_clients: int) -> RateLimiter | None:
    return RateLimiter(limit, max_clients) if limit is not None else None


GATE = web.AppKey("gate", CallGate)
"""The application's CallGate."""
