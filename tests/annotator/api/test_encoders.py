"""GET /api/encoders/: every encoder a project can choose, and whether its weights are on this
server (WEIGHTS_DIR, then torch hub's cache; looked for, never downloaded)."""
import jsonschema
import pytest

from annotator.models import Encoder
from mlcore.encoders import catalog

URL = "/api/encoders/"


@pytest.fixture
def weights_dir(settings, tmp_path, monkeypatch):
    """An empty WEIGHTS_DIR, and an empty torch hub cache so the machine's own is not seen."""
    settings.WEIGHTS_DIR = tmp_path / "weights"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return settings.WEIGHTS_DIR


def _by_name(response):
    assert response.status_code == 200, response.content
    return {e["name"]: e for e in response.json()}


def test_anonymous_callers_get_401(db, api, weights_dir):
    r = api().get(URL)
    assert r.status_code == 401
    assert "detail" in r.json()


def test_it_lists_every_encoder_but_auto_with_no_weights_present(alice, api, weights_dir):
    encoders = _by_name(api(alice).get(URL))
    assert list(encoders) == [value for value in Encoder.values if value != Encoder.AUTO]
    for name, c in catalog.PRETRAINED.items():
        e = encoders[name]
        assert e == {
            "name": name, "title": Encoder(name).label, "family": c.family, "description": c.description,
            "input_size": c.input_size, "out_dim": c.out_dim, "weights_present": False, "weights_file": None,
            "weight_files": list(c.weight_files), "auto_for_photos": False,
            "package": {"timm": "timm", "open_clip": "open_clip"}.get(c.family), "package_installed": True,
            "zero_shot": c.family == "open_clip",
        }
    selfsup = encoders["self-supervised"]
    assert (selfsup["family"], selfsup["input_size"], selfsup["weights_present"], selfsup["weights_file"]) == (
        "selfsup", None, True, None)
    assert selfsup["auto_for_photos"] is True  # nothing pretrained is present


def test_a_file_with_a_known_name_is_found(alice, api, weights_dir):
    weights_dir.mkdir()
    (weights_dir / "resnet50-0676ba61.pth").write_bytes(b"weights")  # the second known name: looked for too
    (weights_dir / "resnet18-f37072fd.pth").write_bytes(b"weights")
    (weights_dir / "dinov2_vitb14.pth").write_bytes(b"weights")  # not a known name: not found
    encoders = _by_name(api(alice).get(URL))
    assert {n: e["weights_file"] for n, e in encoders.items() if e["weights_present"]} == {
        "self-supervised": None, "resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth",
    }
    # auto takes the first present of the preference order
    assert [n for n, e in encoders.items() if e["auto_for_photos"]] == ["resnet50"]


def test_torch_hubs_cache_is_looked_in(alice, api, weights_dir, tmp_path):
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "dinov2_vits14_pretrain.pth").write_bytes(b"weights")
    encoders = _by_name(api(alice).get(URL))
    assert encoders["dinov2_vits14"]["weights_file"] == "dinov2_vits14_pretrain.pth"
    assert encoders["dinov2_vits14"]["auto_for_photos"] is True


def _nullable_to_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema's `type: [..., "null"]`."""
    if isinstance(node, dict):
        node = {k: _nullable_to_json_schema(v) for k, v in node.items()}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable_to_json_schema(v) for v in node]
    return node


def test_the_answer_matches_the_schema(alice, api, client, weights_dir):
    weights_dir.mkdir()
    (weights_dir / "convnext_tiny-983f1562.pth").write_bytes(b"weights")
    client.force_login(alice)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/encoders/"]["get"]
    assert operation["tags"] == ["encoders"]
    assert {"200", "401"} <= set(operation["responses"])
    assert "auto" in operation["description"] and "dinov2_vitb14" in operation["description"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = {**_nullable_to_json_schema(body), "components": _nullable_to_json_schema(schema["components"])}
    jsonschema.validate(api(alice).get(URL).json(), validator)



def test_timm_and_open_clip_say_whether_their_package_is_installed(alice, api, weights_dir, monkeypatch):
    import sys

    weights_dir.mkdir()
    for name in ("open_clip/ViT-B-32", "timm/convnext_tiny", "resnet18"):
        (weights_dir / catalog.PRETRAINED[name].weight_files[0]).write_bytes(b"weights")
    encoders = _by_name(api(alice).get(URL))
    clip = encoders["open_clip/ViT-B-32"]
    assert (clip["family"], clip["package"], clip["package_installed"], clip["zero_shot"]) == (
        "open_clip", "open_clip", True, True)
    assert clip["weights_file"] == "open_clip_ViT-B-32_laion2b_s34b_b79k.bin"
    assert (encoders["timm/convnext_tiny"]["package"], encoders["timm/convnext_tiny"]["zero_shot"]) == ("timm", False)
    assert encoders["resnet18"]["package"] is None
    assert [n for n, e in encoders.items() if e["auto_for_photos"]] == ["open_clip/ViT-B-32"]  # after DINOv2
    # without the packages: still listed, not usable, and auto passes them by
    monkeypatch.setitem(sys.modules, "open_clip", None)
    encoders = _by_name(api(alice).get(URL))
    assert encoders["open_clip/ViT-B-32"]["package_installed"] is False
    assert encoders["open_clip/ViT-B-32"]["weights_present"] is True
    assert [n for n, e in encoders.items() if e["auto_for_photos"]] == ["timm/convnext_tiny"]
    monkeypatch.setitem(sys.modules, "timm", None)
    encoders = _by_name(api(alice).get(URL))
    assert [n for n, e in encoders.items() if e["auto_for_photos"]] == ["resnet18"]
