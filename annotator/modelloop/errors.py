"""Why a step of the model loop stops without writing its result."""


class Interrupted(Exception):
    """Stop now: shutting down, or the project's lease was lost."""


class LostLease(Exception):
    """Another trainer owns the project now: this trainer's result must not be written."""


class Superseded(Exception):
    """An owner reset the model (or paused training) while this result was computed: it
    belongs to a model that no longer counts and must not be written."""
