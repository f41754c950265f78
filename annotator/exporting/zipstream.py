"""Zips written piece by piece: a sink that zipfile writes into and the generator empties
after each piece, so no export holds a whole archive in memory."""
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
