"""What the consumer SDK raises. Catch broad or narrow::

    BusError                    anything the SDK raises about an exchange
     ├── TransportError         the bus could not be reached (connect, reset, TLS...)
     │    └── BusTimeout        no answer within the client's timeout
     ├── TokenError             the token endpoint refused (carries the OAuth2 ``error``)
     ├── BadBusAnswer           the answer is not a signed envelope: nothing is returned
     │    └── BadBusSignature   an envelope, but not signed with the bus public key
     └── RequestRefused         the bus answered a verified ``success: false``
          ├── ProviderRefused   HTTP 200: the provider itself answered no (its message)
          ├── Unauthorized      401: the token or the request signature was refused
          ├── NotGranted        403: no approved grant for this API code
          ├── ApiDisabled       403: the API code is disabled (or asynchronous)
          ├── UnknownApi        404: no such API code on this bus
          ├── InvalidRequest    413, 422: the envelope was refused (too large, malformed)
          ├── RateLimited       429: a per-system or per-API limit
          └── ProviderError     502, 504: the provider is down, too slow, or answered badly
               └── ProviderTimeout  504

A :class:`RequestRefused` carries the bus's ``message`` (signed, so it is the bus's own
word), the ``request_id`` the bus gave the exchange (quote it to the bus operator), the
HTTP ``status`` and, where the status and message tell it, the bus's stable error
``code`` (``client.not_granted``, ``server.provider_timeout``...).

Errors in the client's own configuration (an unreadable private key, an unknown format)
are raised when the client is built or called, as ``ValueError`` or
:class:`kiungo.protocol.InvalidKey`; they are not ``BusError``.
"""

from __future__ import annotations


class BusError(Exception):
    """Base of everything the SDK raises about an exchange with the bus."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransportError(BusError):
    """The bus could not be reached, or the connection failed before an answer came."""


class BusTimeout(TransportError):
    """No answer within the client's timeout (the bus may still have done the work)."""


class TokenError(BusError):
    """The token endpoint refused the client's credentials or answered something unusable.

    ``error`` is the OAuth2 error code (RFC 6749 §5.2, e.g. ``invalid_client``) when the
    endpoint gave one, ``description`` its ``error_description``, ``status`` the HTTP status.
    """

    def __init__(
        self, message: str, *, error: str | None, description: str | None, status: int
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description
        self.status = status


class BadBusAnswer(BusError):
    """The bus's answer is not a signed GovESB envelope; its content is not returned."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class BadBusSignature(BadBusAnswer):
    """The answer does not verify with the bus public key the client was given."""


class RequestRefused(BusError):
    """The bus answered ``success: false`` in an envelope it signed."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.code = code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status}, "
            f"request_id={self.request_id!r}, code={self.code!r})"
        )


class ProviderRefused(RequestRefused):
    """The provider answered ``success: false`` (e.g. no such record): its message."""


class Unauthorized(RequestRefused):
    """The bus refused the access token or the request's signature (401)."""


class NotGranted(RequestRefused):
    """The calling system holds no approved grant for this API code (403)."""


class ApiDisabled(RequestRefused):
    """The API code exists but is disabled, or cannot be called synchronously (403)."""


class UnknownApi(RequestRefused):
    """No API code of that name is registered on the bus (404)."""


class InvalidRequest(RequestRefused):
    """The bus refused the envelope itself: too large (413) or malformed (422)."""


class RateLimited(RequestRefused):
    """A rate limit of the calling system or of the API was exceeded (429)."""


class ProviderError(RequestRefused):
    """The provider was unreachable or answered badly (502), or too slowly (504)."""


class ProviderTimeout(ProviderError):
    """The provider did not answer within the API's timeout (504)."""


# The bus's failure envelope carries its message, not its error code: the code is read
# back from the HTTP status and, where one status covers several codes, the message.
_CLASSES: dict[str, type[RequestRefused]] = {
    "client.invalid_token": Unauthorized,
    "client.invalid_signature": Unauthorized,
    "client.not_granted": NotGranted,
    "client.code_disabled": ApiDisabled,
    "client.unknown_code": UnknownApi,
    "client.envelope_too_large": InvalidRequest,
    "client.malformed_envelope": InvalidRequest,
    "client.rate_limited": RateLimited,
    "server.provider_unavailable": ProviderError,
    "server.provider_bad_signature": ProviderError,
    "server.provider_bad_answer": ProviderError,
    "server.provider_timeout": ProviderTimeout,
}
_BY_STATUS = {
    413: "client.envelope_too_large",
    422: "client.malformed_envelope",
    429: "client.rate_limited",
    504: "server.provider_timeout",
    500: "server.internal",
}


def refusal_code(status: int, message: str) -> str | None:
    """The bus's error code for a refusal, when the status and message tell it.

    ``None`` for a provider's own refusal (HTTP 200) and for statuses the bus does not use.
    """
    text = message.lower()
    if status == 200:
        return None
    if status == 401:
        if "token" in text or "is disabled" in text:
            return "client.invalid_token"
        return "client.invalid_signature"
    if status == 403:
        return "client.not_granted" if "not granted" in text else "client.code_disabled"
    if status == 404:
        return "client.unknown_code" if "not registered" in text else "client.no_such_endpoint"
    if status == 502:
        if "not signed" in text:
            return "server.provider_bad_signature"
        if "unavailable" in text:
            return "server.provider_unavailable"
        return "server.provider_bad_answer"
    return _BY_STATUS.get(status)


def refusal(
    message: str, *, status: int, request_id: str | None, code: str | None = None
) -> RequestRefused:
    """The most precise :class:`RequestRefused` for a verified ``success: false``."""
    code = code or refusal_code(status, message)
    if status == 200:
        cls: type[RequestRefused] = ProviderRefused
    else:
        cls = _CLASSES.get(code or "", RequestRefused)
    return cls(message, status=status, request_id=request_id, code=code)
