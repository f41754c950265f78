"""Split exports: imagefolder with split=train,val,test fractions (seeded, stratified per
class) and the yolo-classify layout; the split option's refusals; the multi-label refusal."""
import io
import json
import zipfile
from collections import Counter

import numpy as np
import pytest

from annotator.exporting import formats, splits
from annotator.exporting.registry import REGISTRY, ExportError
from annotator.models import Annotation, LabelClass


def _label(items, user, names):
    for item, name in zip(items, names):
        Annotation.objects.create(item=item, annotator=user, label=LabelClass.objects.get(project=item.project, name=name),
                                  idempotency_key=f"split-{item.pk}")
        item.label_count = 1
        item.save(update_fields=["label_count"])


@pytest.fixture
def dataset(project, make_items, alice):
    """10 zero, 10 one, 10 two and 5 of a fourth class, "five"."""
    LabelClass.objects.create(project=project, name="five", order=3)
    names = ["zero"] * 10 + ["one"] * 10 + ["two"] * 10 + ["five"] * 5
    items = make_items(len(names))
    _label(items, alice, names)
    return dict(zip((item.pk for item in items), names))


def _export(project, fmt, **options):
    return b"".join(formats.build(project, fmt, **options).chunks)


def _unzip(data, root):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        archive.extractall(root)
    return root


def _layout(data):
    """{split: {class folder: [item id, ...]}} from the zip's image entries."""
    found = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3:
                split, folder, file_name = parts
                found.setdefault(split, {}).setdefault(folder, []).append(int(file_name.split(".")[0]))
    return found


def test_split_counts_match_a_naive_largest_remainder():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(0, 60))
        raw = rng.random(int(rng.integers(2, 4)))
        fractions = tuple(raw / raw.sum())
        counts = splits.split_counts(n, fractions)
        assert sum(counts) == n
        # Naive: hand out the n items one by one to the split furthest below its share.
        naive = [int(n * f) for f in fractions]
        while sum(naive) < n:
            gaps = [n * f - c for f, c in zip(fractions, naive)]
            naive[int(np.argmax(gaps))] += 1
        assert counts == naive
    assert splits.split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert splits.split_counts(5, (0.8, 0.1, 0.1)) == [4, 1, 0]


def test_the_split_is_stratified_seeded_and_deterministic(project, dataset):
    data = _export(project, "imagefolder", split="0.8,0.1,0.1", seed="7")
    layout = _layout(data)
    counts = {split: {folder: len(ids) for folder, ids in by_class.items()} for split, by_class in layout.items()}
    assert counts == {
        "train": {"zero": 8, "one": 8, "two": 8, "five": 4},
        "val": {"zero": 1, "one": 1, "two": 1, "five": 1},
        "test": {"zero": 1, "one": 1, "two": 1},
    }
    # Every labeled item once, in its own class's folder.
    placed = {item: folder for by_class in layout.values() for folder, ids in by_class.items() for item in ids}
    assert placed == dataset
    assert _layout(_export(project, "imagefolder", split="0.8,0.1,0.1", seed="7")) == layout
    other = _layout(_export(project, "imagefolder", split="0.8,0.1,0.1", seed="8"))
    assert other != layout
    assert {s: {f: len(i) for f, i in c.items()} for s, c in other.items()} == counts
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        summary = json.loads(archive.read("export.json"))
        names = set(archive.namelist())
    assert summary["split"]["seed"] == 7
    assert summary["split"]["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert summary["split"]["counts"]["five"] == {"train": 4, "val": 1, "test": 0}
    assert {"train/metadata.csv", "val/metadata.csv", "test/metadata.csv"} <= names
    assert "metadata.csv" not in names


@pytest.mark.slow
def test_each_split_loads_in_torchvision_and_hugging_face(project, dataset, tmp_path):
    datasets = pytest.importorskip("datasets")
    from torchvision.datasets import ImageFolder

    root = _unzip(_export(project, "imagefolder", split="0.8,0.1,0.1"), tmp_path / "zip")
    sizes = {}
    for split in ("train", "val", "test"):
        loaded = ImageFolder(root / split)
        sizes[split] = Counter(loaded.classes[target] for _path, target in loaded.samples)
    assert sizes["train"] == {"zero": 8, "one": 8, "two": 8, "five": 4}
    assert sizes["val"] == {"zero": 1, "one": 1, "two": 1, "five": 1}
    assert sizes["test"] == {"zero": 1, "one": 1, "two": 1}
    hf = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=str(tmp_path / "hf"))
    assert set(hf) == {"train", "validation", "test"}
    assert Counter(hf["train"]["label"]) == sizes["train"]
    assert Counter(hf["validation"]["label"]) == sizes["val"]
    assert Counter(hf["test"]["label"]) == sizes["test"]


def test_two_fractions_make_train_and_val(project, dataset):
    layout = _layout(_export(project, "imagefolder", split="0.5, 0.5"))
    assert set(layout) == {"train", "val"}
    assert {f: len(i) for f, i in layout["val"].items()} == {"zero": 5, "one": 5, "two": 5, "five": 2}


