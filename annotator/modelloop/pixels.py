"""The self-supervised pool's pixels on disk: each image decoded once, read back in batches.

A project without a pretrained backbone trains its encoder on its own images. They are
decoded (EXIF, centre square, resized to the pool's side, then to the encoder's input size,
as `arrays.load_images` and `mlcore.data.to_tensor` do) into a `mlcore.store.PixelStore` per
project and (side, channels, input size), in threads, a chunk at a time, under this
machine's CACHE_DIR (else ARTIFACTS_ROOT); images are read through the item storage. So a restart
decodes nothing and an import only its new images, and the trainer never needs the pool's
pixels in memory: the learner reads batches through a `mlcore.pixelpool.PixelPool`, or, for
a pool below `TRAINER_POOL_MEMORY_MB`, takes them all into one tensor (faster steps).
"""
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from annotator.modelloop.arrays import load_images, positions
from annotator.modelloop.shared import cache_path

log = logging.getLogger(__name__)

CHUNK = 512  # images decoded per thread task (and committed to the store together)


def store_folder(project, side, channels, size):
    return cache_path(f"projects/{project.pk}/pixels/s{side}-c{channels}-i{size}")


def pixel_pool(project, item_ids, paths, side, channels, size):
    """The pool's pixels (a PixelPool in `item_ids` order), decoding only what the store
    lacks. Unreadable files are stored black (logged by load_images), as before."""
    from mlcore.data import to_tensor
    from mlcore.pixelpool import PixelPool
    from mlcore.store import PixelStore

    store = PixelStore.open(store_folder(project, side, channels, size), dim=channels * size * size,
                            side=side, channels=channels, input_size=size)
    missing = store.missing(item_ids)
    if len(missing):
        rows = positions(item_ids, missing)
        chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]

        def decode(chunk):
            images = load_images([paths[r] for r in chunk], side, channels)  # (n, side, side[, 3])
            return to_tensor(images, size, "cpu").reshape(len(chunk), -1).numpy()  # (n, C*size*size)

        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for chunk, pixels in zip(chunks, pool.map(decode, chunks), strict=True):
                store.add(item_ids[chunk], pixels)
        log.info("Project %s: %s images decoded into the pixel store (%s already there)",
                 project.pk, len(missing), len(item_ids) - len(missing))
    return PixelPool.of(store, item_ids, channels, size), int(len(missing))


def for_learner(pool):
    """What the learner takes: the pool in one tensor when it is small enough to hold
    (`TRAINER_POOL_MEMORY_MB`), else the PixelPool itself (batches read from disk)."""
    n, c, s, _ = pool.shape
    if n * c * s * s <= settings.TRAINER_POOL_MEMORY_MB * 2**20:
        return pool.tensor()
    return pool
