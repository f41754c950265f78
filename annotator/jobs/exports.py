"""Export jobs: the export written to a file in storage by the worker, then downloaded as
often as needed (`.../jobs/<id>/download/`), instead of streamed while a request waits. The
options are the download's (annotator.exporting.formats), checked before the job is queued."""
from django.core.files.storage import default_storage

from annotator.exporting import formats
from annotator.exporting.registry import lookup
from annotator.jobs import files, service
from annotator.jobs.registry import JobKind, register

KIND = "export"


def start_export(project, *, user, fmt, predictions=None, min_confidence=None):
    """Checks the options (ExportError, 400, says what to change) and queues the export."""
    params = {
        "format": lookup(fmt).name,
        "predictions": formats.parse_flag(predictions, "predictions"),
        "min_confidence": formats.parse_min_confidence(min_confidence),
    }
    return service.start(KIND, project=project, user=user, params=params)


def _run(job, progress):
    params = job.params
    unit = {}

    def report(done, total):
        progress(done / total if total else 0.0, f"{done} of {total} {unit.get('name', '')}".rstrip())

    export = formats.build(job.project, params["format"], with_predictions=params["predictions"],
                           min_confidence=params["min_confidence"], progress=report)
    unit["name"] = "bytes" if export.unit == "B" else f"{export.unit}s"
    name = files.save_output(job, export.filename, export.chunks)
    return {"file": name, "filename": export.filename, "content_type": export.content_type,
            "size": default_storage.size(name)}


register(JobKind(name=KIND, title="Export", run=_run))
