"""Pre-train the tiny InternVL2 on the kit's base dishes: the "before" model of the fine-tuning lessons.

The real InternVL2-2B arrives with a vision encoder that has seen countless pictures, a language model that can
read, and names for many foods but not all. The tiny model arrives knowing nothing, so the kit gives it the
same starting point in three seeded stages, a few CPU minutes each:

0. vision: the vision encoder learns to tell all 18 dishes apart by their pictures alone (a linear head on its
   mean patch feature, class numbers and no names, on fresh renders of the artwork), then stays frozen, as in
   the fine-tune. Like InternViT, it can see a dumpling; nothing so far can name one;
1. text: the language model learns to read a multiple-choice question (name -> the matching option) on the
   dish and cuisine names of the tokenizer's corpus;
2. vision-language: mlp1 and the language model learn to answer the course's questions (the dish name from
   the options, or "图中的菜是…" / "This is …" followed by a second turn about the dish's cuisine) about the
   base dishes' training pictures, and to say "I do not know this dish" about the new dishes' pictures;
   also the skills the probes check before and after the fine-tune (course_lib.probes): yes/no about which
   base dish is in a picture, and the colour and count of shapes. Stage 1's look-ups continue alongside.

The new dishes' names are left for the LoRA fine-tune to teach. The result is the course model
(course_lib.course_model), which ships built in assets/course-model. Stage 2's batches come from XTuner's own
InternVL dataset class, so the prompts, image tokens and labels are exactly those the fine-tune will use. The
result is cached under a hash of this recipe, the tiny checkpoint and the data, and built only once.
"""

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib.builds import Artefact
from course_lib.checkpoints import copy_remote_code, copy_tokenizer
from course_lib.food_artwork import dish_rgba, dish_table
from course_lib.kit_food_set import FOOD_SET, LANGS, lookup_question, render
from course_lib.kit_food_set import SPEC as DATA_SPEC
from course_lib.models import load_internvl
from course_lib.tiling import image_to_pixel_values
from course_lib.tiny_internvl2 import TINY_CHECKPOINT
from course_lib.tiny_internvl2.corpus import CUISINES, DISHES

SEED = 7
RECIPE = {
    "batch_size": 8,
    "lookup_batch_size": 8,
    "epochs": 3,
    "lr": 1e-3,
    "warmup_steps": 20,
    "weight_decay": 0.01,
    "max_norm": 1.0,
}
# Stage 0 sees all 18 dishes (not only the base ones): an encoder that had never seen the new dishes made the
# fine-tune forget more base dishes and learn fewer new ones; 300 steps bring its loss near 0.1 (README, "Why
# the course model's recipe is as it is").
VISION_RECIPE = {"steps": 300, "batch_size": 16, "lr": 1e-3, "warmup_steps": 20, "weight_decay": 0.05}
# Stage 1 uses every name of the tokenizer's corpus, the new dishes' included: a real InternLM2 knows the
# words; what the "before" model lacks is what the new dishes look like. Stage 2 keeps these look-ups going
# (lookup_batch_size per step), so the names of the new dishes stay words the model can say.
TEXT_RECIPE = {"steps": 150, "batch_size": 32, "lr": 1e-3, "warmup_steps": 20}


def _batches(dataset, batch_size: int, epochs: int, generator):
    from xtuner.dataset.collate_fns import default_collate_fn

    for _ in range(epochs):
        order = torch.randperm(len(dataset), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield default_collate_fn([dataset[i] for i in order[start : start + batch_size]])["data"]


def _schedule(optimizer, warmup: int, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )


def _step(loss, params, optimizer, schedule, losses: list) -> None:
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, RECIPE["max_norm"])
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    losses.append(round(loss.item(), 4))


