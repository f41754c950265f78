"""A model version as the trainer writes it (probabilities, pool index, and optionally the
neighbour files), for the bulk-labeling tests."""
from pathlib import Path

import numpy as np
from django.conf import settings

from annotator.modelloop import neighbours, predictions
from annotator.models import ModelVersion, TrainerState


def publish(project, probs, pool_index, *, near=None, sims=None, number=1):
    folder = f"test/{project.pk}/v{number}"
    path = Path(settings.ARTIFACTS_ROOT) / folder
    path.mkdir(parents=True)
    np.save(path / predictions.PROBS_FILE, np.asarray(probs, dtype=np.float32))
    np.save(path / predictions.POOL_INDEX_FILE, np.asarray(pool_index, dtype=np.int64))
    if near is not None:
        np.save(path / neighbours.NEIGHBOURS_FILE, np.asarray(near, dtype=np.int32))
        np.save(path / neighbours.NEIGHBOUR_SIMS_FILE, np.asarray(sims, dtype=np.float16))
    version = ModelVersion.objects.create(
        project=project, number=number, kind="fast", pool_size=len(pool_index), classes=project.class_names(),
        artifact_dir=folder,
    )
    TrainerState.objects.update_or_create(project=project, defaults={"current_version": version})
    predictions._cache.clear()  # ids and folder names repeat between tests
    neighbours._cache.clear()
    return version
