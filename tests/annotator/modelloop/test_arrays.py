"""Rows to arrays for the self-supervised learner: photos keep their proportions (the centre
square, not a squashed frame), colour pools may be mirrored, digits not."""
import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from annotator.modelloop.arrays import centre_square, load_images
from annotator.modelloop.bridge import new_config, resolve_device
from annotator.models import Item


def _item(project, array, n):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    item = Item(project=project, content_hash=f"{n:064x}", width=array.shape[1], height=array.shape[0], pool_index=n)
    item.image.save(f"{n:064x}.png", ContentFile(buf.getvalue()), save=False)
    item.save()
    return item.image.name


def test_a_wide_photo_is_cropped_to_its_centre_not_squashed(project):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)
    wide[:, 40:] = (0, 0, 255)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    images = load_images([_item(project, wide, 1), _item(project, tall, 2)], 16, 3)
    assert images.shape == (2, 16, 16, 3)
    # only the green middle band is left, in both orientations (squashing would keep red and
    # blue thirds); the resampling filter blends a little of the neighbours into the edge pixels
    assert (images[..., 1] >= 200).all() and (images[..., [0, 2]] <= 30).all()
    assert (images[:, 1:-1, 1:-1] == (0, 255, 0)).all()


def test_centre_square():
    assert centre_square((60, 20)) == (20, 0, 40, 20)
    assert centre_square((20, 61)) == (0, 20, 20, 40)
    assert centre_square((32, 32)) == (0, 0, 32, 32)


def test_colour_pools_are_mirrored_in_pretraining_and_grayscale_pools_not():
    cpu = resolve_device("cpu")
    assert new_config(3, 32, 3, cpu).encoder.flip is True
    assert new_config(10, 28, 1, cpu).encoder.flip is False


def test_positions_of_ids_in_any_order():
    from annotator.modelloop.arrays import positions

    ids = np.array([40, 10, 30, 20])
    assert positions(ids, [10, 20, 40]).tolist() == [1, 3, 0]
    assert positions(ids, [20, 99, 30], missing=-1).tolist() == [3, -1, 2]
    assert positions(np.array([], np.int64), [5], missing=-1).tolist() == [-1]
    import pytest

    with pytest.raises(KeyError, match="99"):
        positions(ids, [99])
