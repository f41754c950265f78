"""`manage.py import_images`: output, summary, errors and exit status."""
import io
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotator.models import Annotation, Item
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def folder(tmp_path):
    """A folder of its own (tmp_path also holds MEDIA_ROOT)."""
    path = tmp_path / "images"
    path.mkdir()
    return path


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_images", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_a_folder_with_a_summary_and_a_progress_bar(project, alice, folder):
    for i in range(3):
        write(folder / "zero" / f"{i}.png", png_bytes(i))
    write(folder / "copy.png", png_bytes(0))
    write(folder / "broken.png", b"not an image")
    out, err = run(project.slug, folder)
    assert "3 imported, 1 duplicate, 1 rejected into project 'digits' (now 3 images)." in out
    assert "Rejected:\n  broken.png: This file is not an image" in out
    assert "Importing" in err and "5/5" in err
    assert Item.objects.filter(project=project).count() == 3
    assert set(Annotation.objects.values_list("annotator__username", "label__name")) == {("alice", "zero")}


def test_it_imports_a_zip(project, folder):
    archive = folder / "batch.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("one/a.png", png_bytes(1))
        zf.writestr("b.png", png_bytes(2))
    archive.write_bytes(buffer.getvalue())
    out, _ = run(project.slug, archive)
    assert "2 imported, 0 duplicates, 0 rejected" in out
    assert list(Annotation.objects.values_list("label__name", flat=True)) == ["one"]


def test_it_imports_as_another_member(project, folder):
    write(folder / "two" / "a.png", png_bytes(1))
    run(project.slug, folder, "--as-user", "bob")
    assert list(Annotation.objects.values_list("annotator__username", flat=True)) == ["bob"]


def test_it_can_ignore_folder_labels(project, folder):
    write(folder / "two" / "a.png", png_bytes(1))
    out, _ = run(project.slug, folder, "--no-folder-labels")
    assert "1 imported" in out
    assert Annotation.objects.count() == 0


def test_it_rejects_an_unknown_slug(project, folder):
    with pytest.raises(CommandError, match="There is no project with the slug 'nope'. Existing projects: digits."):
        run("nope", folder)


def test_it_rejects_a_missing_path(project, folder):
    with pytest.raises(CommandError, match="does not exist. Give a folder of images or a .zip archive"):
        run(project.slug, folder / "missing")


def test_it_rejects_an_unknown_user(project, folder):
    with pytest.raises(CommandError, match="There is no user named 'mallory'"):
        run(project.slug, folder, "--as-user", "mallory")


def test_it_rejects_a_user_who_cannot_label_the_project(project, charlie, folder):
    with pytest.raises(CommandError, match="'charlie' is not an owner or annotator of project 'digits'"):
        run(project.slug, folder, "--as-user", "charlie")
    with pytest.raises(CommandError, match="'dave' is not an owner or annotator"):
        run(project.slug, folder, "--as-user", "dave")


def test_it_fails_when_nothing_could_be_imported(project, folder):
    for i in range(25):
        write(folder / f"bad-{i:02d}.png", b"junk")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="Nothing was imported: 25 of 25 files were rejected") as excinfo:
        call_command("import_images", project.slug, str(folder), stdout=out, stderr=err)
    assert excinfo.value.returncode == 1
    text = out.getvalue()
    assert "0 imported, 0 duplicates, 25 rejected" in text
    assert "bad-19.png" in text and "bad-20.png" not in text
    assert "... and 5 more; run again with --verbose to list them all." in text


def test_verbose_lists_every_rejection_and_duplicate(project, folder):
    for i in range(22):
        write(folder / f"bad-{i:02d}.png", b"junk")
    write(folder / "good.png", png_bytes(1))
    write(folder / "good-copy.png", png_bytes(1))
    out, _ = run(project.slug, folder, "--verbose")
    assert "bad-21.png" in out and "more" not in out
    assert "Duplicates:\n  good.png: Same content as item" in out


def test_duplicates_alone_are_not_a_failure(project, folder):
    write(folder / "a.png", png_bytes(1))
    run(project.slug, folder)
    out, _ = run(project.slug, folder)
    assert "0 imported, 1 duplicate, 0 rejected" in out


def test_an_empty_folder_says_so(project, folder):
    out, _ = run(project.slug, folder)
    assert f"Found no files to import in {folder}." in out
