"""Errors of an exchange. Each becomes a signed failure envelope with its HTTP status.

ClientError
 ├── InvalidToken (auth.tokens)   401 no, bad, expired or revoked token
 ├── UnknownCode                  404 no such API or push code
 ├── CodeDisabled                 403 the API or topic is disabled
 ├── NotGranted                   403 the consumer holds no approved grant
 ├── WrongSystem                  403 the system is disabled
 └── RateLimited                  429 a per-system or per-API limit
ServerError
 ├── ProviderUnavailable          502 provider refused, reset or not allowed
 ├── ProviderTimeout              504 no answer within the API's timeout
 ├── ProviderBadSignature         502 the answer is not signed by the provider
 └── ProviderBadAnswer            502 the answer is not a valid envelope
"""

from __future__ import annotations

from kiungo.errors import ClientError, ServerError


class UnknownCode(ClientError):
    code = "client.unknown_code"
    status = 404


class CodeDisabled(ClientError):
    code = "client.code_disabled"
    status = 403


class NotGranted(ClientError):
    code = "client.not_granted"
    status = 403


class RateLimited(ClientError):
    code = "client.rate_limited"
    status = 429


class NotFoundPath(ClientError):
    code = "client.no_such_endpoint"
    status = 404


class MethodNotAllowed(ClientError):
    code = "client.method_not_allowed"
    status = 405


class ProviderUnavailable(ServerError):
    code = "server.provider_unavailable"
    status = 502


class ProviderTimeout(ServerError):
    code = "server.provider_timeout"
    status = 504


class ProviderBadSignature(ServerError):
    code = "server.provider_bad_signature"
    status = 502


class ProviderBadAnswer(ServerError):
    code = "server.provider_bad_answer"
    status = 502
