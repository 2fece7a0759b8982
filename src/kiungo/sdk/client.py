"""The consumer side: call an API through the bus, get back only what the bus signed.

::

    with Client.from_credentials(creds) as bus:
        answer = bus.request("NIDA-VERIFY", {"nin": "19900101-11111-00001-23"})
        print(answer.body)

    async with AsyncClient.from_credentials(creds) as bus:
        answer = await bus.request("RITA-BIRTH-CERT", {"entryNo": "B-2024-000117"}, format="xml")

The exchange (token, sign, send, verify) is written once, in :class:`Flow`, as generators
that yield ``httpx.Request`` objects and receive ``httpx.Response`` objects; the sync and
async clients only drive them, as httpx drives its ``Auth`` flows.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx

from kiungo.errors import KiungoError
from kiungo.protocol import (
    CONTENT_TYPES,
    REQUEST_ROOT,
    RESPONSE_ROOT,
    Format,
    InvalidSignature,
    Limits,
    PrivateKey,
    PublicKey,
    build_envelope,
    load_private_key,
    load_public_key,
    parse_envelope,
)
from kiungo.sdk.errors import (
    BadBusAnswer,
    BadBusSignature,
    BusTimeout,
    TokenError,
    TransportError,
    refusal,
    refusal_code,
)

T = TypeVar("T")
FlowOf = Generator[httpx.Request, httpx.Response, T]

REFRESH_MARGIN = 60.0  # seconds before expiry a cached token is replaced
DEFAULT_EXPIRES_IN = 3600.0  # when the token endpoint does not say (as the connectors assume)
DEFAULT_TIMEOUT = 30.0

_CREDENTIAL_KEYS = (
    "clientId",
    "clientSecret",
    "clientPrivateKey",
    "esbPublicKey",
    "esbTokenUrl",
    "esbEngineUrl",
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer, verified with the bus public key.

    ``body`` is the provider's ``esbBody`` (parsed JSON; for XML, text or an object of
    child elements, all values as text), ``request_id`` the id the bus gave the exchange,
    ``data`` the whole signed ``data`` object.
    """

    success: bool
    body: Any
    message: str | None
    request_id: str | None
    data: Mapping[str, Any]


class Flow:
    """Token cache, signing and verification for one system, with no I/O of its own.

    Each public method is a generator: it yields the HTTP requests to send, receives their
    responses, and returns the result (or raises a :class:`BusError`).
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        private_key: PrivateKey | str | bytes,
        bus_public_key: PublicKey | str | bytes,
        token_url: str,
        engine_url: str,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required")
        self.client_id = client_id
        self._secret = client_secret
        self._key = (
            private_key if isinstance(private_key, PrivateKey) else load_private_key(private_key)
        )
        self.bus_key = (
            bus_public_key
            if isinstance(bus_public_key, PublicKey)
            else load_public_key(bus_public_key)
        )
        self.token_url = str(httpx.URL(token_url))
        self.engine_url = str(httpx.URL(engine_url)).rstrip("/")
        self.limits = limits or Limits()
        self.clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self.token_fetches = 0

    # --- token ----------------------------------------------------------------------------

    def needs_token(self) -> bool:
        return self._token is None or self.clock() >= self._refresh_at

    def fetch_token(self) -> FlowOf[str]:
        """Ask the token endpoint for a fresh token and cache it."""
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode("ascii")
        request = httpx.Request(
            "POST",
            self.token_url,
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            data={
                "client_id": self.client_id,
                "client_secret": self._secret,
                "grant_type": "client_credentials",
            },
        )
        self.token_fetches += 1
        started = self.clock()
        response = yield request
        token, expires_in = _read_token(response)
        self._token = token
        self._refresh_at = started + expires_in - min(REFRESH_MARGIN, expires_in / 2)
        return token

    # --- exchanges ------------------------------------------------------------------------

    def request(self, api_code: str, body: Any, fmt: Format | str = Format.JSON) -> FlowOf[Answer]:
        """A synchronous request by API code (``/request``)."""
        data = {"apiCode": _code(api_code), "esbBody": body}
        return self.exchange("request", data, fmt)

    def nida_request(
        self, api_code: str, user_id: str, body: Any, fmt: Format | str = Format.JSON
    ) -> FlowOf[Answer]:
        """A request on behalf of a person (``/nida-request``)."""
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("an on-behalf request needs a user_id (the person's NIN)")
        data = {"apiCode": _code(api_code), "userId": user_id, "esbBody": {"Payload": body}}
        return self.exchange("nida-request", data, fmt)

    def exchange(self, path: str, data: Mapping[str, Any], fmt: Format | str) -> FlowOf[Answer]:
        """Sign ``data`` now (a body that cannot be encoded fails here), send it later."""
        fmt = Format(fmt.lower())
        envelope = build_envelope(data, self._key, fmt, root=REQUEST_ROOT)
        return self._send(f"{self.engine_url}/{path}", envelope, fmt)

    def _send(self, url: str, envelope: bytes, fmt: Format) -> FlowOf[Answer]:
        token = self._token if not self.needs_token() else None
        if token is None:
            token = yield from self.fetch_token()
        response = yield self._engine_request(url, envelope, fmt, token)
        answer = self._open(response)
        if (
            response.status_code == 401
            and not _succeeded(answer)
            and _error_code(response, answer) == "client.invalid_token"
        ):
            # The token stopped working (expired early, revoked, bus restarted): the bus
            # refuses a token before anything else, so sending the same envelope is safe.
            if self._token == token:
                self._token = None
            token = yield from self.fetch_token()
            response = yield self._engine_request(url, envelope, fmt, token)
            answer = self._open(response)
        return _result(answer, response.status_code, _error_code(response, answer))

    def _engine_request(self, url: str, envelope: bytes, fmt: Format, token: str) -> httpx.Request:
        return httpx.Request(
            "POST",
            url,
            content=envelope,
            headers={"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPES[fmt]},
        )

    def _open(self, response: httpx.Response) -> Mapping[str, Any]:
        """The verified ``data`` of the bus's answer; raises unless the bus signed it."""
        status = response.status_code
        try:
            envelope = parse_envelope(
                response.content, response.headers.get("content-type"), limits=self.limits
            )
        except KiungoError as exc:
            raise BadBusAnswer(
                f"the bus answered HTTP {status} without a valid envelope: {exc.message}",
                status=status,
            ) from None
        try:
            envelope.verify(self.bus_key)
        except InvalidSignature:
            raise BadBusSignature(
                f"the bus's answer (HTTP {status}) does not verify with the bus public key "
                f"{self.bus_key.fingerprint}",
                status=status,
            ) from None
        if envelope.format is Format.XML and envelope.root != RESPONSE_ROOT:
            raise BadBusAnswer(
                f"the bus answered <{envelope.root}>, not <{RESPONSE_ROOT}>", status=status
            )
        return envelope.data


