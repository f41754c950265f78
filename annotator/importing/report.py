"""What an import did, file by file: imported, duplicate or rejected (with the reason), and
the totals shown on the page, in the API and by the import command."""
from dataclasses import dataclass, field

IMPORTED, DUPLICATE, REJECTED = "imported", "duplicate", "rejected"


STATUSES = (IMPORTED, DUPLICATE, REJECTED)


READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file: `reason` is a sentence for duplicates and rejections;
    `item_id` is the new item (imported) or the existing one (duplicate)."""

    name: str
    status: str
    reason: str = ""
    item_id: int | None = None

    def as_dict(self):
        return {"name": self.name, "status": self.status, "reason": self.reason, "item": self.item_id}


@dataclass
class ImportReport:
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def counts(self):
        """{"imported": n, "duplicate": n, "rejected": n}"""
        counts = dict.fromkeys(STATUSES, 0)
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return counts

    @property
    def imported(self):
        return self.counts[IMPORTED]

    @property
    def duplicates(self):
        return self.counts[DUPLICATE]

    @property
    def rejected(self):
        return self.counts[REJECTED]

    def with_status(self, status):
        return [outcome for outcome in self.outcomes if outcome.status == status]

    def as_dict(self):
        counts = self.counts
        return {
            "imported": counts[IMPORTED],
            "duplicates": counts[DUPLICATE],
            "rejected": counts[REJECTED],
            "files": [outcome.as_dict() for outcome in self.outcomes],
        }

    def summary(self):
        """One sentence, e.g. "Imported 3 images; 1 duplicate skipped; 2 files rejected." """
        counts = self.counts
        parts = [f"Imported {_plural(counts[IMPORTED], 'image')}"]
        if counts[DUPLICATE]:
            parts.append(f"{_plural(counts[DUPLICATE], 'duplicate')} skipped")
        if counts[REJECTED]:
            parts.append(f"{_plural(counts[REJECTED], 'file')} rejected")
        return "; ".join(parts) + "."


def _plural(n, noun):
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def megabytes(n):
    return f"{n / (1024 * 1024):,.1f} MB"


class Rejected(Exception):
    """A file (or archive) refused, with a sentence saying why and what to do."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
