"""Tiny learnable images and fast trainer settings for the model-loop tests."""
import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from annotator.labeling.answers import submit_annotation
from annotator.labeling.leasing import lease_next
from annotator.models import Item, ModelVersion

SHAPES = ["bar", "column", "square"]


def shape_image(kind, rng, size=16):
    """A noisy 16x16 grayscale picture of a horizontal bar, a vertical bar or a square."""
    a = rng.integers(0, 60, size=(size, size)).astype(np.uint8)
    p = int(rng.integers(3, size - 5))
    if kind == "bar":
        a[p:p + 3, 2:-2] = 255
    elif kind == "column":
        a[2:-2, p:p + 3] = 255
    else:
        a[p:p + 5, p - 1:p + 4] = 255
    return a


def png(array):
    buf = io.BytesIO()
    Image.fromarray(array, "L").save(buf, format="PNG")
    return buf.getvalue()


def add_shape_items(project, n, seed=0, start=None):
    """n items cycling through the shapes; returns (items, true class names)."""
    rng = np.random.default_rng(seed)
    start = Item.objects.filter(project=project).count() if start is None else start
    items, truth = [], []
    for i in range(start, start + n):
        kind = SHAPES[i % len(SHAPES)]
        item = Item(project=project, content_hash=f"{seed:08x}{i:056x}", width=16, height=16, pool_index=i,
                    priority=float(rng.random()), original_name=f"{kind}-{i}.png")
        item.image.save(f"{seed:08x}{i:056x}.png", ContentFile(png(shape_image(kind, rng))), save=False)
        item.save()
        items.append(item)
        truth.append(kind)
    return items, truth


def fast_trainer_settings(settings, **extra):
    settings.TRAINER_PRETRAIN_BUDGET_S = 1.5
    settings.TRAINER_FAST_MIN_INTERVAL_S = 0.0
    settings.TRAINER_SLOW_EVERY = 0
    settings.TRAINER_SLOW_BUDGET_S = 2.0
    settings.TRAINER_SLOW_IDLE_S = 0.0
    settings.TRAINER_LEASE_SECONDS = 30
    settings.TRAINER_POLL_SECONDS = 0.05
    for key, value in extra.items():
        setattr(settings, key, value)


def label_served(project, user, n, prefix="k"):
    for i in range(n):
        lease = lease_next(project, user)
        submit_annotation(project, user, item_id=lease.item_id, label=project.truth[lease.item_id],
                                   idempotency_key=f"{prefix}{i}")


def fast_versions(project):
    return ModelVersion.objects.filter(project=project, kind="fast", status="ok")
