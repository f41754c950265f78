"""The embedding-throughput benchmark runs the trainer's own path end to end (tiny sizes)."""
import json

from mlcore import bench_embed


def test_it_embeds_generated_photos_and_reports_images_per_second(tmp_path):
    out = tmp_path / "embed.json"
    results = bench_embed.main(["--encoders", "resnet18", "--images", "6", "--size", "80x60", "--batch", "4",
                                "--repeats", "2", "--workers", "0", "--json", str(out)])
    (result,) = results
    assert result["encoder"] == "resnet18" and result["images"] == 6 and result["input_size"] == 224
    assert len(result["runs"]) == 2 and all(r > 0 for r in result["runs"])
    assert json.loads(out.read_text()) == results


def test_generated_photos_are_jpegs_of_the_asked_size(tmp_path):
    from PIL import Image

    paths = bench_embed.write_photos(tmp_path, 3, (100, 70))
    with Image.open(paths[0]) as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (100, 70), "RGB")
