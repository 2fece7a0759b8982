"""The public surface of kiungo.sdk: exactly the names in ``__all__``, nothing by accident."""

from __future__ import annotations

import inspect

import kiungo.sdk
from kiungo.sdk import BusError, RequestRefused

EXPECTED = [
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


def test_all_is_the_documented_surface() -> None:
    """``__all__`` lists exactly the documented public names, sorted and without repeats."""
    assert kiungo.sdk.__all__ == EXPECTED


def test_every_public_attribute_is_exported() -> None:
    """Every public attribute of the package (submodules aside) is in ``__all__``, and every
    name in ``__all__`` exists."""
    public = {
        name
        for name, value in vars(kiungo.sdk).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(kiungo.sdk.__all__)


def test_consumer_exceptions_share_one_base() -> None:
    """Every exception class the consumer side exports derives from BusError, so one
    ``except BusError`` catches whatever an exchange raises."""
    exceptions = [
        value
        for name in kiungo.sdk.__all__
        if isinstance(value := getattr(kiungo.sdk, name), type)
        and issubclass(value, BaseException)
        and name != "Refusal"  # the provider side's signal to answer success:false
    ]
    assert len(exceptions) == 16
    assert all(issubclass(cls, BusError) for cls in exceptions)


def test_refusals_by_status_are_request_refused() -> None:
    """The classes for each kind of refusal are catchable as RequestRefused."""
    names = [
        "ApiDisabled", "InvalidRequest", "NotGranted", "ProviderError", "ProviderRefused",
        "ProviderTimeout", "RateLimited", "Unauthorized", "UnknownApi",
    ]  # fmt: skip
    assert all(issubclass(getattr(kiungo.sdk, name), RequestRefused) for name in names)
