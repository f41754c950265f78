"""Fixtures shared by the web app's test folders (the personas live in tests/conftest.py)."""
import pytest


@pytest.fixture
def weights_dir(settings, tmp_path, monkeypatch):
    """An empty WEIGHTS_DIR (not created yet), and an empty torch hub cache so the machine's
    own is not seen."""
    settings.WEIGHTS_DIR = tmp_path / "weights"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return settings.WEIGHTS_DIR


@pytest.fixture
def tags(alice, bob, dave):
    """A multi-label project: alice owns it, bob annotates, dave views."""
    from annotator.models import Role
    from annotator.projects.changes import create_project
    from annotator.projects.members import add_member

    project = create_project(alice, name="Tags", classes=["cat", "dog", "car"], audit_fraction=0.0, multi_label=True)
    add_member(project, "bob", Role.ANNOTATOR)
    add_member(project, "dave", Role.VIEWER)
    return project
