"""The shape of the tree, checked: the import graph has no loops and nothing imports upward,
mlcore stays free of the web app, web processes never load torch (nor any of mlcore but its
plain-data encoder catalog), migrations match the models, and the app's strategy and encoder
choices are mlcore's."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent

# Layers of annotator/, lowest first: a module may import its own layer and those below.
# Within a layer packages may use each other, but never in a loop (checked below).
LAYERS = [
    {"settings", "env", "storage", "models", "review_models", "job_models", "loop_models", "apps", "signals"},  # models' file fields name storage's ItemStorage
    {"access", "db", "events", "request_limits"},
    {"projects", "labeling", "importing", "exporting", "dashboard", "review", "modelloop", "live", "operations",
     "accounts", "jobs"},
    {"pages", "api", "admin"},
    {"urls", "asgi", "management"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# Modules of these packages serve web requests: none may import torch or mlcore. Of
# modelloop only the NumPy readers of a version's files and the status run in web processes;
# steering loads torch lazily for one rare owner action (a checkpoint upload).
WEB_PACKAGES = ["pages", "api", "live", "labeling", "projects", "importing", "exporting", "dashboard", "review",
                "operations", "accounts", "jobs"]
WEB_MODELLOOP = ["predictions", "status", "steering"]


def _modules(package):
    base = ROOT / package
    for path in sorted(base.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if name != package:  # the package's own (empty) __init__
            yield name, path


def _imports(path, package):
    """Names of `package` modules that the file imports (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == package:
                # `from annotator.x import y` names module annotator.x.y when y is a module
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    is_module = (ROOT / Path(*sub.split(".")).with_suffix(".py")).exists() or (
                        ROOT / Path(*sub.split(".")) / "__init__.py").exists()
                    found.add(sub if is_module else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute imports")
    return found


def _graph(package):
    modules = dict(_modules(package))
    return {name: {m for m in _imports(path, package) if m in modules and m != name}
            for name, path in modules.items()}


def _cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_annotator_modules_import_no_loops():
    assert _cycles(_graph("annotator")) == []


def test_annotator_packages_import_no_loops():
    packages = {}
    for name, deps in _graph("annotator").items():
        packages.setdefault(_top(name), set()).update(_top(d) for d in deps if _top(d) != _top(name))
    assert _cycles(packages) == []


def test_nothing_imports_upward():
    upward = []
    for name, deps in _graph("annotator").items():
        own = LAYER_OF.get(_top(name))
        assert own is not None, f"{name}: add its package to LAYERS in this test"
        upward += [f"{name} -> {d}" for d in deps if LAYER_OF[_top(d)] > own]
    assert upward == []


def test_pages_and_api_do_not_use_each_other():
    crossing = [f"{name} -> {d}" for name, deps in _graph("annotator").items() for d in deps
                if {_top(name), _top(d)} == {"pages", "api"}]
    assert crossing == []


def test_mlcore_imports_nothing_of_the_web_app():
    offenders = []
    for name, path in _modules("mlcore"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{name} -> {m}" for m in mods if m.split(".")[0] in {"annotator", "django", "rest_framework"}]
    assert offenders == []


WEB_PROCESS = r"""
import importlib, os, sys
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from django.urls import get_resolver
import annotator.asgi, annotator.urls  # the ASGI app and every view the URLconf names
get_resolver().resolve("/projects/")
for name in sys.argv[2:]:
    importlib.import_module(name)
# mlcore's plain-data catalog of encoders is the one part of mlcore a web process may read
light = {"mlcore", "mlcore.encoders", "mlcore.encoders.catalog"}
heavy = sorted(({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision", "faiss"})
               | {m for m in sys.modules if m.split(".")[0] == "mlcore" and m not in light})
print("heavy:", heavy)
"""


def test_web_processes_do_not_import_torch():
    web = [name for package in WEB_PACKAGES for name, _ in _modules(f"annotator/{package}")]
    web = [n.replace("/", ".") for n in web] + [f"annotator.modelloop.{m}" for m in WEB_MODELLOOP]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", WEB_PROCESS, str(ROOT), *web], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "heavy: []", out.stdout


def test_the_check_sees_torch_when_it_is_imported():
    """The check above is not blind: importing the bridge does load torch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", WEB_PROCESS, str(ROOT), "annotator.modelloop.bridge"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch" in out.stdout.strip().splitlines()[-1]


@pytest.mark.django_db
def test_migrations_match_the_models():
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"the models changed without a migration (makemigrations --check exited {exc.code})")


def test_encoder_choices_are_mlcores():
    from annotator.models import Encoder
    from mlcore.encoders import registry
    from mlcore.encoders.catalog import PRETRAINED

    assert set(Encoder.values) - {"auto", "self-supervised"} == set(PRETRAINED)
    # the registry has every catalogued encoder but those of families whose package is missing
    assert set(registry.names()) - set(registry.names("selfsup")) == {
        n for n, c in PRETRAINED.items() if c.family not in registry.MISSING}


def test_strategy_choices_are_mlcores():
    from annotator.models import Strategy
    from mlcore.acquisition.rank import STRATEGY_NAMES

    assert sorted(Strategy.values) == sorted(STRATEGY_NAMES)
