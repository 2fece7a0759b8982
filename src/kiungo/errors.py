"""The one error base of kiungo.

Every package defines its errors under :class:`KiungoError`. Each class has a stable
``code`` whose prefix says whose fault it is (``client.`` the peer's, ``server.`` ours)
and the HTTP ``status`` the engine answers with. The ``message`` is safe to show to the
peer: it never carries a secret or a stack trace.

    KiungoError
     ├── ClientError      the peer sent something wrong (4xx)
     └── ServerError      kiungo or a system behind it failed (5xx)
"""

from __future__ import annotations

from typing import ClassVar


class KiungoError(Exception):
    code: ClassVar[str] = "server.internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ClientError(KiungoError):
    code = "client.bad_request"
    status = 400


class ServerError(KiungoError):
    code = "server.internal"
    status = 500