def test_the_yolo_classify_layout_matches_ultralytics_documented_structure(project, dataset):
    """docs.ultralytics.com/datasets/classify: root/train/<class>/<image>, root/val/<class>/...,
    an optional root/test/; one folder per class, uniquely named JPEG/PNG images."""
    data = _export(project, "yolo-classify")  # default split 0.8,0.2
    layout = _layout(data)
    assert set(layout) == {"train", "val"}
    assert set(layout["train"]) == set(layout["val"]) == {"zero", "one", "two", "five"}
    assert {f: len(i) for f, i in layout["val"].items()} == {"zero": 2, "one": 2, "two": 2, "five": 1}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
    images = [n for n in names if n.count("/") == 2]
    assert len(images) == len(set(n.rsplit("/", 1)[1] for n in images)) == len(dataset)
    assert all(n.endswith((".png", ".jpg", ".jpeg")) for n in images)
    assert sorted(n for n in names if n.count("/") < 2) == ["export.json"]  # no metadata.csv
    with_test = _layout(_export(project, "yolo-classify", split="0.8,0.1,0.1"))
    assert set(with_test) == {"train", "val", "test"}


@pytest.mark.parametrize(
    "fmt, split, seed, words",
    [
        ("imagefolder", "0.8,0.1", "", "must add up to 1, not 0.9"),
        ("imagefolder", "0.5,0.3,0.1,0.1", "", "2 or 3 fractions"),
        ("imagefolder", "1", "", "2 or 3 fractions"),
        ("imagefolder", "1.2,-0.2", "", "from 0 to 1"),
        ("imagefolder", "a,b", "", "numbers separated by commas"),
        ("imagefolder", "nan,0.5", "", "from 0 to 1"),
        ("imagefolder", "0.8,0.2", "x", "seed must be a whole number"),
        ("imagefolder", "0.8,0.2", "-1", "seed must be a whole number"),
        ("csv", "0.8,0.2", "", "split applies to the imagefolder, yolo-classify formats, not csv"),
        ("yolo-classify", "1,0", "", "needs a validation split"),
    ],
)
def test_it_refuses_bad_splits(client, project, alice, fmt, split, seed, words):
    client.force_login(alice)
    r = client.get(f"/api/projects/{project.pk}/export/", {"format": fmt, "split": split, "seed": seed})
    assert r.status_code == 400
    assert words in r.json()["detail"]
    r = client.get(f"/projects/{project.pk}/export/", {"format": fmt, "split": split, "seed": seed})
    assert r.status_code == 400
    assert words in r.content.decode()


def test_fractions_within_the_tolerance_are_accepted():
    assert splits.parse_split("0.7,0.2,0.1") == (0.7, 0.2, 0.1)  # 0.7+0.2+0.1 != 1.0 in floats
    assert splits.parse_split("0.3333333,0.3333333,0.3333334") is not None
    with pytest.raises(ExportError):
        splits.parse_split("0.333,0.333,0.333")


def test_single_label_layouts_are_refused_for_a_multi_label_project(project, dataset):
    project.multi_label = True  # set by the multi-label projects' model field once it exists
    refused = [name for name, f in REGISTRY.items() if f.single_label_only]
    assert refused == ["imagefolder", "yolo-classify", "fiftyone"]
    for name in refused:
        with pytest.raises(ExportError, match="holds exactly one class per image, so it cannot carry the sets of classes of this multi-label"):
            formats.build(project, name)
    formats.build(project, "labelstudio")
    project.multi_label = False
    formats.build(project, "imagefolder")


def test_the_command_takes_the_split(project, dataset, tmp_path):
    from django.core.management import call_command

    out = tmp_path / "ds.zip"
    call_command("export", project.slug, "--format", "imagefolder", "--split", "0.8,0.1,0.1", "--seed", "7",
                 "-o", str(out), stdout=io.StringIO(), stderr=io.StringIO())
    assert _layout(out.read_bytes()) == _layout(_export(project, "imagefolder", split="0.8,0.1,0.1", seed=7))


def test_the_dashboard_offers_the_split_download(client, project, dataset, alice):
    client.force_login(alice)
    html = client.get(f"/projects/{project.pk}/dashboard/").content.decode()
    form = html[html.index('class="export-split"'):]
    form = form[:form.index("</form>")]
    assert 'name="split" value="0.8,0.1,0.1"' in form and 'name="seed"' in form
    assert [name for name, f in REGISTRY.items() if f.splits] == ["imagefolder", "yolo-classify"]
    for name in ("imagefolder", "yolo-classify"):
        assert f'<option value="{name}">' in form
    r = client.get(f"/projects/{project.pk}/export/", {"format": "yolo-classify", "split": "0.8,0.1,0.1", "seed": "0"})
    assert r.status_code == 200
    assert set(_layout(b"".join(r.streaming_content))) == {"train", "val", "test"}
