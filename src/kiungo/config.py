"""All settings of kiungo: one typed object, read once from the environment (``KIUNGO_*``),
an optional ``.env`` file, and defaults; checked at startup and passed down from ``app.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KIUNGO_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("var")
    # Empty: SQLite in the data directory (the embedded default).
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    # Public base URL of this bus as institutions reach it (token and engine URLs).
    public_url: str = ""
    redis_url: str = ""

    token_ttl_seconds: int = Field(3600, ge=60, le=86400)
    # Token and client-secret keys. Empty: created once in the data directory; every
    # process of one bus must share them (same data directory or set here).
    token_secret: str = ""
    secret_pepper: str = ""

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_depth: int = Field(64, ge=4)
    max_keys: int = Field(20_000, ge=16)
    # Requests per second allowed by default; 0 turns a limit off.
    system_rate_limit: float = Field(500.0, ge=0)
    api_rate_limit: float = Field(1000.0, ge=0)
    default_timeout_ms: int = Field(10_000, ge=50, le=300_000)
    # The client that carries the hop to providers: kiungo's own pool, or aiohttp.
    outbound_client: Literal["pool", "aiohttp"] = "pool"

    # Hosts, host:port, CIDR networks (optionally :port or :lo-hi) a provider endpoint may
    # point at. Loopback, link-local and the bus's own address are refused unless an entry
    # names them explicitly.
    provider_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Safety net beside change notifications: the registry snapshot is reloaded this often.
    registry_reload_seconds: float = Field(5.0, gt=0)
    log_batch_max: int = Field(256, ge=1)

    @field_validator("provider_allowlist", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kiungo.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def token_url(self) -> str:
        return self.effective_public_url + "/gw/govesb-uaa/oauth/token"

    @property
    def engine_url(self) -> str:
        return self.effective_public_url + "/engine/esb"