def _code(api_code: str) -> str:
    if not isinstance(api_code, str) or not api_code:
        raise ValueError("api_code must be a non-empty string")
    return api_code


def _succeeded(data: Mapping[str, Any]) -> bool:
    success = data.get("success")
    return success is True or success == "true"  # XML carries "true" as text


def _message(data: Mapping[str, Any], status: int) -> str:
    message = data.get("message")
    if isinstance(message, str) and message:
        return message
    return f"the bus refused the request (HTTP {status})"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _error_code(response: httpx.Response, data: Mapping[str, Any]) -> str | None:
    """The bus's error code: its X-Kiungo-Error header (kiungo buses), else read off the
    signed status and message (other GovESB buses)."""
    if _succeeded(data) or response.status_code == 200:
        return None
    return response.headers.get("x-kiungo-error") or refusal_code(
        response.status_code, _message(data, response.status_code)
    )


def _result(data: Mapping[str, Any], status: int, code: str | None = None) -> Answer:
    request_id = _text(data.get("requestId"))
    if not _succeeded(data):
        raise refusal(_message(data, status), status=status, request_id=request_id, code=code)
    return Answer(
        success=True,
        body=data.get("esbBody"),
        message=_text(data.get("message")),
        request_id=request_id,
        data=data,
    )


def _read_token(response: httpx.Response) -> tuple[str, float]:
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    if status != 200:
        error, description = _text(payload.get("error")), _text(payload.get("error_description"))
        detail = f": {error}" if error else ""
        if description:
            detail += f" ({description})"
        raise TokenError(
            f"the token endpoint refused the client (HTTP {status}){detail}",
            error=error,
            description=description,
            status=status,
        )
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError(
            "the token endpoint answered without an access_token",
            error=None,
            description=None,
            status=status,
        )
    expires_in = payload.get("expires_in")
    try:
        seconds = float(expires_in) if expires_in is not None else DEFAULT_EXPIRES_IN
    except (TypeError, ValueError):
        seconds = DEFAULT_EXPIRES_IN
    if not seconds > 0:
        seconds = DEFAULT_EXPIRES_IN
    return token, seconds


def _transport_error(request: httpx.Request, exc: httpx.TransportError) -> TransportError:
    where = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}{request.url.path}"
    if isinstance(exc, httpx.TimeoutException):
        return BusTimeout(f"no answer from {where} within the timeout")
    return TransportError(f"cannot reach {where}: {str(exc) or type(exc).__name__}")


# --- the two drivers -----------------------------------------------------------------------


