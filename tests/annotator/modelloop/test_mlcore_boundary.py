"""The web app drives `mlcore.learner.ActiveLearner` through its public methods and
properties only: no module under annotator/ reads or writes the learner's private
attributes or its internal state (encoder, graph, embeddings...), assigns to it, or
imports mlcore outside `annotator.modelloop`. Static checks (ast), no Django or torch needed
beyond importing the learner's class for its public names."""
import ast
import inspect
import re
from pathlib import Path

import pytest

from mlcore.learner import ActiveLearner

ROOT = Path(__file__).resolve().parents[3]
APP = ROOT / "annotator"
# an expression that names a learner: `learner`, `model.learner`, `self.model.learner`, `clone`, `old_learner`
LEARNER = re.compile(r"(learner|clone)$", re.IGNORECASE)
# plain attributes (not methods or properties) the app may read: configuration and outcomes
READABLE = {"cfg", "device", "accepted", "selection", "version"}


def public_api():
    return {name for name, _ in inspect.getmembers(ActiveLearner) if not name.startswith("_")} | READABLE


def _names_learner(node):
    return LEARNER.search(ast.unparse(node)) is not None


def _targets(node):
    """The expressions an assignment or deletion writes to, tuples flattened."""
    if isinstance(node, ast.Assign):
        todo = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        todo = [node.target]
    elif isinstance(node, ast.Delete):
        todo = list(node.targets)
    elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        todo = [node.target]
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        todo = [node.optional_vars]
    else:
        return []
    out = []
    while todo:
        t = todo.pop()
        if isinstance(t, (ast.Tuple, ast.List)):
            todo.extend(t.elts)
        elif isinstance(t, ast.Starred):
            todo.append(t.value)
        else:
            out.append(t)
    return out


def violations(source, filename="<string>", allowed=None):
    """(line, message) for each use of a learner that is not its public API."""
    allowed = public_api() if allowed is None else allowed
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        # X._name / X.encoder where X is a learner
        if isinstance(node, ast.Attribute) and _names_learner(node.value):
            if node.attr.startswith("_"):
                found.append((node.lineno, f"private attribute {ast.unparse(node)}"))
            elif node.attr not in allowed:
                found.append((node.lineno, f"{ast.unparse(node)} is not public ActiveLearner API"))
        # learner.attr = ..., model.learner.cfg.num_classes = ..., learner.cfg[...] = ...
        for target in _targets(node):
            t = target
            while isinstance(t, (ast.Attribute, ast.Subscript)):
                if isinstance(t, ast.Attribute) and _names_learner(t.value):
                    found.append((target.lineno, f"assignment to {ast.unparse(target)}"))
                    break
                t = t.value
        # setattr(learner, ...), delattr(learner, ...)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("setattr", "delattr") and node.args and _names_learner(node.args[0])):
            found.append((node.lineno, f"{node.func.id} on {ast.unparse(node.args[0])}"))
    return sorted(set(found))


def mlcore_imports(source, filename="<string>"):
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "mlcore"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mlcore":
            found.append((node.lineno, node.module))
    return found


def app_files():
    files = sorted(p for p in APP.rglob("*.py") if "migrations" not in p.parts)
    assert files, APP
    return files


def test_the_app_uses_only_the_learners_public_api():
    problems = [f"{path.relative_to(ROOT)}:{line}: {msg}"
                for path in app_files() for line, msg in violations(path.read_text(), str(path))]
    assert not problems, "\n".join(problems)


# Outside the model loop: the encoders' plain-data catalog (no torch) anywhere, the encoder
# registry in the command that checks weight files, and anything in the benchmark commands
# (they drive the loop's pieces directly).
CATALOG = {"mlcore.encoders", "mlcore.encoders.catalog"}
WEIGHTS_COMMAND = APP / "management" / "commands" / "weights.py"


def _may_import(path, name):
    if name in CATALOG or path.parent.name == "commands" and path.name.startswith("bench_"):
        return True
    return path == WEIGHTS_COMMAND and name.startswith("mlcore.encoders")


def test_only_the_model_loop_imports_mlcore():
    loop = APP / "modelloop"
    problems = [f"{path.relative_to(ROOT)}:{line}: imports {name}"
                for path in app_files() if loop not in path.parents
                for line, name in mlcore_imports(path.read_text(), str(path))
                if not _may_import(path, name)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source", [
    "learner._refresh()",
    "clone._spectral = {}",
    "model.learner._require_model()",
    "learner.encoder, learner.head = a, b",
    "model.learner.cfg.num_classes = 3",
    "model.learner.cfg.acquisition.cold_start_until = 30",
    "model.learner.head, model.learner.last = None, None",
    "learner.version += 1",
    "setattr(model.learner, 'emb', x)",
    "x = learner.graph.idx",
    "state = {'encoder': learner.encoder.state_dict()}",
    "heldout_probabilities(learner.graph, labels, 3)",
    "if model.learner.encoder is None: pass",
])
def test_the_check_catches_the_old_patterns(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "model.learner = model.learner.with_pool(images)",
    "model.learner, model.item_ids = learner, ids",
    "clone = self.model.learner.clone(); self.model.learner.adopt(clone)",
    "model.learner.set_num_classes(3, cold_start_until=30)",
    "learner.save(path, labels=labels, meta={'side': 28})",
    "rows, p = learner.heldout_probabilities(labels)",
    "n = learner.cfg.num_classes; d = str(model.learner.device); ok = clone.accepted",
    "e = learner.embeddings.astype('float32'); k = learner.has_encoder",
])
def test_the_check_lets_the_public_api_through(source):
    assert violations(source) == []


def test_the_import_check():
    assert mlcore_imports("from mlcore.device import get_device\nimport mlcore.fast as f\n")
    assert not mlcore_imports("from annotator.modelloop import bridge\nfrom .mlcore import x\n")
