"""Domain errors shared by every app; the registry maps them to OCI error codes."""


class ApplicationError(Exception):
    """A request that cannot be done, with a message safe to show the user."""

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotFound(ApplicationError):
    pass


class Conflict(ApplicationError):
    pass


class QuotaExceeded(ApplicationError):
    pass


class ValidationError(ApplicationError):
    pass
