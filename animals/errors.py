"""The errors a user can cause, each turned into one clear line (CLI) or a 4xx JSON answer (server)."""


class UserError(Exception):
    """Something the user can fix: commands print the message as one line and exit non-zero."""


class BadInput(UserError):
    """A request body or file that is not a usable image.

    `reason` is a short fixed label (for metrics and logs); `status` is the HTTP status the server answers with.
    """

    def __init__(self, message: str, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
