"""Domain errors shared by every app, and how each face answers them (docs/decisions/0016).

Each class carries its HTTP `status` and the registry error `code` its `/v2/` body names: this
is the one table. `/v2/` (RegistryView) and `/auth/token` render from it, and so are the admin
API and the dashboard to: none keeps its own mapping.
"""


class ApplicationError(Exception):
    """A request that cannot be done, with a message safe to show the user."""

    status = 403
    code = "DENIED"

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    @property
    def detail(self) -> dict | None:
        """What an error body adds beside the message (None: nothing)."""
        return self.extra or None

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the answer needs (a subclass may add some, e.g. Retry-After)."""
        return {}


class ValidationError(ApplicationError):
    status = 400
    code = "UNSUPPORTED"


class NotFound(ApplicationError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ApplicationError):
    status = 409
    code = "CONFLICT"


class QuotaExceeded(ApplicationError):
    status = 403
    code = "DENIED"  # design.md: quota exceeded is a DENIED that names the quota


class Suspended(ApplicationError):
    """The tenant (or account) is suspended: nothing may be done in it until it is reinstated."""

    status = 403
    code = "DENIED"


class PreconditionRequired(ApplicationError):
    """A change to a resource that people edit at once came without `If-Match` (RFC 6585)."""

    status = 428
    code = "PRECONDITION_REQUIRED"


class PreconditionFailed(ApplicationError):
    """`If-Match` names a version of the resource that is no longer current (RFC 9110 §13.1.1)."""

    status = 412
    code = "PRECONDITION_FAILED"


class Unprocessable(ApplicationError):
    """Well-formed, but contradicts what the server holds (e.g. an Idempotency-Key reused for another request)."""

    status = 422
    code = "UNPROCESSABLE"


class ServiceUnavailable(ApplicationError):
    """A service the request needs (Redis, storage) cannot be reached; the client may retry after `retry_after` seconds."""

    status = 503
    code = "UNAVAILABLE"
    retry_after = 5

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Gone(ApplicationError):
    """What the request names existed but has ended for good (an accepted, revoked or expired invitation)."""

    status = 410
    code = "GONE"
