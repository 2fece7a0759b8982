"""Errors of the registry: what an operator or institution admin did that cannot be done."""

from __future__ import annotations

from kiungo.errors import ClientError


class NotFound(ClientError):
    code = "client.not_found"
    status = 404


class Conflict(ClientError):
    code = "client.conflict"
    status = 409


class InvalidInput(ClientError):
    code = "client.invalid_input"
    status = 422


class EndpointNotAllowed(InvalidInput):
    code = "client.endpoint_not_allowed"
    status = 422
