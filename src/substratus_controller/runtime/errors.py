"""The API server's error answers as exceptions: one class per HTTP status family (client-go's apierrors).

`error_for(code, status)` maps an answer onto the tree; `code` 0 means no answer at all (`Unavailable`: the
connection failed or timed out). `WatchIdle` is a watch stream that went silent for longer than its idle
timeout (a frozen connection).
"""

from __future__ import annotations

from substratus_controller.jsontypes import JSON


class ApiError(Exception):
    """An error answer from the API server (or no answer: `code` 0). `status` is the API Status, if any."""

    code: int = 0

    def __init__(
        self, message: str, *, code: int | None = None, status: JSON | None = None, method: str = "", path: str = ""
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.status = status or {}
        self.method = method
        self.path = path

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadRequest(ApiError):
    code = 400


class Unauthorized(ApiError):
    code = 401


class Forbidden(ApiError):
    code = 403


class NotFound(ApiError):
    code = 404


class Conflict(ApiError):
    """409: a resourceVersion/uid precondition failed, or the object already exists (`AlreadyExists`)."""

    code = 409


class AlreadyExists(Conflict):
    pass


class Gone(ApiError):
    """410: the requested resourceVersion is too old (compacted). Relist."""

    code = 410


class Invalid(ApiError):
    """422: the object failed validation; `causes` lists the offending fields."""

    code = 422

    @property
    def causes(self) -> list[JSON]:
        return list(self.status.get("details", {}).get("causes", []))


class ServerError(ApiError):
    """5xx, 429, or no usable answer: retry with backoff."""

    code = 500


class TooManyRequests(ServerError):
    code = 429


class Unavailable(ServerError):
    """The server could not be reached or did not answer in time."""

    code = 0


class WatchIdle(Unavailable):
    """A watch stream delivered nothing for longer than its idle timeout (a frozen connection)."""


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_for(code: int, status: JSON, *, method: str = "", path: str = "") -> ApiError:
    """The exception for an HTTP error code and its API Status body."""
    cls = _BY_CODE.get(code, ServerError if code >= 500 else ApiError)
    if cls is Conflict and status.get("reason") == "AlreadyExists":
        cls = AlreadyExists
    message = str(status.get("message") or f"HTTP {code}")
    return cls(message, code=code, status=status, method=method, path=path)
