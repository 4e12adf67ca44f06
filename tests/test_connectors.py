"""Connectors: where image features go in the LLM input, and what the projectors cost at real sizes."""

import pytest
import torch

from course_lib import connectors as C
from course_lib import internvl_format as F

WIDTH = 6


def test_prefix_puts_images_first_and_extends_mask_and_labels():
    image = torch.randn(2, 3, WIDTH)
    text = torch.randn(2, 4, WIDTH)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    labels = torch.tensor([[-100, 7, 8, 9], [-100, 5, -100, -100]])
    embeds, new_mask, new_labels = C.prepend_image_prefix(image, text, mask, labels)
    assert embeds.shape == (2, 7, WIDTH) and new_mask.shape == new_labels.shape == (2, 7)
    assert torch.equal(embeds[:, :3], image) and torch.equal(embeds[:, 3:], text)
    assert torch.equal(new_mask[:, :3], torch.ones(2, 3, dtype=mask.dtype)) and torch.equal(new_mask[:, 3:], mask)
    assert (new_labels[:, :3] == C.IGNORE_INDEX).all() and torch.equal(new_labels[:, 3:], labels)
    _, _, none = C.prepend_image_prefix(image, text, mask)
    assert none is None
    with pytest.raises(ValueError, match="same|share"):
        C.prepend_image_prefix(torch.randn(2, 3, WIDTH + 1), text, mask)


def test_placeholders_are_replaced_where_they_stand_several_images_mid_prompt():
    P, N = 0, 3  # placeholder id, tokens per image
    ids = torch.tensor(
        [
            [5, 9, P, P, P, 7, 8, P, P, P, 6],  # two images, both mid-prompt
            [5, P, P, P, 9, 9, 9, 9, 9, 9, 9],  # one image after the first token
        ]
    )
    text = torch.randn(2, ids.shape[1], WIDTH)
    images = torch.arange(3 * N * WIDTH, dtype=torch.float).reshape(3, N, WIDTH)  # distinct rows
    merged = C.replace_placeholders(ids, text, images, P)
    assert torch.equal(merged[0, 2:5], images[0]) and torch.equal(merged[0, 7:10], images[1])
    assert torch.equal(merged[1, 1:4], images[2])
    keep = ids != P
    assert torch.equal(merged[keep], text[keep])  # every text row untouched
    assert not torch.equal(text[~keep], merged[~keep])  # the input is not modified in place
    assert C.layout_labels(ids[0], P, N) == ["text"] * 2 + ["image 1"] * 3 + ["text"] * 2 + ["image 2"] * 3 + ["text"]
    assert C.layout_labels([5, 6], P, N, prefix_images=1) == ["image 1"] * 3 + ["text"] * 2


def test_placeholder_count_mismatch_raises():
    ids = torch.tensor([[5, 0, 0, 6]])
    with pytest.raises(ValueError, match="2 placeholder tokens .* 3 rows"):
        C.replace_placeholders(ids, torch.randn(1, 4, WIDTH), torch.randn(1, 3, WIDTH), 0)


def test_expand_placeholders_string():
    prompt = "图像1<Img><ImageHere></Img>和图像2<Img><ImageHere></Img>有何不同？"
    out = C.expand_placeholders(prompt, "<ImageHere>", "<|extra_0|>", 32)
    assert out.count("<|extra_0|>") == 64 and "<ImageHere>" not in out


@pytest.mark.parametrize("tiles", [[1], [3], [2, 5]])
def test_internvl_prompt_matches_the_models_own(tiny, tiles):
    model, tokenizer = tiny
    question = "图中的菜是什么？" if len(tiles) == 1 else "<image>\n<image>\n有什么不同？"
    ours = C.internvl_prompt(question, tiles, model.system_message, model.num_image_token)
    if len(tiles) == 1:
        question = "<image>\n" + question
    theirs, _ = model._build_query(question, None, tiles)
    assert ours == theirs
    ids = tokenizer(ours, return_tensors="pt").input_ids
    context_id = tokenizer.convert_tokens_to_ids(F.IMG_CONTEXT_TOKEN)
    assert int((ids == context_id).sum()) == 256 * sum(tiles)
    assert int((ids == tokenizer.convert_tokens_to_ids(F.IMG_START_TOKEN)).sum()) == len(tiles)


