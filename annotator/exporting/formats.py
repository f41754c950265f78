"""The one entry point of every export (the page, the API and `manage.py export`): `build()`
checks the options, looks the format up in the registry and returns the export ready to stream."""
from collections.abc import Iterator
from dataclasses import dataclass

from annotator.exporting import splits
from annotator.exporting.registry import NO_SPLIT, REGISTRY, REQUIRED_SPLIT, ExportError, Options, lookup

DEFAULT_MIN_CONFIDENCE = 0.9


@dataclass
class Export:
    """A ready export: `chunks` yields its bytes; `total` and `unit` size a progress bar
    (rows or bytes)."""

    filename: str
    content_type: str
    chunks: Iterator[bytes]
    total: int
    unit: str


def parse_min_confidence(value):
    if value is None or value == "":
        return DEFAULT_MIN_CONFIDENCE
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:  # also refuses nan
        raise ExportError(f"min_confidence must be a number from 0 to 1 (for example 0.9), not {value!r}.")
    return number


def parse_flag(value, name):
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ExportError(f"{name} must be 1 or 0 (true or false), not {value!r}.")


def _split_option(export_format, split, seed):
    fractions = splits.parse_split(split)
    seed = splits.parse_seed(seed)
    if fractions is not None and export_format.splits == NO_SPLIT:
        takes = [f.name for f in REGISTRY.values() if f.splits != NO_SPLIT]
        raise ExportError(f"split applies to the {', '.join(takes)} formats, not {export_format.name}.")
    if fractions is None and export_format.splits == REQUIRED_SPLIT:
        fractions = export_format.default_split
    return fractions, seed


def build(project, fmt, *, with_predictions=False, min_confidence=DEFAULT_MIN_CONFIDENCE, split=None, seed=None,
          progress=None):
    """The export of `project` in format `fmt`, checked and ready to stream. Raises
    ExportError (400) for bad options and NoModel (404) when there is no model to export.
    `progress(done, total)` is called as rows (or bytes) go out."""
    export_format = lookup(fmt)
    refusal = export_format.refusal(project)
    if refusal:
        raise ExportError(refusal)
    fractions, seed = _split_option(export_format, split, seed)
    options = Options(with_predictions=bool(with_predictions), min_confidence=parse_min_confidence(min_confidence),
                      split=fractions, seed=seed)
    body = export_format.produce(project, options, progress or (lambda done, total: None))
    return Export(
        filename=export_format.filename.format(slug=project.slug, version=body.version),
        content_type=export_format.content_type,
        chunks=body.chunks,
        total=body.total,
        unit=export_format.unit,
    )
