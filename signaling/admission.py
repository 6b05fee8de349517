"""Who may ask for a call: the per-client rate limit, then the optional bearer token.

Every call request (`POST /offer`, `POST /v1/calls`) passes `CallGate.admit` before its body
is read, so a flood costs one token-bucket lookup per request. Refused requests count in
`telugu_s2s_rejected_requests{reason="rate_limited"|"unauthorized"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from agent.process.metrics import AgentMetrics
from signaling.auth import check_bearer
from signaling.clientip import IpNetwork, client_address
from signaling.guards import ClientError
from signaling.ratelimit import RateLimit, RateLimiter, retry_after_s


@dataclass(frozen=True)
class AccessPolicy:
    """The server's admission settings; the default admits everyone (the local demo)."""

    rate_limit: RateLimit | None = None
    """Call requests per client address; None: no limit."""
    trusted_proxies: tuple[IpNetwork, ...] = ()
    """TCP peers whose X-Forwarded-For names the client; empty: the header is ignored."""
    api_token: str | None = None
    """Bearer token that call requests must carry; None: no token needed."""
    max_clients: int = 10_000
    """Most client addresses the rate limiter remembers at once."""


class CallGate:
    """Applies an AccessPolicy to incoming call requests."""

    def __init__(self, policy: AccessPolicy, metrics: AgentMetrics) -> None:
        self.policy = policy
        self.metrics = metrics
        self.limiter = (
            RateLimiter(policy.rate_limit, policy.max_clients) if policy.rate_limit else None
        )

    def admit(self, request: web.Request) -> None:
        """Return when the request may go on; ClientError 429 or 401 otherwise."""
        if self.limiter is not None:
            client = client_address(request, self.policy.trusted_proxies)
            wait_s = self.limiter.take(client)
            if wait_s > 0:
                self.metrics.rejected.labels(reason="rate_limited").inc()
                err = ClientError(
                    429, "rate_limited", "too many call requests from this address; slow down"
                )
                err.headers["Retry-After"] = str(retry_after_s(wait_s))
                raise err
        try:
            check_bearer(request, self.policy.api_token)
        except ClientError:
            self.metrics.rejected.labels(reason="unauthorized").inc()
            raise


GATE = web.AppKey("gate", CallGate)
"""The application's CallGate."""