def _credential_options(creds: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from one system object of a credentials.json."""
    missing = [k for k in _CREDENTIAL_KEYS if not creds.get(k)]
    if missing:
        raise ValueError(f"credentials lack {', '.join(missing)}")
    options = {
        "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"],
        "private_key": creds["clientPrivateKey"],
        "bus_public_key": creds["esbPublicKey"],
        "token_url": creds["esbTokenUrl"],
        "engine_url": creds["esbEngineUrl"],
    }
    if creds.get("nidaUserId"):  # the JavaScript connector's option of the same meaning
        options["user_id"] = creds["nidaUserId"]
    return options


class _ClientBase:
    """What the sync and async clients share: the flow, the options, the credentials."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        private_key: PrivateKey | str | bytes,
        bus_public_key: PublicKey | str | bytes,
        token_url: str,
        engine_url: str,
        *,
        user_id: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: Any = None,
        verify: ssl.SSLContext | bool = True,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flow = Flow(
            client_id=client_id,
            client_secret=client_secret,
            private_key=private_key,
            bus_public_key=bus_public_key,
            token_url=token_url,
            engine_url=engine_url,
            limits=limits,
            clock=clock,
        )
        self.user_id = user_id
        self._open_http(timeout=timeout, transport=transport, verify=verify)

    def _open_http(self, **options: Any) -> None:
        raise NotImplementedError

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any], **options: Any) -> Self:
        """A client from one system object of a credentials.json (``clientId``,
        ``clientSecret``, ``clientPrivateKey``, ``esbPublicKey``, ``esbTokenUrl``,
        ``esbEngineUrl``; other keys are ignored)."""
        return cls(**_credential_options(credentials), **options)

    @property
    def client_id(self) -> str:
        return self._flow.client_id

    @property
    def token_fetches(self) -> int:
        """How many times this client has asked the token endpoint for a token."""
        return self._flow.token_fetches

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.client_id} {self._flow.engine_url}>"


class Client(_ClientBase):
    """A GovESB consumer for synchronous code (threads may share one client).

    ``private_key`` is the system's key (``PrivateKey``, base64 PKCS#8 DER or PEM);
    ``bus_public_key`` the bus's (base64 DER or PEM): every answer must verify with it.
    ``user_id`` is the default person for :meth:`nida_request`. ``timeout`` (seconds),
    ``transport`` and ``verify`` are passed to httpx (``verify``: an ``ssl.SSLContext``
    holding the bus's CA, or ``False``). ``limits`` bound what is accepted from the bus.
    ``clock`` (monotonic seconds) decides when the cached token is renewed.
    """

    def _open_http(self, **options: Any) -> None:
        self._token_lock = threading.Lock()
        self._http = httpx.Client(**options)

    def request(self, api_code: str, body: Any, *, format: Format | str = "json") -> Answer:
        """Call ``api_code`` with ``body`` (JSON value; for XML a mapping of elements or text)."""
        return self._drive(self._flow.request(api_code, body, format))

    def nida_request(
        self,
        api_code: str,
        user_id: str | None = None,
        body: Any = None,
        *,
        format: Format | str = "json",
    ) -> Answer:
        """Call ``api_code`` on behalf of the person ``user_id`` (default: the client's)."""
        flow = self._flow.nida_request(api_code, user_id or self.user_id or "", body, format)
        return self._drive(flow)

    def _drive(self, flow: FlowOf[T]) -> T:
        if self._flow.needs_token():
            with self._token_lock:  # one token fetch, however many threads need it
                if self._flow.needs_token():
                    self._run(self._flow.fetch_token())
        return self._run(flow)

    def _run(self, flow: FlowOf[T]) -> T:
        try:
            request = next(flow)
            while True:
                try:
                    response = self._http.send(request)
                except httpx.TransportError as exc:
                    raise _transport_error(request, exc) from exc
                try:
                    request = flow.send(response)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_ClientBase):
    """A GovESB consumer for asyncio code; the same options as :class:`Client`."""

    def _open_http(self, **options: Any) -> None:
        self._token_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(**options)

    async def request(self, api_code: str, body: Any, *, format: Format | str = "json") -> Answer:
        """Call ``api_code`` with ``body`` (JSON value; for XML a mapping of elements or text)."""
        return await self._drive(self._flow.request(api_code, body, format))

    async def nida_request(
        self,
        api_code: str,
        user_id: str | None = None,
        body: Any = None,
        *,
        format: Format | str = "json",
    ) -> Answer:
        """Call ``api_code`` on behalf of the person ``user_id`` (default: the client's)."""
        flow = self._flow.nida_request(api_code, user_id or self.user_id or "", body, format)
        return await self._drive(flow)

    async def _drive(self, flow: FlowOf[T]) -> T:
        if self._flow.needs_token():
            async with self._token_lock:  # one token fetch, however many tasks need it
                if self._flow.needs_token():
                    await self._run(self._flow.fetch_token())
        return await self._run(flow)

    async def _run(self, flow: FlowOf[T]) -> T:
        try:
            request = next(flow)
            while True:
                try:
                    response = await self._http.send(request)
                except httpx.TransportError as exc:
                    raise _transport_error(request, exc) from exc
                try:
                    request = flow.send(response)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
