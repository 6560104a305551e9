"""The errors a user can cause, each turned into one clear line (CLI) or a 4xx JSON answer (server)."""


class UserError(Exception):
    """Something the user can fix: commands print the message as one line and exit non-zero."""


class RequestError(UserError):
    """One request's own failure, answered for that request alone: `reason` is a short fixed label (for metrics and
    logs), `status` the HTTP status the server answers with."""

    def __init__(self, message: str, reason: str, status: int = 500) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status

    @classmethod
    def internal(cls) -> "RequestError":
        """What a request is answered when the server failed on it (the traceback goes to the log, not the client)."""
        return cls("the server failed on this request; it is logged, and other requests are not affected", "internal")


class BadInput(RequestError):
    """A request body or file that is not a usable image (a 4xx status, 400 unless said otherwise)."""

    def __init__(self, message: str, reason: str, status: int = 400) -> None:
        super().__init__(message, reason, status)
