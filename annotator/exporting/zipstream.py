"""Zips written piece by piece: a sink that zipfile writes into and the generator empties
after each piece, so no export holds a whole archive in memory; and the text files (tables,
JSON) spooled to a temporary file while the images go in, then written after them."""
import json
import tempfile
import zipfile

CHUNK_BYTES = 1024 * 1024  # how much of a file is read (and sent) at a time


class Sink:
    """A write-only, unseekable file that zipfile writes into and the generator empties:
    what it holds at any time is the last piece written, never the whole archive."""

    def __init__(self):
        self._parts = []
        self._position = 0

    def write(self, data):
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self):
        return self._position

    def flush(self):
        pass

    def take(self):
        data = b"".join(self._parts)
        self._parts.clear()
        return data

    def drain(self):
        """Yields what was written since the last call, if anything."""
        if data := self.take():
            yield data


def zip_info(name, when, compress_type=zipfile.ZIP_STORED):
    """An entry named `name`, dated `when` (a time tuple), readable by everyone once unzipped."""
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def spooled_text():
    """A text file kept in memory up to CHUNK_BYTES, on disk beyond."""
    return tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES, mode="w+", encoding="utf-8", newline="")


def write_text(zf, sink, name, spool, when):
    """Adds the spooled text as entry `name` (deflated), yielding the zip's bytes as they go."""
    spool.seek(0)
    with zf.open(zip_info(name, when, zipfile.ZIP_DEFLATED), "w", force_zip64=True) as entry:
        while piece := spool.read(CHUNK_BYTES):
            entry.write(piece.encode("utf-8"))
            yield from sink.drain()


def write_json(zf, name, data, when):
    """A small JSON entry (an export's summary), indented for people."""
    zf.writestr(zip_info(name, when, zipfile.ZIP_DEFLATED), json.dumps(data, ensure_ascii=False, indent=2))
