"""Progress bars for management commands."""


def tqdm_progress(bar):
    """A `progress(done, total)` callback (what importing and exporting report) that
    drives a tqdm bar."""

    def progress(done, total):
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return progress
