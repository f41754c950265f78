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
