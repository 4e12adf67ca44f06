"""Pre-train the tiny InternVL2 on the kit's base dishes: the "before" model of the fine-tuning lessons.

The real InternVL2-2B arrives knowing many foods and not others. The tiny model arrives knowing nothing,
so the kit gives it the same starting point: it trains mlp1 and the language model (the vision encoder
keeps its seeded weights, frozen as in the fine-tune) on the base dishes only, until it answers in the course's formats (an option letter and a dish name, or
"图中的菜是…" / "This is …"). The new dishes are left for the LoRA fine-tune to teach.

Batches come from XTuner's own InternVL dataset class, so the prompts, image tokens and labels are exactly
those the fine-tune will use. Seeded (model, batch order): two runs on two machines ended at the same loss;
the result is cached under a hash of this recipe, the tiny checkpoint and the data, and built only once.
"""
import hashlib
import json
import math
import time
from pathlib import Path

import torch

SEED = 7
RECIPE = {"batch_size": 8, "epochs": 6, "lr": 1e-3, "warmup_steps": 20, "weight_decay": 0.01, "max_norm": 1.0,
          "train_vision": False}


def _source_hash(base: Path, data: Path) -> str:
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{base.name}|{data.name}|{SEED}".encode())
    return digest.hexdigest()[:12]


def food_base_dir(cache: Path, base: Path, data: Path) -> Path:
    return Path(cache) / f"tiny-internvl2-food-base-{_source_hash(base, data)}"


def _complete(path: Path) -> bool:
    return (path / "pretrain_info.json").is_file() and (path / "config.json").is_file()


def ensure_food_base_checkpoint(cache: Path = None, log=print, progress: bool = True) -> Path:
    """The pre-trained tiny checkpoint (building the tiny model, the food set and this on first use)."""
    from course_lib.builds import build_once
    from course_lib.config import cache_dir
    from course_lib.food_vqa import ensure_food_vqa
    from course_lib.tiny_internvl2 import ensure_tiny_checkpoint

    cache = Path(cache or cache_dir())
    base, data = ensure_tiny_checkpoint(cache, log=log), ensure_food_vqa(cache, log=log)
    target = food_base_dir(cache, base, data)
    return build_once(target, _complete, lambda staging: _pretrain(base, data, staging, target, log, progress))


def _batches(dataset, batch_size: int, epochs: int, generator):
    from xtuner.dataset.collate_fns import default_collate_fn

    for _ in range(epochs):
        order = torch.randperm(len(dataset), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield default_collate_fn([dataset[i] for i in order[start : start + batch_size]])["data"]


def _pretrain(base: Path, data: Path, staging: Path, target: Path, log, progress: bool) -> None:
    from mmengine.config import ConfigDict
    from tqdm.auto import tqdm
    from xtuner.dataset import InternVL_V1_5_Dataset
    from xtuner.utils import PROMPT_TEMPLATE

    from course_lib.checkpoints import copy_remote_code, copy_tokenizer
    from course_lib.models import load_internvl

    started = time.perf_counter()
    log(f"Pre-training the tiny InternVL2 on the base dishes of {data.name} (a few CPU minutes, once) ...")
    torch.manual_seed(SEED)
    model, _ = load_internvl(base, "cpu", torch.float32)
    model.train()
    # The vision encoder keeps its seeded random weights, as the fine-tune keeps it frozen: random
    # convolution and attention features already tell colours and shapes apart, and mlp1 learns to read them.
    model.vision_model.requires_grad_(RECIPE["train_vision"])
    dataset = InternVL_V1_5_Dataset(model_path=str(base), template=ConfigDict(PROMPT_TEMPLATE.internlm2_chat),
                                    data_paths=str(data / "xtuner" / "pretrain_base.json"), image_folders=str(data))
    steps = RECIPE["epochs"] * (len(dataset) // RECIPE["batch_size"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    warmup = RECIPE["warmup_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / steps))))
    generator = torch.Generator().manual_seed(SEED)
    losses = []
    bar = tqdm(total=steps, desc="pre-training", unit="step", disable=not progress)
    for batch in _batches(dataset, RECIPE["batch_size"], RECIPE["epochs"], generator):
        pixels = batch["pixel_values"]  # XTuner's collate stacks equal-sized samples, else lists them
        pixels = pixels.flatten(0, 1) if torch.is_tensor(pixels) else torch.cat(pixels)
        loss = model(pixel_values=pixels, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     position_ids=batch["position_ids"], image_flags=torch.ones(len(pixels), dtype=torch.long),
                     labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, RECIPE["max_norm"])
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 4))
        if len(losses) % 24 == 0 and not progress:
            log(f"  step {len(losses)}/{steps}: loss {sum(losses[-24:]) / 24:.3f}")
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()

    model.eval().to(torch.bfloat16).save_pretrained(str(staging), safe_serialization=True)
    copy_remote_code(base, staging)
    copy_tokenizer(base, staging)
    (staging / "pretrain_info.json").write_text(json.dumps({
        "base": base.name, "data": data.name, "seed": SEED, "recipe": RECIPE, "steps": len(losses),
        "records": len(dataset), "seconds": round(time.perf_counter() - started, 1), "losses": losses,
    }, indent=1) + "\n")
    log(f"Pre-trained {target.name}: {len(losses)} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f}, "
        f"{time.perf_counter() - started:.0f} s")
