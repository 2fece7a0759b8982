"""The operator API (FastAPI, OpenAPI at /docs): the registry, operated over HTTP.

Deny by default: :class:`OperatorAuth` sits in front of the routes and refuses every
request without a valid operator session, except the login and the API description
(``/docs``, ``/openapi.json``), which hold no data. A route added later is therefore
closed until someone opens it on purpose. Roles are checked per route: a viewer reads, an
operator changes the registry, an admin also manages operator accounts.

Every change goes through :class:`kiungo.registry.service.RegistryService`, which writes
the audit event (actor, action, before, after) in the same transaction. Errors are one
JSON shape, ``{"error": code, "message": text}``, whatever raised them; an unexpected
failure is logged here and answered with a bare 500. Client secrets appear in exactly two
answers (system creation and secret reset), marked ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    model_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiungo.auth.operators import SESSION_TTL, NotAuthenticated, OperatorIdentity
from kiungo.errors import KiungoError
from kiungo.protocol import Format
from kiungo.registry.models import ApiMode, Category, GrantStatus, Role, Status

if TYPE_CHECKING:
    from kiungo.auth.operators import OperatorAccounts
    from kiungo.ledger.log import ExchangeLog
    from kiungo.registry.service import RegistryService

log = logging.getLogger("kiungo.api")

PREFIX = "/api/v1"
LOGIN_PATH = PREFIX + "/auth/login"
MAX_BODY = 64 * 1024  # registry objects are small; a public key in PEM is < 1 KiB
_IDENTITY = "kiungo.operator"
_TOKEN = "kiungo.operator_token"  # noqa: S105 (a scope key, not a secret)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Bus(Protocol):
    """What the operator API needs of the bus (``kiungo.app.Bus`` provides it)."""

    registry: RegistryService
    operators: OperatorAccounts
    exchange_log: ExchangeLog


# --- field types ---------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns: they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]
Code = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{1,63}$"),
    Field(description="2-64 letters, digits, '_', '.' or '-', starting with a letter or digit"),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=500)]
PublicKeyText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    Field(description="EC public key (secp256k1 or P-256): base64 DER SubjectPublicKeyInfo or PEM"),
]
Fingerprint = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key")]
PathCode = Annotated[str, Path(max_length=64)]
FilterCode = Annotated[str | None, Query(max_length=64)]


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REVOKE = "revoke"


# --- request bodies ------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Body):
    """A partial update: only the fields sent change; ``null`` only where it means
    something (listed in ``_nullable``)."""

    _nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null(self) -> Patch:
        for name in self.model_fields_set - self._nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, mode="json")


class LoginIn(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class OperatorIn(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=12, max_length=1024)]
    role: Role = Role.OPERATOR


class InstitutionIn(Body):
    code: Code
    name_en: Name
    name_sw: Name
    category: Category


class InstitutionPatch(Patch):
    name_en: Name | None = None
    name_sw: Name | None = None
    category: Category | None = None
    status: Status | None = None


class SystemIn(Body):
    code: Code
    institution: Code
    name: Name
    public_key: PublicKeyText | None = None
    callback_url: Url | None = None


class SystemPatch(Patch):
    _nullable = frozenset({"callback_url"})
    name: Name | None = None
    status: Status | None = None
    callback_url: Url | None = Field(None, description="null removes it")


class KeyIn(Body):
    public_key: PublicKeyText


class RotateIn(Body):
    public_key: PublicKeyText
    overlap_seconds: int = Field(
        86_400,
        ge=0,
        le=30 * 86_400,
        description="how long the system's other keys stay valid beside the new one",
    )


class ApiIn(Body):
    code: Code
    name: Name
    provider: Code
    endpoint_url: Url
    format: Format = Format.JSON
    mode: ApiMode = ApiMode.SYNC
    timeout_ms: int | None = Field(None, ge=50, le=300_000, description="null: bus default")
    rate_limit: float | None = Field(None, ge=0, description="requests/s; null: bus default")
    description: Description = ""


class ApiPatch(Patch):
    _nullable = frozenset({"rate_limit"})
    name: Name | None = None
    description: Description | None = None
    endpoint_url: Url | None = None
    format: Format | None = None
    mode: ApiMode | None = None
    timeout_ms: int | None = Field(None, ge=50, le=300_000)
    rate_limit: float | None = Field(None, ge=0, description="null: the bus default")
    status: Status | None = None


class GrantIn(Body):
    consumer: Code
    api: Code
    reason: Description = ""


class TopicIn(Body):
    code: Code
    name: Name
    publisher: Code
    format: Format = Format.JSON
    description: Description = ""


class TopicPatch(Patch):
    name: Name | None = None
    description: Description | None = None
    format: Format | None = None
    status: Status | None = None


class SubscriptionIn(Body):
    topic: Code
    subscriber: Code
    endpoint_url: Url | None = Field(None, description="null: the subscriber's callback URL")
    approved: bool = False


# --- answers -------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(examples=["client.not_found"])
    message: str


class LoginOut(BaseModel):
    token: str
    role: Role
    expires_in: int


class OperatorOut(BaseModel):
    username: str
    role: Role


class InstitutionOut(BaseModel):
    code: str
    name_en: str
    name_sw: str
    category: str
    status: str
    created_at: Timestamp
    updated_at: Timestamp


class KeyOut(BaseModel):
    fingerprint: str
    curve: str
    public_key: str
    valid_from: Timestamp
    valid_until: Timestamp | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def valid_now(self) -> bool:
        now = datetime.now(UTC)
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)


class SystemOut(BaseModel):
    code: str
    name: str
    institution: str | None
    status: str
    client_id: str
    secret_version: int
    callback_url: str | None
    created_at: Timestamp
    updated_at: Timestamp


class SystemDetail(SystemOut):
    keys: list[KeyOut]


class SystemCreated(SystemDetail):
    client_secret: str = Field(description="shown once; store it in the system's configuration")


class SecretOut(BaseModel):
    system: str
    client_id: str
    client_secret: str = Field(description="shown once; the previous secret and its tokens stop")


class ApiOut(BaseModel):
    code: str
    name: str
    description: str
    provider: str | None
    endpoint_url: str
    format: str
    mode: str
    timeout_ms: int
    rate_limit: float | None
    status: str
    created_at: Timestamp
    updated_at: Timestamp


class GrantOut(BaseModel):
    id: int
    consumer: str
    api: str
    status: GrantStatus
    reason: str
    requested_by: str
    requested_at: Timestamp
    decided_by: str | None
    decided_at: Timestamp | None


class TopicOut(BaseModel):
    code: str
    name: str
    description: str
    publisher: str | None
    format: str
    status: str
    created_at: Timestamp
    updated_at: Timestamp


class SubscriptionOut(BaseModel):
    id: int
    topic: str
    subscriber: str
    endpoint_url: str | None
    status: GrantStatus
    created_at: Timestamp
    updated_at: Timestamp


class AuditOut(BaseModel):
    id: int
    at: Timestamp
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ExchangeOut(BaseModel):
    request_id: str
    at: Timestamp
    kind: str
    consumer_system: str | None
    provider_system: str | None
    code: str | None
    success: bool
    http_status: int
    error_code: str | None
    latency_us: int
    request_bytes: int
    response_bytes: int


# --- errors and the ASGI guards (crash, authentication, body size) ----------------------------


def _error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    raw = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
            return ""
    return ""


class OperatorAuth:
    """Every path but the open ones needs ``Authorization: Bearer <operator token>``; the
    identity is left in the scope for the routes' role checks."""

    def __init__(
        self, app: ASGIApp, *, authenticate: Callable[[str], Awaitable[OperatorIdentity]],
        open_paths: frozenset[str],
    ) -> None:  # fmt: skip
        self.app = app
        self.authenticate = authenticate
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        try:
            identity = await self.authenticate(token)
        except NotAuthenticated as exc:
            await _send_json(
                send, exc.status, _error_body(exc.code, exc.message),
                ((b"www-authenticate", b"Bearer"),),
            )  # fmt: skip
            return
        scope[_IDENTITY] = identity
        scope[_TOKEN] = token
        await self.app(scope, receive, send)