def test_internvl_merge_and_projector_match_the_tiny_model(tiny):
    model, tokenizer = tiny
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 448, 448)
    prompt = C.internvl_prompt("<image>\n这是什么？", [2], model.system_message, model.num_image_token)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    context_id = tokenizer.convert_tokens_to_ids(F.IMG_CONTEXT_TOKEN)
    with torch.no_grad():
        vit = model.vision_model(pixel_values=pixels).last_hidden_state[:, 1:]
        ours_features = C.internvl_connect(vit, model.mlp1, model.downsample_ratio)
        features = model.extract_feature(pixels)
        assert torch.allclose(ours_features, features, atol=1e-6)
        text = model.language_model.get_input_embeddings()(ids)
        ours = C.merge_internvl(ids, text, features, context_id)
        model.img_context_token_id = context_id
        assert torch.equal(ours, model._merge_image_embeds(ids, text, features))
        logits = model.language_model(inputs_embeds=ours).logits
        assert torch.allclose(logits, model(pixel_values=pixels, input_ids=ids).logits, atol=1e-5)
    with pytest.raises(ValueError, match="placeholder tokens"):
        C.merge_internvl(ids, text, features[:1], context_id)


def test_mlp1_mirrors_internvl(tiny):
    model, _ = tiny
    vision, llm = model.config.vision_config.hidden_size, model.config.llm_config.hidden_size
    ours = C.internvl_mlp1(vision, llm)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in model.mlp1.state_dict().items()
    }


def test_projector_counts_equal_the_formulas():
    v, d, q = 1024, 4096, 768
    linear = lambda i, o: i * o + o  # noqa: E731
    counts = C.connector_parameter_counts()
    assert counts[C.MINIGPT4] == linear(q, d) == 3_149_824
    assert counts[C.LLAVA] == linear(v, d) == 4_198_400
    assert counts[C.LLAVA15] == linear(v, d) + linear(d, d) == 20_979_712
    folded, d2 = 4 * 1024, 2048
    assert counts[C.INTERNVL2] == 2 * folded + linear(folded, d2) + linear(d2, d2) == 12_595_200
    # The Q-Former: about 100M, an order of magnitude above any MLP.
    assert 95e6 < counts[C.BLIP2] < 120e6
    assert counts[C.BLIP2] > 5 * max(n for k, n in counts.items() if k != C.BLIP2)
    # Same sizes for everyone: the widget's view.
    same = C.connector_parameter_counts(llm_hidden=5120, vision_hidden=1408)
    assert same[C.LLAVA15] == linear(1408, 5120) + linear(5120, 5120)
    assert same[C.MINIGPT4] == linear(768, 5120)


def test_qformer_count_matches_its_layer_formula():
    h, f, e, layers, queries, d = 768, 3072, 1408, 12, 32, 4096
    linear = lambda i, o: i * o + o  # noqa: E731
    self_attention = 3 * linear(h, h) + linear(h, h) + 2 * h  # q, k, v, output dense + LayerNorm
    feed_forward = linear(h, f) + linear(f, h) + 2 * h
    cross_attention = linear(h, h) + 2 * linear(e, h) + linear(h, h) + 2 * h  # keys/values read the ViT
    expected = (
        layers * (self_attention + feed_forward) + layers // 2 * cross_attention + 2 * h + queries * h + linear(h, d)
    )
    assert C.connector_parameter_counts()[C.BLIP2] == expected


def test_counting_allocates_nothing():
    with torch.device("meta"):
        module = C.QFormerConnector(C.blip2_qformer_config(), 4096)
    assert all(p.device.type == "meta" for p in module.parameters())
    assert C.meta_count(C.llava15_projector, 3200, 8192) == 3200 * 8192 + 8192 + 8192 * 8192 + 8192


