"""The tiny InternVL2: structure, shapes, generation and training behave like InternVL2-2B's."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from course_lib.tiny_internvl2 import SPEC

GREEDY = dict(max_new_tokens=8, do_sample=False)


def test_config_has_internvl2_fields(tiny_path):
    config = json.loads((tiny_path / "config.json").read_text())
    assert config["architectures"] == ["InternVLChatModel"]
    assert config["auto_map"]["AutoModel"] == "modeling_internvl_chat.InternVLChatModel"
    assert config["auto_map"]["AutoConfig"] == "configuration_internvl_chat.InternVLChatConfig"
    for key, value in {
        "force_image_size": 448,
        "downsample_ratio": 0.5,
        "ps_version": "v2",
        "template": "internlm2-chat",
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
        "use_thumbnail": True,
    }.items():
        assert config[key] == value, key
    assert config["llm_config"]["architectures"] == ["InternLM2ForCausalLM"]
    assert config["llm_config"]["model_type"] == "internlm2"
    assert config["vision_config"]["patch_size"] == 14
    for name in (
        "configuration_internvl_chat.py",
        "modeling_internvl_chat.py",
        "modeling_internlm2.py",
        "modeling_intern_vit.py",
        "conversation.py",
        "tokenizer.json",
        "model.safetensors",
    ):
        assert (tiny_path / name).is_file(), name


def test_parameter_names_and_dtype_mirror_internvl2(tiny_path):
    with safe_open(str(tiny_path / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
        dtypes = {weights.get_tensor(name).dtype for name in names}
    expected = [
        "vision_model.embeddings.class_embedding",
        "vision_model.embeddings.position_embedding",
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.encoder.layers.0.attn.qkv.weight",
        "vision_model.encoder.layers.0.attn.proj.weight",
        "vision_model.encoder.layers.0.mlp.fc1.weight",
        "vision_model.encoder.layers.0.mlp.fc2.weight",
        "vision_model.encoder.layers.0.norm1.weight",
        "vision_model.encoder.layers.0.ls1",
        "vision_model.encoder.layers.0.ls2",
        "mlp1.0.weight",
        "mlp1.1.weight",
        "mlp1.3.weight",
        "language_model.model.tok_embeddings.weight",
        "language_model.model.layers.0.attention.wqkv.weight",
        "language_model.model.layers.0.attention.wo.weight",
        "language_model.model.layers.0.feed_forward.w1.weight",
        "language_model.model.layers.0.feed_forward.w2.weight",
        "language_model.model.layers.0.feed_forward.w3.weight",
        "language_model.model.layers.0.attention_norm.weight",
        "language_model.model.layers.0.ffn_norm.weight",
        "language_model.model.norm.weight",
        "language_model.output.weight",
    ]
    assert not [name for name in expected if name not in names]
    assert dtypes == {torch.bfloat16}


def test_shapes_through_every_stage(tiny):
    model, _ = tiny
    vision, llm = SPEC["vision_config"], SPEC["llm_config"]
    pixels = torch.randn(3, 3, 448, 448)
    with torch.no_grad():
        embedded = model.vision_model.embeddings(pixels)
        assert embedded.shape == (3, 1 + 32 * 32, vision["hidden_size"])  # CLS + 32x32 patches of 14 px
        encoded = model.vision_model(pixel_values=pixels).last_hidden_state
        assert encoded.shape == embedded.shape
        grid = encoded[:, 1:].reshape(3, 32, 32, -1)
        shuffled = model.pixel_shuffle(grid, 0.5)
        assert shuffled.shape == (3, 16, 16, 4 * vision["hidden_size"])
        features = model.extract_feature(pixels)
        assert features.shape == (3, 256, llm["hidden_size"])
        ids = torch.tensor([[1, 5, 6, 7]])
        logits = model.language_model(input_ids=ids).logits
    assert logits.shape == (1, 4, model.language_model.config.vocab_size)


def test_tokens_per_tile(tiny, dumpling_pixels):
    model, tokenizer = tiny
    assert model.num_image_token == (448 // 14) ** 2 * 0.5**2 == 256
    # The prompt must carry exactly 256 <IMG_CONTEXT> tokens per tile: a wrong count is refused.
    two_tiles = torch.cat([dumpling_pixels, dumpling_pixels])
    with pytest.raises(ValueError, match="num_patches_list sums to 1 but pixel_values has 2 tiles"):
        model.chat(tokenizer, two_tiles, "这是什么？", GREEDY, num_patches_list=[1])
    ids = tokenizer("<img>" + "<IMG_CONTEXT>" * 255 + "</img>", return_tensors="pt").input_ids
    with pytest.raises(ValueError, match="255 <IMG_CONTEXT> tokens but the images give 256 features"):
        model.generate(pixel_values=dumpling_pixels, input_ids=ids, attention_mask=torch.ones_like(ids), **GREEDY)


def test_pixel_shuffle_v2_folds_each_2x2_block_in_row_major_order(tiny):
    model, _ = tiny
    grid = torch.randn(2, 32, 32, 5)
    out = model.pixel_shuffle(grid, 0.5)
    for i, j in [(0, 0), (3, 7), (15, 15), (9, 2)]:
        block = [
            grid[:, 2 * i, 2 * j],
            grid[:, 2 * i, 2 * j + 1],
            grid[:, 2 * i + 1, 2 * j],
            grid[:, 2 * i + 1, 2 * j + 1],
        ]
        assert torch.equal(out[:, i, j], torch.cat(block, dim=-1))


def test_greedy_chat_is_deterministic(tiny, tiny_path, dumpling_pixels):
    from course_lib.models import load_internvl

    model, tokenizer = tiny
    first = model.chat(tokenizer, dumpling_pixels, "图中的菜是什么？", GREEDY)
    assert isinstance(first, str) and first
    assert model.chat(tokenizer, dumpling_pixels, "图中的菜是什么？", GREEDY) == first
    reloaded, tokenizer2 = load_internvl(tiny_path, "cpu", torch.float32)
    assert reloaded.chat(tokenizer2, dumpling_pixels, "图中的菜是什么？", GREEDY) == first


def test_multi_turn_history_and_text_only(tiny, dumpling_pixels):
    model, tokenizer = tiny
    answer, history = model.chat(tokenizer, dumpling_pixels, "这是什么食物？", GREEDY, return_history=True)
    assert history == [("<image>\n这是什么食物？", answer)]
    second, history = model.chat(tokenizer, dumpling_pixels, "用英文说。", GREEDY, history=history, return_history=True)
    assert len(history) == 2 and history[1] == ("用英文说。", second)
    assert isinstance(model.chat(tokenizer, None, "你好", GREEDY), str)


def test_batch_chat_matches_single_questions(tiny, dumpling_pixels):
    from conftest import FOOD_IMAGES

    from course_lib.tiling import load_image

    model, tokenizer = tiny
    wide = load_image(FOOD_IMAGES / "1f35c.webp").expand(1, -1, -1, -1)
    questions = ["图中的菜是什么？", "What food is this? Answer in one word."]
    pixels = torch.cat([dumpling_pixels, wide])
    batch = model.batch_chat(tokenizer, pixels, questions, GREEDY, num_patches_list=[1, 1])
    singles = [
        model.chat(tokenizer, dumpling_pixels, questions[0], GREEDY),
        model.chat(tokenizer, wide, questions[1], GREEDY),
    ]
    assert batch == singles


def test_kv_cache_decoding_matches_a_full_forward(tiny):
    model, _ = tiny
    llm = model.language_model
    ids = torch.randint(3, llm.config.vocab_size, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in the second row
    with torch.no_grad():
        full = llm(input_ids=ids, attention_mask=mask, use_cache=False).logits
        prefix = llm(input_ids=ids[:, :8], attention_mask=mask[:, :8], use_cache=True)
        cache = prefix.past_key_values
        steps = [prefix.logits]
        for t in range(8, 12):
            out = llm(
                input_ids=ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=cache, use_cache=True
            )
            cache = out.past_key_values
            steps.append(out.logits)
    incremental = torch.cat(steps, dim=1)
    assert torch.allclose(incremental[0], full[0], atol=1e-4)
    assert torch.allclose(incremental[1, 3:], full[1, 3:], atol=1e-4)


def test_eager_and_sdpa_attention_agree(tiny):
    model, _ = tiny
    llm = model.language_model
    ids = torch.randint(3, llm.config.vocab_size, (2, 10))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    layers = [layer.attention for layer in llm.model.layers]
    with torch.no_grad():
        eager = llm(input_ids=ids, attention_mask=mask).logits
        try:
            for attention in layers:
                attention.attn_implementation = "sdpa"
            fused = llm(input_ids=ids, attention_mask=mask).logits
        finally:
            for attention in layers:
                attention.attn_implementation = "eager"
    assert torch.allclose(eager[:, :], fused[:, :], atol=1e-4)


def test_loss_falls_over_a_few_steps(tiny_path, dumpling_pixels):
    from course_lib.models import load_internvl

    model, tokenizer = load_internvl(tiny_path, "cpu", torch.float32)
    model.train()
    text = (
        "<|im_start|>user\n<img>"
        + "<IMG_CONTEXT>" * 256
        + "</img>\n图中的菜是什么？<|im_end|><|im_start|>assistant\n饺子<|im_end|>"
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    labels = ids.clone()
    labels[:, : ids.shape[1] - 4] = -100  # learn the answer only, as XTuner does
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(8):
        loss = model(pixel_values=dumpling_pixels, input_ids=ids, labels=labels, image_flags=torch.ones(1, 1)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_save_load_round_trip(tiny, tiny_path, tmp_path, dumpling_pixels):
    from transformers import AutoModel

    from course_lib.checkpoints import copy_remote_code

    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    saved = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= saved
    # Like the real InternVL2, save_pretrained writes the configuration code but not the modeling code,
    # so the saved folder does not load yet (the "converted checkpoint fails to load" complaint).
    assert "configuration_internvl_chat.py" in saved and "modeling_internvl_chat.py" not in saved
    with pytest.raises(OSError):
        AutoModel.from_pretrained(str(tmp_path), trust_remote_code=True)
    assert "modeling_internvl_chat.py" in copy_remote_code(tiny_path, tmp_path)
    again = AutoModel.from_pretrained(str(tmp_path), trust_remote_code=True, torch_dtype=torch.float32).eval()
    first, second = model.state_dict(), again.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    with torch.no_grad():
        assert torch.equal(model.extract_feature(dumpling_pixels), again.extract_feature(dumpling_pixels))
    assert copy_remote_code(tiny_path, tmp_path) == []  # re-running is safe
    (tmp_path / "conversation.py").write_text("# edited by a student\n")
    with pytest.raises(FileExistsError, match="conversation.py"):
        copy_remote_code(tiny_path, tmp_path)


def test_loads_without_course_lib(tiny_path, tmp_path):
    """A student's own script, in another folder, loads the checkpoint with transformers alone."""
    script = f"""
import sys, torch
from transformers import AutoModel, AutoTokenizer
path = {str(tiny_path)!r}
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
model = AutoModel.from_pretrained(path, trust_remote_code=True, torch_dtype=torch.float32).eval()
pixel_values = torch.zeros(1, 3, 448, 448)
answer = model.chat(tokenizer, pixel_values, "What is in the picture?", dict(max_new_tokens=5, do_sample=False))
assert isinstance(answer, str)
assert not any(name.startswith("course_lib") for name in sys.modules), "course_lib was imported"
print(type(model).__module__)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("transformers_modules.")


def test_a_checkpoint_without_its_code_or_with_a_dotted_name_is_refused_before_transformers(tiny_path, tmp_path):
    import shutil

    from course_lib.models import load_internvl

    bare = tmp_path / "no_code"
    shutil.copytree(tiny_path, bare, ignore=shutil.ignore_patterns("*.py"))
    with pytest.raises(ValueError, match="lacks its remote-code files .*copy_remote_code"):
        load_internvl(bare)
    dotted = tmp_path / "model.v2"
    shutil.copytree(tiny_path, dotted)
    with pytest.raises(ValueError, match="has a dot in its name"):
        load_internvl(dotted)


def _training_batch(tokenizer):
    text = (
        "<|im_start|>user\n<img>"
        + "<IMG_CONTEXT>" * 256
        + "</img>\n图中的菜是什么？<|im_end|><|im_start|>assistant\n饺子<|im_end|>"
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    labels = ids.clone()
    labels[:, : ids.shape[1] - 4] = -100
    return ids, labels


def test_gradient_checkpointing_on_the_chat_model_reaches_both_sub_models(tiny_path, dumpling_pixels):
    """InternVL2's chat model supports gradient_checkpointing_enable() (the real config's GPU path); the
    recomputed backward gives the same loss and gradients as the stored one."""
    from course_lib.models import load_internvl

    model, tokenizer = load_internvl(tiny_path, "cpu", torch.float32)
    assert model.lm_head is model.language_model.output
    ids, labels = _training_batch(tokenizer)
    model.train()

    def loss_and_grads():
        model.zero_grad()
        loss = model(pixel_values=dumpling_pixels, input_ids=ids, labels=labels, image_flags=torch.ones(1, 1)).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(0)
    plain_loss, plain_grads = loss_and_grads()
    model.gradient_checkpointing_enable()
    assert model.language_model.model.gradient_checkpointing and model.vision_model.encoder.gradient_checkpointing
    torch.manual_seed(0)
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    assert checkpointed_loss == pytest.approx(plain_loss, abs=1e-6)
    assert plain_grads.keys() == checkpointed_grads.keys()
    assert all(torch.allclose(plain_grads[n], checkpointed_grads[n], atol=1e-6) for n in plain_grads)


def test_lora_wrapping_as_upstream(tiny_path, dumpling_pixels):
    """wrap_llm_lora / wrap_backbone_lora put peft LoRA on InternVL2's target linears; a config's
    use_llm_lora / use_backbone_lora (the rank) wraps at construction. Fresh LoRA changes no output."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModel

    from course_lib.models import load_internvl

    model, tokenizer = load_internvl(tiny_path, "cpu", torch.float32)
    with torch.no_grad():
        before = model.extract_feature(dumpling_pixels)
    model.wrap_backbone_lora(r=4, lora_alpha=8)
    model.wrap_llm_lora(r=8, lora_alpha=16)
    assert isinstance(model.vision_model, PeftModel) and isinstance(model.language_model, PeftModel)
    names = [n for n, _ in model.named_modules() if n.endswith("lora_A")]
    layers = SPEC["llm_config"]["num_hidden_layers"], SPEC["vision_config"]["num_hidden_layers"]
    assert sum(n.startswith("language_model.") for n in names) == 5 * layers[0]  # wqkv, wo, w1, w2, w3
    assert sum(n.startswith("vision_model.") for n in names) == 4 * layers[1]  # qkv, proj, fc1, fc2
    assert all("lora_" in n for n, p in model.language_model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        assert torch.allclose(model.extract_feature(dumpling_pixels), before, atol=1e-6)
    assert isinstance(model.chat(tokenizer, dumpling_pixels, "图中的菜是什么？", GREEDY), str)

    config = AutoConfig.from_pretrained(tiny_path, trust_remote_code=True)
    config.use_llm_lora, config.use_backbone_lora = 8, 0
    built = AutoModel.from_config(config, trust_remote_code=True)
    assert isinstance(built.language_model, PeftModel) and not isinstance(built.vision_model, PeftModel)
    assert built.language_model.peft_config["default"].lora_alpha == 16


def test_an_empty_answer_in_history_writes_the_role_alone(tiny):
    """As InternVL2's conversation template: an empty earlier answer adds no <|im_end|> after the role."""
    model, _ = tiny
    query, _ = model._build_query("还有呢？", [("<image>\n这是什么？", "")], [1])
    assert "<|im_start|>assistant\n<|im_start|>user\n还有呢？<|im_end|><|im_start|>assistant\n" in query
    query, _ = model._build_query("还有呢？", [("<image>\n这是什么？", "饺子")], [1])
    assert "<|im_start|>assistant\n饺子<|im_end|><|im_start|>user\n还有呢？" in query
