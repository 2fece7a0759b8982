"""The operator API (FastAPI, OpenAPI at /docs): the registry, operated over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from kiungo.app import Bus


def build_operator_api(bus: Bus) -> FastAPI:
    return FastAPI(title="kiungo operator API", version="1")
