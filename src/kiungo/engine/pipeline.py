"""One exchange through the bus, step by step (DESIGN.md, "the flow of one request").

Each step is a small callable taking the :class:`Exchange` being built; it either fills
in its part or raises a :class:`KiungoError`. ``REQUEST_FLOW`` lists them in order; the
engine runs them, turns any error into the signed failure envelope, and writes the
exchange record (step 9) before the answer leaves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiungo.auth.tokens import InvalidToken, TokenService
from kiungo.engine.errors import (
    CodeDisabled,
    NotFoundPath,
    NotGranted,
    ProviderBadAnswer,
    ProviderBadSignature,
    RateLimited,
    UnknownCode,
)
from kiungo.engine.limits import Limiter
from kiungo.engine.outbound import Outbound
from kiungo.errors import KiungoError, ServerError
from kiungo.keystore import Signer
from kiungo.ledger.log import ExchangeLog, ExchangeRecord
from kiungo.protocol import (
    CONTENT_TYPES,
    REQUEST_ROOT,
    Envelope,
    Format,
    InvalidSignature,
    Limits,
    MalformedEnvelope,
    detect_format,
    parse_envelope,
    response_data,
)
from kiungo.registry.snapshot import ApiEntry, RegistryCache, Snapshot, SystemEntry

log = logging.getLogger("kiungo.engine")

FLOW_KINDS = frozenset({"request", "nida"})
# Served by the delivery work (push and asynchronous answers); refused clearly until then.
PLANNED_KINDS = {"push": "push requests", "async": "asynchronous answers"}


# Request ids must be unique, not secret (every object is authorized by code and system,
# never by knowing an id): a generator seeded once from the OS is enough, and cheaper.
_random = random.Random(os.urandom(32))  # noqa: S311 (uniqueness, not secrecy)
_V7_MASK = ~(0xF << 76) & ~(0x3 << 62)
_V7_BITS = (0x7 << 76) | (0x2 << 62)  # version 7, RFC 4122 variant


def new_request_id() -> str:
    """A UUIDv7: ordered by time to the millisecond, like the exchanges themselves."""
    value = (time.time_ns() // 1_000_000) << 80 | _random.getrandbits(80)
    h = "%032x" % (value & _V7_MASK | _V7_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(slots=True, eq=False)
class Exchange:
    kind: str  # "request" or "nida"
    body: bytes
    content_type: str
    authorization: str | None
    snapshot: Snapshot
    now: float
    started: float
    request_id: str
    fmt: Format
    consumer: SystemEntry | None = None
    envelope: Envelope | None = None
    api: ApiEntry | None = None
    answer: Envelope | None = None
    response: bytes = b""
    status: int = 200
    success: bool = False
    error: KiungoError | None = None


Step = Callable[[Exchange], Awaitable[None] | None]


class Engine:
    def __init__(
        self,
        *,
        registry: RegistryCache,
        tokens: TokenService,
        signer: Signer,
        limiter: Limiter,
        outbound: Outbound,
        exchange_log: ExchangeLog,
        limits: Limits,
        system_rate: float,
        api_rate: float,
    ) -> None:
        self.registry = registry
        self.tokens = tokens
        self.signer = signer
        self.limiter = limiter
        self.outbound = outbound
        self.exchange_log = exchange_log
        self.limits = limits
        self.system_rate = system_rate
        self.api_rate = api_rate
        self.flow: tuple[Step, ...] = (
            self.authenticate,  # 1
            self.parse,  # 2
            self.verify,  # 3
            self.authorize,  # 4
            self.limit,  # 5
            self.forward,  # 6, 7
            self.reply,  # 8
        )

    async def handle(
        self,
        kind: str,
        body: bytes,
        content_type: str,
        authorization: str | None,
        *,
        refusal: KiungoError | None = None,
    ) -> tuple[int, bytes, str, str | None]:
        """Run one exchange; (status, answer, content type, error code or None).

        ``refusal`` is an error found before the flow could start (a body too large, a
        wrong method): it is answered and logged like any other failure.
        """
        if refusal is None and kind not in FLOW_KINDS:
            refusal = NotFoundPath(
                f"{PLANNED_KINDS.get(kind, kind)} are not enabled on this bus yet"
            )
        x = Exchange(
            kind=kind,
            body=body,
            content_type=content_type,
            authorization=authorization,
            snapshot=self.registry.current,
            now=time.time(),
            started=time.perf_counter(),
            request_id=new_request_id(),
            fmt=detect_format(body, content_type),
        )
        try:
            if refusal is not None:
                raise refusal
            for step in self.flow:
                pending = step(x)
                if pending is not None:
                    await pending
        except KiungoError as exc:
            self.fail(x, exc)
        except Exception:
            log.exception("exchange %s failed unexpectedly", x.request_id)
            self.fail(x, ServerError("the bus could not complete this request"))
        await self.record(x)  # 9
        return x.status, x.response, CONTENT_TYPES[x.fmt], x.error.code if x.error else None

    def fail(self, x: Exchange, exc: KiungoError) -> None:
        x.error, x.status, x.success = exc, exc.status, False
        x.response = self.signer.failure(exc.message, x.fmt, request_id=x.request_id)

    # 1 -------------------------------------------------------------------------------------
    def authenticate(self, x: Exchange) -> None:
        header = (x.authorization or "").strip()
        # The JS connector sends "Bearer <token>"; the authority's jar the bare token.
        token = header[7:].strip() if header[:7].lower() == "bearer " else header
        if not token:
            raise InvalidToken("missing access token (Authorization: Bearer <token>)")
        system_id, version = self.tokens.check(token, x.now)
        system = x.snapshot.by_id.get(system_id)
        if system is None or system.secret_version != version:
            raise InvalidToken("access token has been revoked")
        if not system.active:
            raise InvalidToken(f"system {system.code} is disabled")
        x.consumer = system

    # 2 -------------------------------------------------------------------------------------
    def parse(self, x: Exchange) -> None:
        x.envelope = parse_envelope(x.body, x.content_type, limits=self.limits)

    # 3 -------------------------------------------------------------------------------------
    def verify(self, x: Exchange) -> None:
        assert x.consumer is not None and x.envelope is not None
        keys = x.consumer.keys_at(x.now)
        if not keys:
            raise InvalidSignature(f"system {x.consumer.code} has no valid public key registered")
        x.envelope.verify_any(keys)

    # 4 -------------------------------------------------------------------------------------
    def authorize(self, x: Exchange) -> None:
        assert x.consumer is not None and x.envelope is not None
        data = x.envelope.data
        code = data.get("apiCode")
        if not isinstance(code, str) or not code:
            raise MalformedEnvelope('envelope data has no "apiCode"')
        if x.kind == "nida" and not (isinstance(data.get("userId"), str) and data["userId"]):
            raise MalformedEnvelope('an on-behalf request needs a "userId" in its data')
        api = x.snapshot.apis.get(code)
        if api is None:
            raise UnknownCode(f"API code {code} is not registered on this bus")
        if not x.snapshot.granted(x.consumer, api):
            raise NotGranted(f"Access to API code {code} is not granted")
        if not api.active:
            raise CodeDisabled(f"API code {code} is disabled")
        if api.asynchronous:
            raise CodeDisabled(
                f"API code {code} is asynchronous; asynchronous delivery is not enabled on this bus"
            )
        x.api = api

    # 5 -------------------------------------------------------------------------------------
    async def limit(self, x: Exchange) -> None:
        assert x.consumer is not None and x.api is not None
        if self.system_rate and not await self.limiter.allow(
            f"s:{x.consumer.id}", self.system_rate
        ):
            raise RateLimited(
                f"rate limit of {self.system_rate:g} per second "
                f"for system {x.consumer.code} exceeded"
            )
        rate = self.api_rate if x.api.rate_limit is None else x.api.rate_limit
        if rate and not await self.limiter.allow(f"a:{x.api.id}", rate):
            raise RateLimited(
                f"rate limit of {rate:g} per second for API code {x.api.code} exceeded"
            )

    # 6, 7 ----------------------------------------------------------------------------------
    async def forward(self, x: Exchange) -> None:
        assert x.envelope is not None and x.api is not None
        api, data = x.api, x.envelope.data
        forwarded: dict[str, Any] = {"requestId": x.request_id, "apiCode": api.code}
        if x.kind == "nida":
            forwarded["userId"] = data["userId"]
        body = body_of(x.envelope)
        if body is not None:
            forwarded["esbBody"] = body
        request = self.signer.envelope(forwarded, api.format, root=REQUEST_ROOT)
        status, answer, content_type = await self.outbound.post(
            api.endpoint_url, request, CONTENT_TYPES[api.format], api.timeout, api.provider.code
        )
        who = api.provider.code
        try:
            envelope = parse_envelope(answer, content_type or None, limits=self.limits)
        except KiungoError as exc:
            if not 200 <= status < 300:
                raise ProviderBadAnswer(f"provider {who} answered HTTP {status}") from None
            raise ProviderBadAnswer(
                f"provider {who} answered with an invalid envelope: {exc.message}"
            ) from None
        try:
            envelope.verify_any(api.provider.keys_at(x.now))
        except InvalidSignature:
            raise ProviderBadSignature(
                f"provider {who} answer is not signed with its registered key"
            ) from None
        if not 200 <= status < 300:
            # e.g. a provider that refused the bus's own signature: not the consumer's fault.
            message = envelope.data.get("message")
            detail = f": {message}" if isinstance(message, str) else ""
            raise ProviderBadAnswer(f"provider {who} answered HTTP {status}{detail}")
        x.answer = envelope

    # 8 -------------------------------------------------------------------------------------
    def reply(self, x: Exchange) -> None:
        assert x.answer is not None
        answer = x.answer.data
        x.success = answer.get("success") in (True, "true")
        message = answer.get("message")
        data = response_data(
            x.success,
            body=body_of(x.answer),
            message=message if isinstance(message, str) else None,
            request_id=x.request_id,
        )
        x.response = self.signer.envelope(data, x.fmt)
        x.status = 200

    # 9 -------------------------------------------------------------------------------------
    async def record(self, x: Exchange) -> None:
        try:
            await self.exchange_log.append(
                ExchangeRecord(
                    request_id=x.request_id,
                    at=datetime.fromtimestamp(x.now, UTC),
                    kind=x.kind,
                    consumer_system=x.consumer.code if x.consumer else None,
                    provider_system=x.api.provider.code if x.api else None,
                    code=x.api.code if x.api else _code_of(x.envelope),
                    success=x.success,
                    http_status=x.status,
                    error_code=x.error.code if x.error else None,
                    latency_us=int((time.perf_counter() - x.started) * 1e6),
                    request_bytes=len(x.body),
                    response_bytes=len(x.response),
                    request_digest=hashlib.sha256(x.body).hexdigest(),
                    response_digest=hashlib.sha256(x.response).hexdigest(),
                )
            )
        except KiungoError as exc:
            # No answer leaves unlogged: the consumer learns the exchange did not complete.
            self.fail(x, exc)


def _code_of(envelope: Envelope | None) -> str | None:
    if envelope is None:
        return None
    code = envelope.data.get("apiCode")
    return code[:64] if isinstance(code, str) else None


def body_of(envelope: Envelope) -> Any:
    """The ``esbBody`` of an envelope as a value, to place in the next envelope.

    The parsed value is always re-serialized, never the markup as received: Java
    connectors verify XML as Jackson re-writes it, so only kiungo's canonical form
    verifies for every connector (an XML element becomes an object of its children).
    """
    return envelope.data.get("esbBody")