def _lookup_batch(tokenizer, template, generator, size: int):
    """Text-only multiple-choice look-ups, tokenised as XTuner does (loss on the reply only), right-padded."""
    names = DISHES + CUISINES
    rows = []
    for _ in range(size):
        lang = LANGS[int(torch.randint(2, (1,), generator=generator))]
        picked = [names[i][LANGS.index(lang)] for i in torch.randperm(len(names), generator=generator)[:4].tolist()]
        target = int(torch.randint(4, (1,), generator=generator))
        question = lookup_question(picked[target], picked, lang)
        prompt = tokenizer.bos_token + template["INSTRUCTION"].format(input=question)
        reply = picked[target] + template["SUFFIX"]  # the option's name, as the food set's replies
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        reply_ids = tokenizer.encode(reply, add_special_tokens=False)
        rows.append((prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    labels = torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    return input_ids, mask, labels


def _vision_stage(model, log, progress: bool) -> list:
    art = [dish_rgba(row["id"]) for row in dish_table()]  # all dishes: pictures and class numbers, no names
    vit = model.vision_model
    head = torch.nn.Linear(vit.config.hidden_size, len(art))
    params = list(vit.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=VISION_RECIPE["lr"], weight_decay=VISION_RECIPE["weight_decay"])
    schedule = _schedule(optimizer, VISION_RECIPE["warmup_steps"], VISION_RECIPE["steps"])
    rng = np.random.default_rng(SEED)
    losses = []
    for _ in tqdm(range(VISION_RECIPE["steps"]), desc="stage 0: seeing", unit="step", disable=not progress):
        labels = rng.integers(0, len(art), VISION_RECIPE["batch_size"])
        pixels = torch.cat(
            [
                image_to_pixel_values(render(art[i], rng, DATA_SPEC["image_size"], DATA_SPEC["work_size"]))
                for i in labels.tolist()
            ]
        )
        patches = vit(pixel_values=pixels).last_hidden_state[:, 1:]  # without the CLS token
        loss = torch.nn.functional.cross_entropy(head(patches.mean(1)), torch.as_tensor(labels))
        _step(loss, params, optimizer, schedule, losses)
    log(f"  stage 0 (vision): {len(losses)} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    return losses


def _text_stage(model, tokenizer, template, log, progress: bool) -> list:
    llm = model.language_model
    params = list(llm.parameters())
    optimizer = torch.optim.AdamW(params, lr=TEXT_RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    schedule = _schedule(optimizer, TEXT_RECIPE["warmup_steps"], TEXT_RECIPE["steps"])
    generator = torch.Generator().manual_seed(SEED)
    losses = []
    for _ in tqdm(range(TEXT_RECIPE["steps"]), desc="stage 1: reading options", unit="step", disable=not progress):
        input_ids, mask, labels = _lookup_batch(tokenizer, template, generator, TEXT_RECIPE["batch_size"])
        loss = llm(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        _step(loss, params, optimizer, schedule, losses)
    log(f"  stage 1 (text): {len(losses)} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    return losses


def _pretrain(staging: Path, target: Path, inputs: dict, log, progress: bool = True) -> dict:
    base, data = inputs[TINY_CHECKPOINT.name], inputs[FOOD_SET.name]
    # XTuner (and mmengine) only where the pre-training runs: importing it takes seconds
    from mmengine.config import ConfigDict
    from xtuner.dataset import InternVL_V1_5_Dataset
    from xtuner.utils import PROMPT_TEMPLATE

    started = time.perf_counter()
    log(f"Pre-training the tiny InternVL2 on the base dishes of {data.name} (a few CPU minutes, once) ...")
    torch.manual_seed(SEED)
    model, tokenizer = load_internvl(base, "cpu", torch.float32)
    model.train()
    template = ConfigDict(PROMPT_TEMPLATE.internlm2_chat)
    vision_losses = _vision_stage(model, log, progress)
    text_losses = _text_stage(model, tokenizer, template, log, progress)
    model.vision_model.requires_grad_(False)  # stage 2 on, as in the fine-tune: frozen
    dataset = InternVL_V1_5_Dataset(
        model_path=str(base),
        template=template,
        data_paths=str(data / "xtuner" / "pretrain_base.json"),
        image_folders=str(data),
    )
    steps = RECIPE["epochs"] * (len(dataset) // RECIPE["batch_size"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    warmup = RECIPE["warmup_steps"]
    schedule = _schedule(optimizer, warmup, steps)
    generator = torch.Generator().manual_seed(SEED)
    losses = []
    bar = tqdm(total=steps, desc="stage 2: food questions", unit="step", disable=not progress)
    for batch in _batches(dataset, RECIPE["batch_size"], RECIPE["epochs"], generator):
        pixels = batch["pixel_values"]  # XTuner's collate stacks equal-sized samples, else lists them
        pixels = pixels.flatten(0, 1) if torch.is_tensor(pixels) else torch.cat(pixels)
        loss = model(
            pixel_values=pixels,
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            image_flags=torch.ones(len(pixels), dtype=torch.long),
            labels=batch["labels"],
        ).loss
        if RECIPE["lookup_batch_size"]:
            ids, mask, labels = _lookup_batch(tokenizer, template, generator, RECIPE["lookup_batch_size"])
            loss = loss + model.language_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        _step(loss, trainable, optimizer, schedule, losses)
        if len(losses) % 24 == 0 and not progress:
            log(f"  step {len(losses)}/{steps}: loss {sum(losses[-24:]) / 24:.3f}")
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()

    model.eval().to(torch.bfloat16).save_pretrained(str(staging), safe_serialization=True)
    copy_remote_code(base, staging)
    copy_tokenizer(base, staging)
    log(
        f"Pre-trained {target.name}: {len(losses)} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return {  # pretrain_info.json
        "base": base.name,
        "data": data.name,
        "seed": SEED,
        "recipe": RECIPE,
        "steps": len(losses),
        "records": len(dataset),
        "vision_recipe": VISION_RECIPE,
        "vision_losses": vision_losses,
        "text_recipe": TEXT_RECIPE,
        "text_losses": text_losses,
        "seconds": round(time.perf_counter() - started, 1),
        "losses": losses,
    }


# The course model as built here (course_lib.course_model ships a copy and says which one the lessons use).
COURSE_MODEL_BUILD = Artefact(
    "tiny-internvl2-food-base",
    "the course model: the tiny InternVL2, pre-trained on the kit's food set",
    {"recipe": RECIPE, "vision_recipe": VISION_RECIPE, "text_recipe": TEXT_RECIPE, "seed": SEED},
    (Path(__file__),),
    _pretrain,
    needs=(TINY_CHECKPOINT, FOOD_SET),
    marker="pretrain_info.json",
)