class BodyLimit:
    """Registry objects are small: a body over ``limit`` bytes is refused with 413,
    by its Content-Length at once, or while it streams in."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body is larger than the limit of {self.limit} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _send_json(send, 413, _error_body("client.body_too_large", message))
                return
        size = 0

        async def limited() -> dict[str, Any]:
            nonlocal size
            received = await receive()
            size += len(received.get("body", b""))
            if size > self.limit:
                raise StarletteHTTPException(413, message)
            return received

        await self.app(scope, limited, send)


class CrashGuard:
    """The outermost catcher: an unexpected error is logged with its traceback and
    answered with a bare 500, never with the traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:  # too late to answer: the server logs it and drops the connection
                raise
            log.exception("operator API: %s %s failed", scope.get("method"), scope.get("path"))
            await _send_json(send, 500, _error_body("server.internal", "internal error"))


async def _kiungo_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KiungoError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(_error_body(exc.code, exc.message), exc.status, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 with where and what, never the offending value (it may be a password)."""
    assert isinstance(exc, RequestValidationError)
    details = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        what = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            where, what = "body", "body is not valid JSON"
        elif where == "body" and error.get("type") in _NOT_AN_OBJECT:
            what = "body must be a JSON object (Content-Type: application/json)"
        details.append({"field": where, "problem": what})
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in details) or "invalid request"
    return JSONResponse(
        _error_body("client.invalid_input", message, details=details), status_code=422
    )


_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}
_HTTP_CODES = {
    400: "client.bad_request",
    401: "client.not_authenticated",
    403: "client.forbidden",
    404: "client.not_found",
    405: "client.method_not_allowed",
    413: "client.body_too_large",
}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "client.bad_request")
    if exc.status_code >= 500:
        code = "server.internal"
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and message == "Not Found":
        message = "no such path in the operator API (see /docs)"
    return JSONResponse(
        _error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None)
    )


# --- roles -----------------------------------------------------------------------------------

_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="The operator session token from POST /api/v1/auth/login.",
)


def _role(*roles: Role) -> Callable[..., Awaitable[OperatorIdentity]]:
    async def check(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
    ) -> OperatorIdentity:
        identity = request.scope.get(_IDENTITY)
        if not isinstance(identity, OperatorIdentity):  # OperatorAuth sets it; never open
            raise NotAuthenticated("missing operator token")
        identity.require(*roles)
        return identity

    return check


Viewer = Annotated[OperatorIdentity, Depends(_role(Role.VIEWER, Role.OPERATOR, Role.ADMIN))]
Changer = Annotated[OperatorIdentity, Depends(_role(Role.OPERATOR, Role.ADMIN))]
Admin = Annotated[OperatorIdentity, Depends(_role(Role.ADMIN))]


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


# --- the application ---------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid operator token"},
    403: {"model": ErrorOut, "description": "the operator's role does not allow this"},
    404: {"model": ErrorOut, "description": "no such object"},
    409: {"model": ErrorOut, "description": "conflicts with the registry's state"},
    422: {"model": ErrorOut, "description": "invalid input"},
}

DESCRIPTION = """
Operate the kiungo registry: institutions, systems and their keys and secrets, APIs,
push topics, subscriptions, grants; read the audit trail and the recent exchanges.

Log in with `POST /api/v1/auth/login`, then send `Authorization: Bearer <token>` with every
request. Roles: **viewer** reads, **operator** changes the registry, **admin** also creates
operator accounts. Errors are `{"error": code, "message": text}`.
"""


def build_operator_api(bus: Bus) -> FastAPI:
    app = FastAPI(
        title="kiungo operator API",
        version="1",
        description=DESCRIPTION,
        redoc_url=None,
    )
    app.add_exception_handler(KiungoError, _kiungo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    open_paths = frozenset(
        p
        for p in (LOGIN_PATH, app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url)
        if p
    )
    # Added last is outermost: CrashGuard, OperatorAuth, BodyLimit, then the routes.
    app.add_middleware(BodyLimit, limit=MAX_BODY)  # type: ignore[arg-type]
    app.add_middleware(
        OperatorAuth,  # type: ignore[arg-type]
        authenticate=bus.operators.authenticate,
        open_paths=open_paths,
    )
    app.add_middleware(CrashGuard)  # type: ignore[arg-type]
    for router in (
        _auth_routes(bus),
        _institution_routes(bus),
        _system_routes(bus),
        _api_routes(bus),
        _grant_routes(bus),
        _topic_routes(bus),
        _log_routes(bus),
    ):
        app.include_router(router, prefix=PREFIX, responses=_ERRORS)
    return app


def _auth_routes(bus: Bus) -> APIRouter:
    r = APIRouter(tags=["operators"])

    @r.post("/auth/login", response_model=LoginOut)
    async def login(body: LoginIn, response: Response) -> LoginOut:
        """Exchange an operator's username and password for a session token."""
        token, identity = await bus.operators.login(body.username, body.password)
        _no_store(response)
        return LoginOut(
            token=token, role=identity.role, expires_in=int(SESSION_TTL.total_seconds())
        )

    @r.post("/auth/logout", status_code=204)
    async def logout(request: Request, _: Viewer) -> Response:
        """End this session: its token stops working."""
        await bus.operators.logout(request.scope[_TOKEN])
        return Response(status_code=204)

    @r.get("/auth/me", response_model=OperatorOut)
    async def me(who: Viewer) -> OperatorOut:
        """Who this token belongs to, and its role."""
        return OperatorOut(username=who.username, role=who.role)

    @r.post("/operators", response_model=OperatorOut, status_code=201)
    async def create_operator(body: OperatorIn, who: Admin) -> OperatorOut:
        """Create an operator account (admin only)."""
        await bus.operators.create(who.username, body.username, body.password, body.role)
        return OperatorOut(username=body.username, role=body.role)

    return r


def _institution_routes(bus: Bus) -> APIRouter:
    r = APIRouter(prefix="/institutions", tags=["institutions"])
    reg = bus.registry

    @r.get("", response_model=list[InstitutionOut])
    async def list_institutions(_: Viewer) -> list[dict[str, Any]]:
        return await reg.list_institutions()

    @r.get("/{code}", response_model=InstitutionOut)
    async def get_institution(code: PathCode, _: Viewer) -> dict[str, Any]:
        return await reg.get_institution(code)

    @r.post("", response_model=InstitutionOut, status_code=201)
    async def create_institution(body: InstitutionIn, who: Changer) -> dict[str, Any]:
        return await reg.create_institution(who.username, **body.model_dump(mode="json"))

    @r.patch("/{code}", response_model=InstitutionOut)
    async def update_institution(
        code: PathCode, body: InstitutionPatch, who: Changer
    ) -> dict[str, Any]:
        """Change names, category or status; ``status: disabled`` stops token issuance and
        requests for all the institution's systems."""
        return await reg.update_institution(who.username, code, **body.changes())

    return r


def _system_routes(bus: Bus) -> APIRouter:
    r = APIRouter(prefix="/systems", tags=["systems"])
    reg = bus.registry

    @r.get("", response_model=list[SystemOut])
    async def list_systems(_: Viewer, institution: FilterCode = None) -> list[dict[str, Any]]:
        return await reg.list_systems(institution)

    @r.get("/{code}", response_model=SystemDetail)
    async def get_system(code: PathCode, _: Viewer) -> dict[str, Any]:
        """A system with all its keys, past and present."""
        return await reg.get_system(code)

    @r.post("", response_model=SystemCreated, status_code=201)
    async def create_system(body: SystemIn, who: Changer, response: Response) -> dict[str, Any]:
        """Register a system. The answer holds its ``client_secret``: the only time it is
        shown (the bus keeps only a keyed hash)."""
        _, secret = await reg.create_system(who.username, **body.model_dump())
        _no_store(response)
        return await reg.get_system(body.code) | {"client_secret": secret}

    @r.patch("/{code}", response_model=SystemDetail)
    async def update_system(code: PathCode, body: SystemPatch, who: Changer) -> dict[str, Any]:
        await reg.update_system(who.username, code, **body.changes())
        return await reg.get_system(code)

    @r.post("/{code}/secret", response_model=SecretOut)
    async def reset_secret(code: PathCode, who: Changer, response: Response) -> dict[str, Any]:
        """A new client secret, shown once; the old secret and every token issued with it
        stop working at once."""
        secret = await reg.reset_secret(who.username, code)
        system = await reg.get_system(code)
        _no_store(response)
        return {"system": code, "client_id": system["client_id"], "client_secret": secret}

    @r.post("/{code}/keys", response_model=SystemDetail, status_code=201)
    async def add_key(code: PathCode, body: KeyIn, who: Changer) -> dict[str, Any]:
        """Add a public key; the system's other keys stay valid."""
        await reg.add_key(who.username, code, body.public_key)
        return await reg.get_system(code)

    @r.post("/{code}/keys/rotate", response_model=SystemDetail, status_code=201)
    async def rotate_key(code: PathCode, body: RotateIn, who: Changer) -> dict[str, Any]:
        """Add a key and retire the others after ``overlap_seconds``; both verify meanwhile."""
        overlap = timedelta(seconds=body.overlap_seconds)
        await reg.add_key(who.username, code, body.public_key, retire_others_after=overlap)
        return await reg.get_system(code)

    @r.delete("/{code}/keys/{fingerprint}", response_model=SystemDetail)
    async def revoke_key(code: PathCode, fingerprint: Fingerprint, who: Changer) -> dict[str, Any]:
        """Revoke a key now: signatures made with it are refused from this moment."""
        await reg.revoke_key(who.username, code, fingerprint)
        return await reg.get_system(code)

    return r


def _api_routes(bus: Bus) -> APIRouter:
    r = APIRouter(prefix="/apis", tags=["apis"])
    reg = bus.registry

    @r.get("", response_model=list[ApiOut])
    async def list_apis(_: Viewer) -> list[dict[str, Any]]:
        return await reg.list_apis()

    @r.get("/{code}", response_model=ApiOut)
    async def get_api(code: PathCode, _: Viewer) -> dict[str, Any]:
        return await reg.get_api(code)

    @r.post("", response_model=ApiOut, status_code=201)
    async def create_api(body: ApiIn, who: Changer) -> dict[str, Any]:
        """Publish a provider system's API. The endpoint must be allowed by the bus's
        provider allow-list (never loopback, link-local or the bus itself unless listed)."""
        await reg.create_api(who.username, **body.model_dump(mode="json"))
        return await reg.get_api(body.code)

    @r.patch("/{code}", response_model=ApiOut)
    async def update_api(code: PathCode, body: ApiPatch, who: Changer) -> dict[str, Any]:
        await reg.update_api(who.username, code, **body.changes())
        return await reg.get_api(code)

    return r


def _grant_routes(bus: Bus) -> APIRouter:
    r = APIRouter(prefix="/grants", tags=["grants"])
    reg = bus.registry

    @r.get("", response_model=list[GrantOut])
    async def list_grants(
        _: Viewer,
        status: GrantStatus | None = None,
        api: FilterCode = None,
        consumer: FilterCode = None,
    ) -> list[dict[str, Any]]:
        return await reg.list_grants(status=status, api=api, consumer=consumer)

    @r.get("/{grant_id}", response_model=GrantOut)
    async def get_grant(grant_id: int, _: Viewer) -> dict[str, Any]:
        return await reg.get_grant(grant_id)

    @r.post("", response_model=GrantOut, status_code=201)
    async def request_grant(body: GrantIn, who: Changer) -> dict[str, Any]:
        """Request a consumer system's access to an API (or request again after a
        rejection or revocation)."""
        grant = await reg.request_grant(who.username, **body.model_dump())
        return await reg.get_grant(grant["id"])

    @r.post("/{grant_id}/{decision}", response_model=GrantOut)
    async def decide_grant(grant_id: int, decision: Decision, who: Changer) -> dict[str, Any]:
        """approve or reject a requested grant; revoke one (the consumer's next call is
        refused)."""
        await reg.decide_grant(who.username, grant_id, decision.value)
        return await reg.get_grant(grant_id)

    return r


def _topic_routes(bus: Bus) -> APIRouter:
    r = APIRouter(tags=["push topics"])
    reg = bus.registry

    @r.get("/topics", response_model=list[TopicOut])
    async def list_topics(_: Viewer) -> list[dict[str, Any]]:
        return await reg.list_topics()

    @r.get("/topics/{code}", response_model=TopicOut)
    async def get_topic(code: PathCode, _: Viewer) -> dict[str, Any]:
        return await reg.get_topic(code)

    @r.post("/topics", response_model=TopicOut, status_code=201)
    async def create_topic(body: TopicIn, who: Changer) -> dict[str, Any]:
        await reg.create_topic(who.username, **body.model_dump(mode="json"))
        return await reg.get_topic(body.code)

    @r.patch("/topics/{code}", response_model=TopicOut)
    async def update_topic(code: PathCode, body: TopicPatch, who: Changer) -> dict[str, Any]:
        await reg.update_topic(who.username, code, **body.changes())
        return await reg.get_topic(code)

    @r.get("/subscriptions", response_model=list[SubscriptionOut])
    async def list_subscriptions(
        _: Viewer,
        topic: FilterCode = None,
        subscriber: FilterCode = None,
        status: GrantStatus | None = None,
    ) -> list[dict[str, Any]]:
        return await reg.list_subscriptions(topic=topic, subscriber=subscriber, status=status)

    @r.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
    async def get_subscription(subscription_id: int, _: Viewer) -> dict[str, Any]:
        return await reg.get_subscription(subscription_id)

    @r.post("/subscriptions", response_model=SubscriptionOut, status_code=201)
    async def create_subscription(body: SubscriptionIn, who: Changer) -> dict[str, Any]:
        """Subscribe a system to a topic: requested, or approved at once with
        ``approved: true``."""
        sub = await reg.subscribe(who.username, **body.model_dump())
        return await reg.get_subscription(sub["id"])

    @r.post("/subscriptions/{subscription_id}/{decision}", response_model=SubscriptionOut)
    async def decide_subscription(
        subscription_id: int, decision: Decision, who: Changer
    ) -> dict[str, Any]:
        await reg.decide_subscription(who.username, subscription_id, decision.value)
        return await reg.get_subscription(subscription_id)

    return r


def _log_routes(bus: Bus) -> APIRouter:
    r = APIRouter(tags=["audit and exchanges"])

    @r.get("/audit", response_model=list[AuditOut])
    async def audit(
        _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        """The newest audit events first: who changed what, when, before and after."""
        return await bus.registry.list_audit(limit)

    @r.get("/exchanges", response_model=list[ExchangeOut])
    async def exchanges(
        _: Viewer,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        system: FilterCode = None,
    ) -> list[dict[str, Any]]:
        """The newest exchanges first, optionally those of one system (as consumer or
        provider)."""
        return await bus.exchange_log.recent(limit, system)

    return r
