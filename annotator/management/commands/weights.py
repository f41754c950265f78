"""`manage.py weights list | add NAME FILE | fetch NAME`: the pretrained encoders' weight files
on this server.

Nothing downloads weights at run time: the trainer looks for the known file names
(mlcore.encoders.catalog) in WEIGHTS_DIR, then in torch hub's cache. `add` checks a file you
brought (its tensors must load strictly as the encoder's; a file that is another encoder's is
refused, naming it; a sha256 prefix in its name is verified) and copies it into WEIGHTS_DIR
under a name the trainer finds. `fetch` downloads the publisher's file, checks it the same
way, and moves it in place; a failed download leaves nothing behind.

torch is imported only when a file is checked, so `manage.py help` stays light.
"""
import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mlcore.encoders import catalog

TIMEOUT_S = 30
CHUNK = 1 << 20
NO_WEIGHTS = ("auto", "self-supervised")


def add_hint(name):
    return f"manage.py weights add {name} FILE"


class Command(BaseCommand):
    help = (
        "The pretrained encoders' weight files: list what is present, add a file you downloaded, or fetch "
        "one (on a machine with internet). Weights are looked for in WEIGHTS_DIR, then in torch hub's cache."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="{list,add,fetch}", required=True)
        actions.add_parser(
            "list", help="Each pretrained encoder and where its weights were found (or how to add them), "
            "and the folders searched.",
        )
        add = actions.add_parser(
            "add",
            help="Check a weight file and copy it into WEIGHTS_DIR.",
            description=(
                "Check FILE, then copy it into WEIGHTS_DIR under the encoder's file name. FILE must load "
                "strictly as NAME's weights (a file that is another encoder's is refused, naming it). When "
                "FILE's own name carries a sha256 prefix (torch hub's convention, e.g. resnet18-f37072fd.pth), "
                "the file's sha256 must start with it; a name without one is copied after the layout check "
                "alone. The copy is named after the encoder's preferred known file (FILE's own name when it "
                "is one of the known names), so that the trainer finds it: for your own weights (for "
                "example fine-tuned ones) that name's hash then does not describe the file, which is not "
                "checked again."
            ),
        )
        add.add_argument("name", help=f"The encoder: {', '.join(catalog.PRETRAINED)}.")
        add.add_argument("file", help="A PyTorch weight file (.pth/.pt/.bin) or a safetensors file of that encoder.")
        fetch = actions.add_parser(
            "fetch",
            help="Download the encoder's weights from their publisher into WEIGHTS_DIR (needs internet).",
            description=(
                "Download NAME's preferred weight file from its publisher (timeout 30 s), verify the sha256 "
                "prefix its name carries (DINOv2's carry none), check that it loads as NAME's weights, and move "
                "it into WEIGHTS_DIR. Without internet, download the file elsewhere and use `weights add`."
            ),
        )
        fetch.add_argument("name", help=f"The encoder: {', '.join(catalog.PRETRAINED)}.")
        fetch.add_argument("--url", help=argparse.SUPPRESS)  # tests, mirrors: another place to download from

    def handle(self, *args, action, **options):
        weights_dir = Path(settings.WEIGHTS_DIR)
        if action == "list":
            return self.list_weights(weights_dir)
        if action == "add":
            return self.add(weights_dir, options["name"], Path(options["file"]).expanduser())
        return self.fetch(weights_dir, options["name"], options.get("url"), options.get("stderr") or sys.stderr)

    # --- list ---------------------------------------------------------------------------------

    def list_weights(self, weights_dir):
        dirs = catalog.weight_dirs(weights_dir)
        rows = [("name", "family", "input", "out dim", "weights")]
        auto = None
        for name, c in catalog.PRETRAINED.items():
            path = catalog.find_weights(name, dirs)
            where = str(path) if path else f"missing — add with: {add_hint(name)}"
            if not catalog.usable(name):
                where = f"package {c.package} not installed (pip install {catalog.PIP_NAMES[c.family]}); {where}"
            rows.append((name, c.family, f"{c.input_size} px", str(c.out_dim), where))
        for name in catalog.PREFERENCE:
            if auto is None and catalog.usable(name) and catalog.find_weights(name, dirs) is not None:
                auto = name
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4])
        self.stdout.write("\nFolders searched, in order:")
        for d in dirs:
            self.stdout.write(f"  {d}" + ("" if d.is_dir() else "  (does not exist)"))
        self.stdout.write(
            f"\n`auto` takes for colour photos: {auto or 'self-supervised (no pretrained weights present)'}"
            f" (the first present, with its package installed, of {', '.join(catalog.PREFERENCE)}).")

    # --- add ----------------------------------------------------------------------------------

    def add(self, weights_dir, name, src):
        c = pretrained(name)
        if not src.is_file():
            raise CommandError(f"{src}: no such file.")
        matched = check_layout(name, src, src.name)
        sha = sha_note(src.name, lambda: file_sha256(src))
        dest = install(src, weights_dir, dest_name(c, src.name, src))
        self.done(name, dest, f"Checked {src}: {matched} tensors load as {name}'s weights; {sha}. Copied to {dest}.")

    # --- fetch --------------------------------------------------------------------------------

    def fetch(self, weights_dir, name, url, progress_file):
        c = pretrained(name)
        url = url or c.url(c.weight_files[0])
        file_name = Path(urlsplit(url).path).name or c.weight_files[0]
        try:
            weights_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=weights_dir, prefix=f".{file_name}.", suffix=".part")
        except OSError as exc:
            raise CommandError(f"Could not write in {weights_dir}: {exc}") from exc
        tmp = Path(tmp)
        try:
            readable(fd)
            with os.fdopen(fd, "wb") as out:
                size, digest = download(url, out, progress_file, name)
            sha = sha_note(file_name, lambda: digest)  # refuses a damaged download before torch reads it
            matched = check_layout(name, tmp, file_name)
            dest = weights_dir / dest_name(c, file_name, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        self.done(name, dest, f"Downloaded {url} ({size:,} bytes): {sha}; {matched} tensors load as {name}'s "
                              f"weights. Saved as {dest}.")

    def done(self, name, dest, message):
        self.stdout.write(self.style.SUCCESS(message))
        used = catalog.find_weights(name, catalog.weight_dirs(dest.parent))
        if used is not None and used != dest:
            self.stdout.write(self.style.WARNING(
                f"Note: {used.name} in the same folder comes first; remove it for {dest.name} to be used."))


def pretrained(name):
    if name in catalog.PRETRAINED:
        missing = catalog.missing_package(name)
        if missing is not None:
            raise CommandError(f"{missing} Its files cannot be checked without it.")
        return catalog.PRETRAINED[name]
    if name in NO_WEIGHTS:
        raise CommandError(f"{name!r} needs no weight file. Encoders with weights: {', '.join(catalog.PRETRAINED)}.")
    raise CommandError(f"Unknown encoder {name!r}. Encoders with weights: {', '.join(catalog.PRETRAINED)}.")


def dest_name(c, file_name, path):
    """The name the trainer finds: the file's own when it is one of the known names (its hash then
    still describes it), else the preferred one of the file's format (a safetensors file is not
    named .pth, nor a PyTorch file .safetensors)."""
    from mlcore.encoders.spec import is_safetensors

    if file_name in c.weight_files:
        return file_name
    safetensors = is_safetensors(path)
    same_format = [f for f in c.weight_files if f.endswith(".safetensors") == safetensors]
    return (same_format or c.weight_files)[0]


def check_layout(name, path, shown):
    """The number of tensors in the file, after checking that they load strictly as `name`'s
    weights; CommandError naming the file (as `shown`) otherwise."""
    from mlcore.encoders import registry
    from mlcore.encoders.spec import read_state_dict

    def told(exc):
        return str(exc).replace(path.name, shown)

    try:
        state = read_state_dict(path)
    except ValueError as exc:
        cause = exc.__cause__
        if cause is None:
            raise CommandError(told(exc)) from exc
        # torch's own messages run to paragraphs (and suggest weights_only=False): the first sentence
        first = (str(cause).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")
        raise CommandError(f"{shown}: not a readable PyTorch weight file ({type(cause).__name__}: {first}).") from exc
    found = registry.recognise(state)
    if found is not None and found[0] != name:
        other, matched, total = found
        raise CommandError(
            f"{shown} holds {other} weights ({matched} of its {total} tensors fit {other}), not {name}'s. "
            f"If you meant {other}, run: manage.py weights add {other} FILE")
    try:
        registry.get(name).build(path)
    except ValueError as exc:
        raise CommandError(told(exc)) from exc
    return len(state)


def file_sha256(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                h.update(chunk)
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc}") from exc
    return h.hexdigest()


def sha_note(file_name, sha256):
    """A phrase for the report; CommandError when the sha256 prefix in the name does not match
    the file's (`sha256()`: its hex digest, computed only when the name carries a prefix)."""
    from mlcore.encoders.registry import sha256_prefix

    prefix = sha256_prefix(file_name)
    if prefix is None:
        return "its name carries no sha256 prefix, so its layout is what was checked"
    digest = sha256()
    if not digest.startswith(prefix):
        raise CommandError(
            f"{file_name}: its sha256 starts with {digest[:len(prefix)]}, not {prefix} as its name says: the file "
            "is damaged or not the one its name says. Nothing was copied.")
    return f"its sha256 starts with {prefix} as its name says"


def readable(fd):
    """mkstemp makes 0600 files: give the file the mode a plain open() would (0666 less the umask),
    so a trainer running as another user can read it."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def install(src, weights_dir, name):
    """Copy `src` to weights_dir/name atomically (a temporary file in the folder, then os.replace)."""
    dest = weights_dir / name
    try:
        weights_dir.mkdir(parents=True, exist_ok=True)
        if dest.exists() and dest.samefile(src):
            return dest
        fd, tmp = tempfile.mkstemp(dir=weights_dir, prefix=f".{name}.", suffix=".part")
        try:
            readable(fd)
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                shutil.copyfileobj(fh, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise CommandError(f"Could not copy {src} to {dest}: {exc}") from exc
    return dest


def download(url, out, progress_file, name):
    """Stream `url` into the open file `out` with a progress bar -> (bytes, sha256 hex digest).
    CommandError with the reason and what to do without internet."""
    from tqdm import tqdm

    h = hashlib.sha256()
    size = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "annotator-weights"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(urlsplit(url).path).name,
                      file=progress_file) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        if total is not None and size != total:
            raise http.client.IncompleteRead(b"", total - size)
        out.flush()
        os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = str(exc.reason)
    except http.client.IncompleteRead as exc:
        reason = f"the connection closed {exc.expected:,} bytes before the end"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        return size, h.hexdigest()
    raise CommandError(
        f"Could not download {url}: {reason}. On a machine without internet, download the file elsewhere and run: "
        f"{add_hint(name)}")
