"""Domain errors shared by the apps' services.

Services raise these; the boundaries (views, API, facade, CLI) map them to a message or an
HTTP status in one place.
"""


class DomainError(Exception):
    code = "error"
    details: dict | None = None

    def __init__(
        self, message: str, *, code: str | None = None, details: dict | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if details is not None:
            self.details = details


class InvalidInput(DomainError, ValueError):
    code = "invalid"


class NotFound(DomainError, LookupError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError, PermissionError):
    """The caller is known but may not do this (a worker serving a pipeline it was not given)."""

    code = "forbidden"
