"""Stock timm and open_clip state dicts uploaded as the starting checkpoint, and zero-shot
guesses from the class names with a CLIP-layout model (a tiny open_clip config, randomly
initialised, saved in open_clip's own layout): guesses before the first label that are the
text prototypes' (checked against a naive open_clip reference), refreshed when a class is
renamed, and faded out as labels arrive."""
import io

import numpy as np
import open_clip
import pytest
import torch
from django.core.files.base import ContentFile

from annotator.modelloop import predictions
from annotator.modelloop.trainer import Trainer
from annotator.models import Item, QueueEntry
from annotator.projects.changes import create_project
from annotator.projects.classes import set_classes
from annotator.projects.members import add_member
from tests.annotator.modelloop.test_backbone import COLOURS, add_photos, label, versions
from tests.annotator.modelloop.trainer_helpers import fast_trainer_settings
from tests.tiny_encoders import (
    TINY_CLIP,
    TINY_CLIP_ARCH,
    TINY_TIMM,
    register_tiny_clip,
    register_tiny_timm,
    tiny_clip_state_dict,
    tiny_timm_state_dict,
)


def upload(api, user, project, data, name):
    return api(user).post(f"/api/projects/{project.pk}/model/checkpoint/",
                          {"checkpoint": ContentFile(data, name=name)}, format="multipart")


def saved(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


@pytest.fixture
def colours(alice, bob, settings, weights_dir):
    fast_trainer_settings(settings, EMBED_WORKERS=0, EMBED_BATCH_SIZE=16, ZERO_SHOT_FADE_LABELS=1)
    project = create_project(alice, name="Colours", classes=list(COLOURS), audit_fraction=0.0,
                             encoder="self-supervised")
    add_member(project, "bob", "annotator")
    project.truth = add_photos(project, 24)
    return project


@pytest.fixture
def clip(monkeypatch, tmp_path):
    """The tiny CLIP registered, and its randomly initialised weights (logit scale 50)."""
    register_tiny_clip(monkeypatch, tmp_path)
    sd = tiny_clip_state_dict(seed=3)
    with torch.no_grad():
        sd["logit_scale"].fill_(np.log(50.0))
    return sd


def naive_guesses(sd, items, class_names):
    """Straight from open_clip: prompt-ensembled text prototypes, each image embedded as the
    backbone sees it -> argmax of the cosine similarity, per item."""
    from mlcore.imaging import load_image
    from mlcore.zeroshot import TEMPLATES

    ref = open_clip.create_model(TINY_CLIP_ARCH, pretrained=None)
    ref.load_state_dict(sd)
    ref.eval()
    tok = open_clip.get_tokenizer(TINY_CLIP_ARCH)
    with torch.no_grad():
        protos = []
        for name in class_names:
            e = ref.encode_text(tok([t.format(name) for t in TEMPLATES]))
            m = (e / e.norm(dim=-1, keepdim=True)).mean(0)
            protos.append(m / m.norm())
        protos = torch.stack(protos)
        mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
        x = torch.stack([load_image(item.image.path, 32, mean, std) for item in items])
        img = ref.encode_image(x)
        cos = (img / img.norm(dim=-1, keepdim=True)) @ protos.T
    return [class_names[j] for j in cos.argmax(1).tolist()]


def test_a_stock_timm_state_dict_is_recognised_on_upload(colours, alice, api, monkeypatch):
    register_tiny_timm(monkeypatch)
    sd = tiny_timm_state_dict()
    r = upload(api, alice, colours, saved(sd), "test_vit.pth")
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["architecture"], body["matched"], body["total"]) == (TINY_TIMM, len(sd), len(sd)) == (
        TINY_TIMM, 80, 80)
    # the hub's own format, model.safetensors, is taken as it is
    from safetensors.torch import save

    r = upload(api, alice, colours, save(sd), "model.safetensors")
    assert r.status_code == 200 and r.json()["architecture"] == TINY_TIMM, r.content


def test_a_stock_open_clip_state_dict_is_recognised_on_upload(colours, alice, bob, charlie, api, clip):
    assert upload(api, charlie, colours, saved(clip), "clip.bin").status_code == 404  # an outsider
    assert upload(api, bob, colours, saved(clip), "clip.bin").status_code == 403  # not the owner
    broken = {k: v for k, v in clip.items() if k != "ln_final.weight"}
    r = upload(api, alice, colours, saved(broken), "clip.bin")
    assert r.status_code == 400 and "ln_final.weight" in r.json()["detail"], r.content
    r = upload(api, alice, colours, saved(clip), "clip.bin")
    assert r.status_code == 200, r.content
    assert (r.json()["architecture"], r.json()["matched"], r.json()["total"]) == (TINY_CLIP, len(clip), len(clip))


def test_zero_shot_guesses_before_the_first_label_then_faded_out(colours, alice, bob, api, clip):
    assert upload(api, alice, colours, saved(clip), "clip.bin").status_code == 200
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()  # embeds the pool with the uploaded CLIP
    pretrain = versions(colours, kind="pretrain").get()
    assert (pretrain.metrics["encoder"], pretrain.metrics["embedded"]) == (TINY_CLIP, 24)
    trainer.run_once()  # the first fast path: no label yet
    first = versions(colours, kind="fast").get()
    assert first.labels_used == 0
    assert (first.metrics["zero_shot"], first.metrics["served_by"], first.metrics["zero_shot_weights"]) == (
        True, "zero-shot", [1.0, 1.0, 1.0])
    items = list(Item.objects.filter(project=colours).order_by("pool_index"))
    preds = predictions.current(colours)
    assert preds.version == first
    guessed = [preds.suggestion(item)["label"] for item in items]
    assert guessed == naive_guesses(clip, items, list(COLOURS))
    assert first.metrics["predicted_counts"] == [guessed.count(c) for c in COLOURS]
    assert QueueEntry.objects.filter(project=colours, version=first).exists()

    # a renamed class: the prototypes follow its new name
    red = colours.classes.get(name="red")
    set_classes(colours, [{"id": c.pk, "name": "crimson" if c.pk == red.pk else c.name}
                          for c in colours.ordered_classes()])
    trainer.run_once()
    renamed = versions(colours, kind="fast").last()
    assert renamed.classes == ["crimson", "green", "blue"] and renamed.metrics["served_by"] == "zero-shot"
    preds = predictions.current(colours)
    now = naive_guesses(clip, items, ["crimson", "green", "blue"])
    assert now != ["crimson" if g == "red" else g for g in guessed]  # new text, new guesses (not just relabeled)
    assert [preds.suggestion(item)["label"] for item in items] == now

    # labels arrive: with ZERO_SHOT_FADE_LABELS = 1, a label of every class ends zero-shot
    colours.truth = {pk: "crimson" if c == "red" else c for pk, c in colours.truth.items()}
    label(colours, bob, 1, "a")
    trainer.run_once()
    partly = versions(colours, kind="fast").last()
    assert partly.labels_used == 1 and partly.metrics["zero_shot"] is True
    assert sorted(partly.metrics["zero_shot_weights"]) == [0.0, 1.0, 1.0]
    assert partly.metrics["served_by"] == TINY_CLIP
    for n in range(30):
        if len({colours.truth[i.pk] for i in Item.objects.filter(project=colours, done=True)}) == 3:
            break
        label(colours, bob, 1, f"b{n}")
    trainer.run_once()
    latest = versions(colours, kind="fast").last()
    assert latest.metrics["zero_shot"] is False and latest.metrics["zero_shot_weights"] == [0.0, 0.0, 0.0]
    assert latest.metrics["served_by"] == TINY_CLIP
    trainer.release()