def test_tiny_qformer_runs_and_gives_a_fixed_number_of_tokens():
    config = C.blip2_qformer_config(
        vision_hidden=24, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    connector = C.QFormerConnector(config, llm_hidden=16, num_query_tokens=5).eval()
    for patches in (10, 50):
        assert connector(torch.randn(2, patches, 24)).shape == (2, 5, 16)


def test_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = C.plot_connector_parameters({C.LLAVA: 4_198_400, C.BLIP2: 108_312_064})
    assert fig.axes[0].get_xscale() == "log"
    fig2 = C.plot_layouts({"prefix": ["image 1", "text"], "placeholder": ["text", "image 1", "image 2"]})
    plt.close(fig)
    plt.close(fig2)


def test_layout_labels_with_one_size_per_image():
    ids = [1, 9, 9, 2, 9, 9, 9, 9, 3]
    assert C.layout_labels(ids, 9, [2, 4]) == ["text", "image 1", "image 1", "text"] + ["image 2"] * 4 + ["text"]


def test_architecture_diagrams_use_the_real_sizes_and_the_tiny_models_own(tiny_path):
    """BLIP-2, LLaVA-1.5 and InternVL2-2B at published sizes; the tiny row read from the checkpoint's config."""
    import json
    import warnings

    import matplotlib.pyplot as plt

    from course_lib.diagrams import architecture_rows, plot_architectures
    from course_lib.tiny_internvl2 import SPEC

    config = json.loads((tiny_path / "config.json").read_text(encoding="utf-8"))
    rows = architecture_rows(config)
    real, tiny = rows["InternVL2-2B"], rows["tiny InternVL2 (the course model)"]
    assert [b.output for b in real[1:4]] == ["n x 1024 x 1024", "n x 256 x 4096", "n x 256 x 2048"]
    vision, llm = SPEC["vision_config"], SPEC["llm_config"]
    assert [b.output for b in tiny[1:4]] == [
        f"n x 1024 x {vision['hidden_size']}",
        f"n x 256 x {4 * vision['hidden_size']}",
        f"n x 256 x {llm['hidden_size']}",
    ]
    assert (
        f"{llm['num_hidden_layers']} layers" in tiny[4].name and f"{vision['num_hidden_layers']} layers" in tiny[1].name
    )
    assert rows["BLIP-2 (OPT-2.7B)"][2].output == "32 x 768" and rows["LLaVA-1.5-7B"][1].output == "576 x 1024"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot_architectures(config)
        fig.canvas.draw()
    assert not [w for w in caught if "missing from" in str(w.message)]
    assert len(fig.axes[0].patches) == sum(len(blocks) for blocks in rows.values())
    plt.close(fig)


def test_new_special_tokens_cost_the_embeddings_and_lm_head_placeholders_cost_nothing():
    from course_lib.connectors import placeholder_row_gradients, special_token_training_cost

    assert special_token_training_cost(151_936, 4096) == 1_244_659_712  # Qwen-7B: the lecture's "1.2 B"
    assert special_token_training_cost(151_936, 4096, tied_embeddings=True) == 151_936 * 4096
    grads = placeholder_row_gradients(vocab_size=10, placeholder_id=3)
    assert grads[3] == 0  # overwritten by the image features: no gradient reaches its embedding
    assert all(grads[i] > 0 for i in (1, 5, 7)) and all(grads[i] == 0 for i in (0, 2, 4, 6, 8, 9))


def test_training_stages_figure():
    import warnings

    import matplotlib.pyplot as plt

    from course_lib.diagrams import PARTS, STATE_COLOURS, TRAINING_STAGES, plot_training_stages

    assert all(len(stage.parts) == len(PARTS) and set(stage.parts) <= set(STATE_COLOURS) for stage in TRAINING_STAGES)
    internvl = [stage.parts for stage in TRAINING_STAGES if stage.model == "InternVL2"]
    assert internvl == [("frozen", "trained", "frozen"), ("trained", "trained", "trained")]  # MLP only, then all
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot_training_stages()
        fig.canvas.draw()
    assert not [w for w in caught if "missing from" in str(w.message)]
    assert len(fig.axes[0].patches) == 3 * len(TRAINING_STAGES)
    plt.close(fig)


def test_internvit_figure_follows_the_lecture():
    import warnings

    import matplotlib.pyplot as plt

    from course_lib.diagrams import INTERNVIT, plot_internvit

    v12 = INTERNVIT["InternViT-6B (v1.2)"]
    assert (v12["layers"] - v12["kept"], v12["image_size"]) == (3, 448)  # the fourth-from-last layer, 224 -> 448
    assert INTERNVIT["InternViT-300M (InternVL2-2B)"]["width"] == 1024
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot_internvit()
        fig.canvas.draw()
    assert not [w for w in caught if "missing from" in str(w.message)]
    assert [t.get_text() for t in fig.axes[1].texts] == ["256", "1024"]
    plt.close(fig)


def test_lesson_02_quotes_the_qformer_count_its_chart_shows():
    """The recap's Q-Former figure is the chart's (108,312,064 -> '108 M'); the paper's 188 M only as the paper's."""
    import json

    from course_lib.config import REPO_ROOT

    path = REPO_ROOT / "notebooks" / "02_architectures_and_connectors.ipynb"
    recap = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][-1]["source"])
    shown = round(C.connector_parameter_counts()[C.BLIP2] / 1e6)
    assert f"Q-Former ({shown} M" in recap, f"{path.name}: the recap should quote the chart's {shown} M"
    assert "188 M" not in recap.replace("paper's 188 M", ""), "188 M is the BLIP-2 paper's count, with its text tower"
