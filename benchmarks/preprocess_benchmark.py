"""Image -> normalised tile tensor: course_lib.tiling against XTuner's InternVL preprocessing.

Both run on the same decoded RGB images in one process; every output pair is checked for identity first.
XTuner's side is its own code: `dynamic_preprocess` and the transform its InternVL_V1_5_Dataset builds
(here on the kit's tiny checkpoint, whose tiling config equals InternVL2-2B's).

    .venv/bin/python benchmarks/preprocess_benchmark.py [--repeats 5]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from course_lib.config import REPO_ROOT, cache_dir
from course_lib.tiling import image_to_pixel_values, open_rgb
from course_lib.tiny_internvl2 import ensure_tiny_checkpoint

SIZES = [(448, 448), (640, 480), (1280, 720), (1920, 1080), (3000, 2000), (1000, 300), (720, 1280)]


def xtuner_preprocessor(model_path: Path):
    from mmengine.config import ConfigDict
    from xtuner.dataset.internvl_dataset import InternVL_V1_5_Dataset, dynamic_preprocess
    from xtuner.utils import PROMPT_TEMPLATE

    folder = Path(tempfile.mkdtemp())
    (folder / "data.json").write_text(
        json.dumps(
            [
                {
                    "image": "x.png",
                    "conversations": [{"from": "human", "value": "<image>\n?"}, {"from": "gpt", "value": "?"}],
                }
            ]
        )
    )
    dataset = InternVL_V1_5_Dataset(
        model_path=str(model_path),
        template=ConfigDict(PROMPT_TEMPLATE.internlm2_chat),
        data_paths=str(folder / "data.json"),
        image_folders=str(folder),
    )

    def preprocess(image):
        tiles = dynamic_preprocess(
            image, dataset.min_dynamic_patch, dataset.max_dynamic_patch, dataset.image_size, dataset.use_thumbnail
        )
        return torch.stack([dataset.transformer(tile) for tile in tiles])

    return preprocess


def best_time(function, images, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for image in images:
            function(image)
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 gives stable timings)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    food = open_rgb(REPO_ROOT / "assets" / "images" / "fluent-emoji-3d" / "1f35c.webp")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    images = [(food if i % 2 else noise).resize(size, Image.BILINEAR) for i, size in enumerate(SIZES)]
    xtuner = xtuner_preprocessor(ensure_tiny_checkpoint(cache_dir(), log=lambda *_: None))

    tiles = 0
    for image in images:
        ours, theirs = image_to_pixel_values(image), xtuner(image)
        assert torch.equal(ours, theirs), f"outputs differ for {image.size}"
        tiles += ours.shape[0]
    print(f"{len(images)} images ({', '.join(f'{w}x{h}' for w, h in SIZES)}), {tiles} tiles in all; outputs identical")

    ours_best, ours_median = best_time(image_to_pixel_values, images, args.repeats)
    theirs_best, theirs_median = best_time(xtuner, images, args.repeats)
    print(f"{'':12s}{'images/s (best)':>18s}{'tiles/s (best)':>16s}{'median s/pass':>15s}")
    for name, best, median in (("course_lib", ours_best, ours_median), ("xtuner", theirs_best, theirs_median)):
        print(f"{name:12s}{len(images) / best:18.1f}{tiles / best:16.1f}{median:15.3f}")
    print(
        f"speed-up of course_lib over xtuner: {theirs_best / ours_best:.2f}x (best of {args.repeats}), "
        f"{theirs_median / ours_median:.2f}x (median), {args.threads} torch thread(s)"
    )


if __name__ == "__main__":
    main()
