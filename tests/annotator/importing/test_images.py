"""The import pipeline (annotator.importing): images, archives, limits, duplicates, pre-labels."""
import hashlib
import io
import stat
import struct
import threading
import zipfile
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from PIL import Image, ImageFile

from annotator.importing import archives, images
from annotator.importing.images import import_path, import_uploads
from annotator.models import Annotation, Item
from annotator.projects.changes import create_project
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db


def upload(name, data):
    return SimpleUploadedFile(name, data)


def zip_bytes(entries, compression=zipfile.ZIP_DEFLATED):
    """A zip of (name or ZipInfo, bytes) pairs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def jpeg_bytes(size, orientation=None, seed=0):
    image = Image.open(io.BytesIO(png_bytes(seed, size))).convert("RGB")
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format="JPEG", exif=exif, quality=90)
    return buffer.getvalue()


def png_claiming(width, height):
    """A small PNG whose header (IHDR, CRC fixed) claims width x height pixels."""
    data = bytearray(png_bytes(1, (8, 8), mode="L"))
    # signature (8) + length (4) + b"IHDR" (4), then width, height, then 5 more fields, then CRC
    struct.pack_into(">II", data, 16, width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    struct.pack_into(">I", data, 29, crc)
    return bytes(data)


def media_files(settings):
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def statuses(report):
    return [(o.name, o.status) for o in report.outcomes]


# --- plain images --------------------------------------------------------------------------


def test_it_imports_images_under_server_chosen_names(project, alice, settings):
    data = png_bytes(1, (40, 30))
    report = import_uploads(project, [upload("my holiday.png", data), upload("b.jpg", jpeg_bytes((20, 10)))], user=alice)
    assert report.counts == {"imported": 2, "duplicate": 0, "rejected": 0}
    first = Item.objects.get(pk=report.outcomes[0].item_id)
    digest = hashlib.sha256(data).hexdigest()
    assert first.content_hash == digest
    assert first.image.name == f"items/{project.pk}/{digest[:2]}/{digest}.png"
    assert first.original_name == "my holiday.png"
    assert (first.width, first.height) == (40, 30)
    assert not first.display_image
    assert 0.0 <= first.priority < 1.0
    with first.image.open("rb") as handle:
        assert handle.read() == data  # no orientation tag: the original bytes are kept
    second = Item.objects.get(pk=report.outcomes[1].item_id)
    assert second.image.name.endswith(".jpg")
    assert sorted(Item.objects.values_list("pool_index", flat=True)) == [0, 1]
    assert len(media_files(settings)) == 2


def test_it_reports_as_a_dict(project, alice):
    files = [upload("a.png", png_bytes(1)), upload("a.png", png_bytes(1)), upload("x.png", b"no")]
    report = import_uploads(project, files, user=alice)
    result = report.as_dict()
    assert (result["imported"], result["duplicates"], result["rejected"]) == (1, 1, 1)
    assert [f["status"] for f in result["files"]] == ["imported", "duplicate", "rejected"]
    assert set(result["files"][0]) == {"name", "status", "reason", "item"}
    assert result["files"][1]["item"] == result["files"][0]["item"]
    assert report.summary() == "Imported 1 image; 1 duplicate skipped; 1 file rejected."


def test_it_keeps_only_the_basename_of_uploaded_names(project, alice):
    class Named(io.BytesIO):
        name = "../../etc/cron.d/evil.png"

    report = import_uploads(project, [Named(png_bytes(3))], user=alice)
    item = Item.objects.get(pk=report.outcomes[0].item_id)
    assert item.original_name == "evil.png"
    assert "etc" not in item.image.name and "evil" not in item.image.name


def test_it_truncates_long_original_names(project, alice):
    report = import_uploads(project, [upload("n" * 300 + ".png", png_bytes(4))], user=alice)
    assert len(Item.objects.get(pk=report.outcomes[0].item_id).original_name) == 255


def test_it_assigns_pool_indexes_after_existing_items(project, alice, make_items):
    make_items(3)
    report = import_uploads(project, [upload(f"{i}.png", png_bytes(100 + i)) for i in range(3)], user=alice)
    assert [Item.objects.get(pk=o.item_id).pool_index for o in report.outcomes] == [3, 4, 5]


def test_it_calls_progress_for_every_file(project, alice):
    calls = []
    files = [upload(f"{i}.png", png_bytes(i)) for i in range(3)]
    import_uploads(project, files, user=alice, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_it_skips_hidden_uploads(project, alice):
    report = import_uploads(project, [upload(".DS_Store", b"finder"), upload("a.png", png_bytes(1))], user=alice)
    assert statuses(report) == [("a.png", "imported")]


def test_it_reads_uploads_that_cannot_seek(project, alice):
    class Stream(io.RawIOBase):
        name = "stream.png"

        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, buffer):
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    report = import_uploads(project, [Stream(png_bytes(8))], user=alice)
    assert report.imported == 1


# --- rejected files ----------------------------------------------------------------------


def test_it_rejects_a_non_image_with_an_image_extension(project, alice, settings):
    files = [upload("notes.png", b"just some text, not a picture"), upload("ok.png", png_bytes(1))]
    report = import_uploads(project, files, user=alice)
    assert statuses(report) == [("notes.png", "rejected"), ("ok.png", "imported")]
    assert "not an image" in report.outcomes[0].reason
    assert Item.objects.count() == 1
    assert len(media_files(settings)) == 1


def test_it_rejects_an_empty_file(project, alice):
    report = import_uploads(project, [upload("empty.png", b"")], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert report.outcomes[0].reason == "The file is empty."


@pytest.mark.parametrize("make", [lambda: png_bytes(5, (64, 64)), lambda: jpeg_bytes((64, 64), seed=5)])
def test_it_rejects_a_truncated_image(project, alice, make, settings):
    data = make()
    report = import_uploads(project, [upload("cut.img", data[: len(data) * 2 // 3])], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "truncated" in report.outcomes[0].reason
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    assert Item.objects.count() == 0 and media_files(settings) == []


def test_it_rejects_a_file_over_the_byte_limit(project, alice, settings):
    settings.IMPORT_MAX_FILE_BYTES = 200
    big = png_bytes(1, (64, 64))
    report = import_uploads(project, [upload("big.png", big)], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "limit per image" in report.outcomes[0].reason


def test_it_rejects_too_many_pixels_before_decoding(project, alice, settings, monkeypatch):
    settings.IMPORT_MAX_PIXELS = 10_000
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    report = import_uploads(project, [upload("bomb.png", png_claiming(9_000, 9_000))], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "81,000,000 pixels" in report.outcomes[0].reason
    assert (9_000, 9_000) not in decoded


def test_it_rejects_a_real_pixel_bomb_png(project, alice, settings):
    settings.IMPORT_MAX_PIXELS = 1_000_000
    buffer = io.BytesIO()
    Image.new("1", (2_000, 2_000)).save(buffer, format="PNG")  # 4 megapixels in about 1 KB
    assert len(buffer.getvalue()) < 5_000
    report = import_uploads(project, [upload("bilevel.png", buffer.getvalue())], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "4,000,000 pixels" in report.outcomes[0].reason


@pytest.mark.parametrize("side", [10_000, 100_000])
def test_it_turns_pillows_bomb_guard_into_a_rejection(project, alice, settings, side):
    settings.IMPORT_MAX_PIXELS = 10**12  # above Pillow's own limit: its warning or error must still refuse
    report = import_uploads(project, [upload("huge.png", png_claiming(side, side))], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "more pixels than the decoder allows" in report.outcomes[0].reason


def test_a_bad_file_never_aborts_the_good_ones(project, alice):
    files = [upload("a.png", png_bytes(1)), upload("bad.png", b"\x89PNG broken"), upload("c.png", png_bytes(2))]
    report = import_uploads(project, files, user=alice)
    assert [o.status for o in report.outcomes] == ["imported", "rejected", "imported"]


def test_it_deletes_the_files_when_the_row_cannot_be_written(project, alice, settings, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(images, "_insert_rows", fail)
    settings.DISPLAY_MAX_SIDE = 100  # two files are written: the original and the display copy
    report = import_uploads(project, [upload("a.png", png_bytes(1, (300, 200)))], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "server error" in report.outcomes[0].reason
    assert Item.objects.count() == 0
    assert media_files(settings) == []


# --- duplicates -------------------------------------------------------------------------


def test_it_reports_duplicates_in_one_batch(project, alice):
    data = png_bytes(7)
    report = import_uploads(project, [upload("a.png", data), upload("copy.png", data)], user=alice)
    assert [o.status for o in report.outcomes] == ["imported", "duplicate"]
    assert report.outcomes[1].item_id == report.outcomes[0].item_id
    assert f"item {report.outcomes[0].item_id} (a.png)" in report.outcomes[1].reason
    assert Item.objects.count() == 1


def test_it_reports_duplicates_across_batches(project, alice, settings):
    data = png_bytes(7)
    first = import_uploads(project, [upload("a.png", data)], user=alice)
    second = import_uploads(project, [upload("again.png", data)], user=alice)
    assert second.outcomes[0].status == "duplicate"
    assert second.outcomes[0].item_id == first.outcomes[0].item_id
    assert Item.objects.count() == 1 and len(media_files(settings)) == 1


def test_the_same_image_may_be_in_two_projects(project, alice):
    other = create_project(alice, name="Other", classes=["a", "b"])
    data = png_bytes(7)
    assert import_uploads(project, [upload("a.png", data)], user=alice).imported == 1
    assert import_uploads(other, [upload("a.png", data)], user=alice).imported == 1


def test_a_concurrent_duplicate_is_reported_not_stored(project, alice, settings, monkeypatch):
    data = png_bytes(9)
    real_existing = images._Run.existing
    calls = []

    def racing(self, digests):
        digests = list(digests)
        calls.append(digests)
        if len(calls) == 1:
            # Another import stores the same content between our check and our insert.
            Item.objects.create(
                project=project, content_hash=digests[0], original_name="theirs.png", width=1, height=1, pool_index=99
            )
            return {}
        return real_existing(self, digests)

    monkeypatch.setattr(images._Run, "existing", racing)
    report = import_uploads(project, [upload("mine.png", data), upload("other.png", png_bytes(10))], user=alice)
    assert [o.status for o in report.outcomes] == ["duplicate", "imported"]
    assert "theirs.png" in report.outcomes[0].reason
    assert Item.objects.get(pk=report.outcomes[1].item_id).pool_index == 100
    assert len(media_files(settings)) == 1


def test_a_duplicate_of_a_rejected_file_is_rejected_too(project, alice, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(images, "_insert_rows", fail)
    data = png_bytes(9)
    report = import_uploads(project, [upload("a.png", data), upload("b.png", data)], user=alice)
    assert [o.status for o in report.outcomes] == ["rejected", "rejected"]


def test_it_imports_in_batches(project, alice, monkeypatch):
    monkeypatch.setattr(images, "BATCH_FILES", 2)
    data = png_bytes(1)
    files = [
        upload("a.png", data),
        upload("b.png", png_bytes(2)),
        upload("c.png", data),
        upload("d.png", png_bytes(3)),
        upload("e.png", png_bytes(3)),
    ]
    report = import_uploads(project, files, user=alice)
    assert [o.status for o in report.outcomes] == ["imported", "imported", "duplicate", "imported", "duplicate"]
    assert report.outcomes[4].item_id == report.outcomes[3].item_id
    assert sorted(Item.objects.values_list("pool_index", flat=True)) == [0, 1, 2]


# --- orientation and display copies -------------------------------------------------------


def test_it_applies_the_exif_orientation(project, alice):
    report = import_uploads(project, [upload("phone.jpg", jpeg_bytes((40, 20), orientation=6))], user=alice)
    item = Item.objects.get(pk=report.outcomes[0].item_id)
    assert (item.width, item.height) == (20, 40)
    with item.image.open("rb") as handle:
        stored = Image.open(io.BytesIO(handle.read()))
    assert stored.format == "JPEG"
    assert stored.size == (20, 40)
    assert stored.getexif().get(0x0112) is None


def test_it_keeps_the_original_bytes_when_the_orientation_is_upright(project, alice):
    data = jpeg_bytes((40, 20), orientation=1)
    report = import_uploads(project, [upload("phone.jpg", data)], user=alice)
    item = Item.objects.get(pk=report.outcomes[0].item_id)
    assert (item.width, item.height) == (40, 20)
    with item.image.open("rb") as handle:
        assert handle.read() == data


def test_it_makes_a_display_copy_of_a_large_image(project, alice, settings):
    settings.DISPLAY_MAX_SIDE = 64
    data = png_bytes(2, (200, 100))
    report = import_uploads(project, [upload("big.png", data), upload("small.png", png_bytes(3, (64, 10)))], user=alice)
    big = Item.objects.get(pk=report.outcomes[0].item_id)
    assert (big.width, big.height) == (200, 100)
    with big.display_image.open("rb") as handle:
        display = Image.open(io.BytesIO(handle.read()))
    assert display.format == "JPEG" and display.size == (64, 32)
    assert big.display_image.name.endswith(f"{big.content_hash}-display.jpg")
    with big.image.open("rb") as handle:
        assert handle.read() == data  # the original is kept for export and training
    assert not Item.objects.get(pk=report.outcomes[1].item_id).display_image


def test_a_transparent_large_image_gets_a_webp_display_copy(project, alice, settings):
    settings.DISPLAY_MAX_SIDE = 50
    report = import_uploads(project, [upload("logo.png", png_bytes(2, (100, 100), mode="RGBA"))], user=alice)
    item = Item.objects.get(pk=report.outcomes[0].item_id)
    with item.display_image.open("rb") as handle:
        display = Image.open(io.BytesIO(handle.read()))
    assert display.format == "WEBP" and display.size == (50, 50)


# --- archives ------------------------------------------------------------------------------


def test_it_imports_a_zip_archive(project, alice):
    archive = zip_bytes([("a.png", png_bytes(1)), ("sub/b.png", png_bytes(2)), ("sub/", b"")])
    report = import_uploads(project, [upload("batch.zip", archive)], user=alice)
    assert statuses(report) == [("batch.zip/a.png", "imported"), ("batch.zip/sub/b.png", "imported")]
    assert Item.objects.get(pk=report.outcomes[1].item_id).original_name == "b.png"


def test_it_detects_an_archive_by_its_bytes(project, alice):
    archive = zip_bytes([("a.png", png_bytes(1))])
    report = import_uploads(project, [upload("looks-like.png", archive)], user=alice)
    assert statuses(report) == [("looks-like.png/a.png", "imported")]


def test_it_rejects_a_zip_name_that_is_not_an_archive(project, alice):
    report = import_uploads(project, [upload("fake.zip", b"hello")], user=alice)
    assert statuses(report) == [("fake.zip", "rejected")]
    assert "not a readable zip archive" in report.outcomes[0].reason


def test_it_skips_directories_and_hidden_files(project, alice):
    archive = zip_bytes(
        [
            ("photos/", b""),
            ("__MACOSX/photos/._a.png", b"resource fork"),
            ("photos/.DS_Store", b"finder"),
            (".hidden/x.png", png_bytes(3)),
            ("photos/a.png", png_bytes(1)),
        ]
    )
    report = import_uploads(project, [upload("mac.zip", archive)], user=alice)
    assert statuses(report) == [("mac.zip/photos/a.png", "imported")]


@pytest.mark.parametrize("evil", ["../evil.png", "/abs/evil.png", "C:/evil.png", "..\\evil.png", "photos/../../evil.png"])
def test_it_rejects_a_zip_slip_archive_whole(project, alice, settings, evil):
    archive = zip_bytes([("good.png", png_bytes(1)), (evil, png_bytes(2))])
    report = import_uploads(project, [upload("slip.zip", archive)], user=alice)
    assert statuses(report) == [("slip.zip", "rejected")]
    assert "nothing from it was imported" in report.outcomes[0].reason
    assert "outside the archive" in report.outcomes[0].reason
    assert Item.objects.count() == 0 and media_files(settings) == []


def test_it_rejects_an_archive_with_a_symlink(project, alice, settings):
    link = zipfile.ZipInfo("photos/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = zip_bytes([("photos/a.png", png_bytes(1)), (link, b"/etc/passwd")])
    report = import_uploads(project, [upload("links.zip", archive)], user=alice)
    assert statuses(report) == [("links.zip", "rejected")]
    assert "symbolic link" in report.outcomes[0].reason
    assert Item.objects.count() == 0 and media_files(settings) == []


def test_it_rejects_a_high_ratio_member(project, alice, settings):
    archive = zip_bytes([("a.png", png_bytes(1)), ("zeros.png", b"\0" * (5 * 1024 * 1024))])
    assert len(archive) < 100_000
    report = import_uploads(project, [upload("bomb.zip", archive)], user=alice)
    assert statuses(report) == [("bomb.zip", "rejected")]
    assert "zip bombs" in report.outcomes[0].reason
    assert Item.objects.count() == 0 and media_files(settings) == []


def test_it_rejects_an_archive_whose_overall_ratio_is_too_high(project, alice, settings):
    settings.IMPORT_MAX_ARCHIVE_RATIO = 50
    # Each member stays under the per-member floor; together they expand too much.
    archive = zip_bytes([(f"z{i}.png", b"\0" * (512 * 1024)) for i in range(4)])
    report = import_uploads(project, [upload("many.zip", archive)], user=alice)
    assert statuses(report) == [("many.zip", "rejected")]
    assert "expands" in report.outcomes[0].reason


def test_it_rejects_an_archive_over_the_total_size(project, alice, settings):
    settings.IMPORT_MAX_ARCHIVE_BYTES = 1_000
    archive = zip_bytes([(f"{i}.png", png_bytes(i, (32, 32))) for i in range(3)], compression=zipfile.ZIP_STORED)
    report = import_uploads(project, [upload("large.zip", archive)], user=alice)
    assert statuses(report) == [("large.zip", "rejected")]
    assert "would unpack to" in report.outcomes[0].reason
    assert Item.objects.count() == 0 and media_files(settings) == []


def test_it_rejects_an_archive_with_too_many_members(project, alice, settings):
    settings.IMPORT_MAX_ARCHIVE_MEMBERS = 2
    archive = zip_bytes([(f"{i}.png", png_bytes(i)) for i in range(3)])
    report = import_uploads(project, [upload("crowd.zip", archive)], user=alice)
    assert statuses(report) == [("crowd.zip", "rejected")]
    assert "3 entries and the limit is 2" in report.outcomes[0].reason


def test_it_does_not_trust_declared_sizes(project, alice, settings):
    bomb = b"\0" * (5 * 1024 * 1024)
    archive = bytearray(zip_bytes([("a.png", png_bytes(1)), ("liar.png", bomb)]))
    # Make the central directory claim the 5 MB member unpacks to 1,000 bytes (ratio check passes).
    central = archive.index(b"PK\x01\x02", archive.index(b"PK\x01\x02") + 4)
    struct.pack_into("<I", archive, central + 24, 1_000)
    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as opened:
        assert opened.infolist()[1].file_size == 1_000
    reads = []
    real_read_capped = archives._read_capped
    importing_read = lambda handle, cap: reads.append(real_read_capped(handle, cap)) or reads[-1]  # noqa: E731
    settings.IMPORT_MAX_FILE_BYTES = 10 * 1024 * 1024
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(archives, "_read_capped", importing_read)
        report = import_uploads(project, [upload("liar.zip", bytes(archive))], user=alice)
    assert [o.status for o in report.outcomes] == ["imported", "rejected"]
    assert "could not be unpacked" in report.outcomes[1].reason
    assert max(len(data) for data in reads) < 1024 * 1024


def test_it_rejects_nested_archives_as_members(project, alice):
    inner = zip_bytes([("x.png", png_bytes(5))])
    archive = zip_bytes([("inner.zip", inner), ("disguised.png", inner), ("good.png", png_bytes(1))])
    report = import_uploads(project, [upload("outer.zip", archive)], user=alice)
    assert statuses(report) == [
        ("outer.zip/inner.zip", "rejected"),
        ("outer.zip/disguised.png", "rejected"),
        ("outer.zip/good.png", "imported"),
    ]
    assert "nested archives" in report.outcomes[0].reason
    assert "nested archives" in report.outcomes[1].reason


def test_a_bad_member_never_aborts_the_good_ones(project, alice):
    data = png_bytes(6, (64, 64))
    archive = zip_bytes(
        [
            ("a.png", png_bytes(1)),
            ("text.png", b"not an image"),
            ("cut.png", data[: len(data) // 2]),
            ("b.png", png_bytes(2)),
            ("a-again.png", png_bytes(1)),
        ]
    )
    report = import_uploads(project, [upload("mixed.zip", archive)], user=alice)
    assert [o.status for o in report.outcomes] == ["imported", "rejected", "rejected", "imported", "duplicate"]


def test_it_rejects_an_encrypted_member(project, alice):
    archive = bytearray(zip_bytes([("secret.png", png_bytes(2)), ("open.png", png_bytes(1))]))
    central = archive.index(b"PK\x01\x02")
    archive[central + 8] |= 0x1  # the "encrypted" flag of the first entry
    archive = bytes(archive)
    report = import_uploads(project, [upload("locked.zip", archive)], user=alice)
    assert [o.status for o in report.outcomes] == ["rejected", "imported"]
    assert "password" in report.outcomes[0].reason


def test_it_rejects_a_member_with_a_bad_checksum(project, alice):
    data = png_bytes(3)
    archive = bytearray(zip_bytes([("a.png", data)], compression=zipfile.ZIP_STORED))
    start = archive.index(data)
    archive[start + 100] ^= 0xFF
    report = import_uploads(project, [upload("corrupt.zip", bytes(archive))], user=alice)
    assert report.outcomes[0].status == "rejected"
    assert "could not be unpacked" in report.outcomes[0].reason


# --- pre-labels from class folders -------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    """A folder of its own (tmp_path also holds MEDIA_ROOT)."""
    path = tmp_path / "images"
    path.mkdir()
    return path


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_it_pre_labels_images_in_class_folders(project, alice, folder):
    root = folder / "digits"
    write(root / "zero" / "a.png", png_bytes(1))
    write(root / "One" / "b.png", png_bytes(2))  # case-insensitive match
    write(root / "other" / "c.png", png_bytes(3))
    write(root / "d.png", png_bytes(4))
    write(root / ".cache" / "e.png", png_bytes(5))
    report = import_path(project, root, user=alice)
    assert statuses(report) == [
        ("d.png", "imported"),
        ("One/b.png", "imported"),
        ("other/c.png", "imported"),
        ("zero/a.png", "imported"),
    ]
    labels = {a.item.original_name: a for a in Annotation.objects.select_related("item", "label")}
    assert set(labels) == {"a.png", "b.png"}
    zero = labels["a.png"]
    assert zero.label.name == "zero" and zero.annotator == alice
    assert zero.source == Annotation.Source.IMPORT
    assert zero.idempotency_key == f"import:{zero.item_id}"
    assert labels["b.png"].label.name == "one"
    labeled = Item.objects.get(original_name="a.png")
    assert labeled.label_count == 1 and labeled.done
    unlabeled = Item.objects.get(original_name="c.png")
    assert unlabeled.label_count == 0 and not unlabeled.done


def test_pre_labels_leave_items_open_when_more_answers_are_needed(project, alice, folder):
    project.annotations_per_item = 2
    project.save()
    write(folder / "two" / "a.png", png_bytes(1))
    import_path(project, folder, user=alice)
    item = Item.objects.get()
    assert item.label_count == 1 and not item.done


def test_the_exact_class_name_wins_over_a_case_insensitive_one(alice, folder):
    project = create_project(alice, name="Cases", classes=["cat", "Cat"])
    write(folder / "Cat" / "a.png", png_bytes(1))
    write(folder / "CAT" / "b.png", png_bytes(2))  # two case-insensitive matches: ambiguous
    import_path(project, folder, user=alice)
    assert list(Annotation.objects.values_list("item__original_name", "label__name")) == [("a.png", "Cat")]


def test_it_pre_labels_class_folders_inside_a_zip(project, alice, folder):
    archive = folder / "labeled.zip"
    archive.write_bytes(
        zip_bytes([("export/two/a.png", png_bytes(1)), ("zero/b.png", png_bytes(2)), ("c.png", png_bytes(3))])
    )
    report = import_path(project, archive, user=alice)
    assert report.imported == 3
    labels = sorted(Annotation.objects.values_list("item__original_name", "label__name"))
    assert labels == [("a.png", "two"), ("b.png", "zero")]


def test_uploads_take_labels_from_folders_in_the_name(project, alice):
    class Named(io.BytesIO):
        name = "zero/a.png"

    import_uploads(project, [Named(png_bytes(1))], user=alice)
    assert list(Annotation.objects.values_list("label__name", flat=True)) == ["zero"]


def test_folder_labels_can_be_turned_off(project, alice, folder):
    write(folder / "zero" / "a.png", png_bytes(1))
    assert import_path(project, folder, user=alice, folder_labels=False).imported == 1
    assert Annotation.objects.count() == 0
    assert Item.objects.get().label_count == 0


def test_duplicates_are_not_labeled_again(project, alice, folder):
    write(folder / "first" / "zero" / "a.png", png_bytes(1))
    write(folder / "second" / "one" / "a.png", png_bytes(1))
    report = import_path(project, folder, user=alice)
    assert [o.status for o in report.outcomes] == ["imported", "duplicate"]
    assert list(Annotation.objects.values_list("label__name", flat=True)) == ["zero"]
    assert Item.objects.get().label_count == 1


# --- folders and zip files on the server ----------------------------------------------------


def test_it_imports_zip_files_found_in_a_folder(project, alice, folder):
    write(folder / "a.png", png_bytes(1))
    write(folder / "more.zip", zip_bytes([("b.png", png_bytes(2))]))
    write(folder / "slip.zip", zip_bytes([("../c.png", png_bytes(3))]))
    report = import_path(project, folder, user=alice)
    assert statuses(report) == [("a.png", "imported"), ("more.zip/b.png", "imported"), ("slip.zip", "rejected")]


def test_it_imports_a_single_image_file(project, alice, folder):
    write(folder / "one.png", png_bytes(1))
    assert statuses(import_path(project, folder / "one.png", user=alice)) == [("one.png", "imported")]


# --- concurrency (PostgreSQL) ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_get_distinct_pool_indexes(alice):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL) for real row locks between threads")
    project = create_project(alice, name="Race", classes=["a", "b"])
    results, errors = [], []

    def worker(offset):
        try:
            files = [upload(f"{offset}-{i}.png", png_bytes(offset * 100 + i)) for i in range(15)]
            files.append(upload("shared.png", png_bytes(9999)))
            results.append(import_uploads(project, files, user=alice))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    indexes = sorted(Item.objects.filter(project=project).values_list("pool_index", flat=True))
    assert indexes == list(range(4 * 15 + 1))
    assert sum(report.duplicates for report in results) == 3
