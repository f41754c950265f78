"""Why a step of the model loop stops without writing its result."""


class Interrupted(Exception):
    """Stop now: shutting down, or the project's lease was lost."""


class LostLease(Exception):
    """Another trainer owns the project now: this trainer's result must not be written."""


class Superseded(Exception):
    """An owner reset the model (or paused training) while this result was computed: it
    belongs to a model that no longer counts and must not be written."""


class StorageFull(Exception):
    """The disk filled up while a new model's files were written: none of them were kept."""

    def __init__(self, what="the new model's files"):
        super().__init__(
            f"The server's disk is full: {what} could not be saved, so the previous model stays in use. "
            "Free some space under DATA_DIR; training resumes by itself."
        )


# What members see of a failure: one line, never a traceback (tracebacks go to the log).
MAX_ERROR_CHARS = 1000


def one_line(error):
    """One line for a failure: an exception's type and message, or the last line of a
    traceback's text (rows written before tracebacks stopped being stored have them)."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}".strip()
    else:
        lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
        text = lines[-1] if lines else ""
        if text.startswith("Traceback"):
            text = ""
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
