import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CODE = r"""
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import mlcore
names = ["mlcore"] + [m.name for m in pkgutil.walk_packages(mlcore.__path__, "mlcore.")]
for name in names:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:  # the timm / open_clip families where their package is missing
        if e.name not in ("timm", "open_clip"):
            raise
assert len(names) > 10, names
bad = [m for m in sys.modules if m == "django" or m.startswith("django.")]
assert not bad, bad
print("ok", len(names))
"""


def test_mlcore_imports_no_django():
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", CODE, ROOT], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_package_import_is_light():
    code = "import sys; sys.path.insert(0, sys.argv[1]); import mlcore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code, ROOT], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
