"""The kiungo SDK for institutions: call APIs through the bus, and serve them.

Consumer side (:mod:`kiungo.sdk.client`)::

    from kiungo.sdk import Client
    with Client.from_credentials(creds) as bus:
        print(bus.request("NIDA-VERIFY", {"nin": "19900101-11111-00001-23"}).body)

Provider side (:mod:`kiungo.sdk.provider`): verify what the bus forwards and sign the answer.
Errors (:mod:`kiungo.sdk.errors`): one tree under :class:`BusError`.
"""

from kiungo.protocol import RawXML
from kiungo.sdk.client import Answer, AsyncClient, Client
from kiungo.sdk.errors import (
    ApiDisabled,
    BadBusAnswer,
    BadBusSignature,
    BusError,
    BusTimeout,
    InvalidRequest,
    NotGranted,
    ProviderError,
    ProviderRefused,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    TokenError,
    TransportError,
    Unauthorized,
    UnknownApi,
)
from kiungo.sdk.provider import ForwardedRequest, Provider, Refusal, provider_app

__all__ = [
    "Answer",
    "ApiDisabled",
    "AsyncClient",
    "BadBusAnswer",
    "BadBusSignature",
    "BusError",
    "BusTimeout",
    "Client",
    "ForwardedRequest",
    "InvalidRequest",
    "NotGranted",
    "Provider",
    "ProviderError",
    "ProviderRefused",
    "ProviderTimeout",
    "RateLimited",
    "RawXML",
    "Refusal",
    "RequestRefused",
    "TokenError",
    "TransportError",
    "Unauthorized",
    "UnknownApi",
    "provider_app",
]
