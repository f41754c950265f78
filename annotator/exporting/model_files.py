"""The model and embeddings formats: the newest checkpoint of the current model (with its
pretrained backbone's weights inside, so that it loads anywhere), and an .npz of the pool
embeddings saved beside it. Only files inside ARTIFACTS_ROOT are read: this machine's, or with
a bucket (STORAGE_BACKEND=s3) the copies the trainer published there (modelloop.shared), so
the web machine that runs the export needs no disk of the trainer's."""
import logging
import zipfile
from pathlib import PurePosixPath

import numpy as np
from django.utils import timezone

from annotator.exporting import zipstream
from annotator.exporting.registry import MODEL, Body, ExportFormat, NoModel, register
from annotator.modelloop import backbone, shared
from annotator.modelloop.predictions import POOL_INDEX_FILE
from annotator.models import Item, ModelVersion

log = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings.npy"  # written by the trainer next to learner.pt


def latest_checkpoint_version(project):
    """The newest checkpoint of the current model (a reset makes older ones history)."""
    return (
        ModelVersion.objects.filter(project=project, status=ModelVersion.Status.OK,
                                    generation=project.model_generation)
        .exclude(checkpoint="")
        .order_by("-number", "-created_at", "-id")
        .first()
    )


def _checkpoint(project):
    version = latest_checkpoint_version(project)
    if version is None:
        raise NoModel(
            "No trained model yet: the model loop writes one after pretraining. "
            "Start a trainer (`manage.py serve` runs one) and try again later."
        )
    path = shared.file(version.checkpoint)
    if path is None:
        log.warning("Model version %s of project %s: checkpoint %r is missing or outside ARTIFACTS_ROOT.",
                    version.pk, project.pk, version.checkpoint)
        raise NoModel(
            f"No trained model yet: the files of model version {version.number} are missing on the server. "
            "Wait for the next training run, or ask an administrator."
        )
    return version, path


def _file_chunks(path, progress, total):
    done = 0
    with path.open("rb") as source:
        while piece := source.read(zipstream.CHUNK_BYTES):
            done += len(piece)
            progress(done, total)
            yield piece


def _model(project, options, progress):
    """The checkpoint (mlcore: config, weights, class names), self-contained: a project on a
    pretrained backbone gets the backbone's weights inside (`backbone.export_file`)."""
    version, path = _checkpoint(project)
    try:
        path = backbone.export_file(project, version, path)
    except ValueError as exc:
        raise NoModel(str(exc)) from None
    size = path.stat().st_size
    return Body(_file_chunks(path, progress, size), size, version=version.number)


def _embeddings(project, options, progress):
    """`embeddings` (N, D), `pool_index` (N,) and `item_id` (N,; -1 for an item deleted since)."""
    version, _checkpoint_path = _checkpoint(project)
    folder = PurePosixPath(version.checkpoint).parent
    embeddings_path = shared.file(str(folder / EMBEDDINGS_FILE))
    pool_index_path = shared.file(str(folder / POOL_INDEX_FILE))
    if embeddings_path is None or pool_index_path is None:
        raise NoModel(
            f"No trained model yet with embeddings: model version {version.number} has none on the server. "
            "Wait for the next training run, or ask an administrator."
        )
    embeddings = np.load(embeddings_path, mmap_mode="r")  # (N, D)
    pool_index = np.load(pool_index_path)  # (N,)
    if embeddings.ndim != 2 or len(pool_index) != len(embeddings):
        raise NoModel(
            f"The embeddings of model version {version.number} do not match its pool index; "
            "wait for the next training run."
        )
    ids = dict(Item.objects.filter(project=project).values_list("pool_index", "id"))
    item_id = np.array([ids.get(int(p), -1) for p in pool_index], dtype=np.int64)  # (N,)
    arrays = {"embeddings": embeddings, "pool_index": np.asarray(pool_index, dtype=np.int64), "item_id": item_id}
    total = sum(a.nbytes for a in arrays.values())
    return Body(_npz_chunks(arrays, progress, total), total, version=version.number)


def _npz_chunks(arrays, progress, total):
    """np.savez's layout (a zip of .npy files), written row block by row block."""
    sink = zipstream.Sink()
    when = timezone.localtime().timetuple()[:6]
    done = 0
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": array.shape}
            row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64)))
            step = max(1, zipstream.CHUNK_BYTES // row_bytes)
            with zf.open(zipstream.zip_info(f"{name}.npy", when), "w", force_zip64=True) as entry:
                np.lib.format.write_array_header_1_0(entry, header)
                for start in range(0, len(array), step):
                    block = np.ascontiguousarray(array[start:start + step])
                    entry.write(block.tobytes())
                    done += block.nbytes
                    progress(done, total)
                    yield from sink.drain()
    yield from sink.drain()


register(ExportFormat(
    name="model", title="Model checkpoint", note=".pt, once the model has trained",
    filename="{slug}-model-v{version}.pt", content_type="application/octet-stream", kind=MODEL, unit="B",
    produce=_model,
))
register(ExportFormat(
    name="embeddings", title="Embeddings", note=".npz, once the model has trained",
    filename="{slug}-embeddings-v{version}.npz", content_type="application/octet-stream", kind=MODEL, unit="B",
    produce=_embeddings,
))
