"""Embedding throughput: images/s through the trainer's own path (JPEG decode in DataLoader
workers, aspect-preserving resize + centre crop, the encoder's forward pass), per encoder.

    python -m mlcore.bench_embed --encoders resnet18,resnet50,dinov2_vits14 --images 256 --repeats 3
    python -m mlcore.bench_embed --device cuda --batch 256 --images 4096

Weights do not change the cost of a forward pass, so each encoder is built with random
weights in its own layout (nothing is downloaded; a local weight file is used when
``--weights-dir`` has one). Photos are generated: ``--images`` JPEGs of ``--size`` pixels
(default 640x480, a typical camera picture after a resize), written once to a temporary
folder. The first repeat warms up (not counted); the result is the mean and the standard
deviation of images/s over the others, as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mlcore.encoders import catalog, registry
from mlcore.imaging import iter_embed_files


def write_photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """n smooth random colour pictures as JPEG (quality 90), like camera photos to decode."""
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC)
        path = folder / f"{i:06d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def build(name: str, weights_dir: str | None) -> torch.nn.Module:
    spec = registry.get(name)
    path = catalog.find_weights(name, catalog.weight_dirs(weights_dir)) if weights_dir else None
    return spec.build(path)  # random weights without a file: the same cost per image


def measure(name: str, paths: list[str], batch: int, workers: int | None, device: str, repeats: int,
            weights_dir: str | None) -> dict:
    spec = registry.get(name)
    model = build(name, weights_dir)
    rates = []
    for _ in range(repeats + 1):  # the first one warms up (allocator, worker start, oneDNN kernels)
        started = time.perf_counter()
        count = 0
        for _idx, _vectors, ok in iter_embed_files(model, paths, spec.input_size, spec.mean, spec.std,
                                                  batch_size=batch, workers=workers, device=device):
            count += int(ok.sum())
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(count / (time.perf_counter() - started))
    counted = rates[1:]
    return {"encoder": name, "input_size": spec.input_size, "images": len(paths),
            "images_per_s": round(statistics.mean(counted), 1),
            "sd": round(statistics.stdev(counted), 1) if len(counted) > 1 else 0.0,
            "runs": [round(r, 1) for r in counted]}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoders", default="resnet18,resnet50,dinov2_vits14")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the generated photos")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, help="DataLoader workers (default: the trainer's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per encoder, after one warm-up")
    ap.add_argument("--weights-dir", default=os.environ.get("WEIGHTS_DIR"))
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    for name in names:
        registry.get(name)  # unknown names fail before any work
    w, h = (int(v) for v in args.size.lower().split("x"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        paths = write_photos(Path(tmp), args.images, (w, h))
        for name in names:
            result = measure(name, paths, args.batch, args.workers, args.device, args.repeats, args.weights_dir)
            result.update(device=args.device, batch=args.batch, torch_threads=torch.get_num_threads(),
                          gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else None)
            results.append(result)
            print(json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
