"""NExT-GPT: the pipeline diagram draws, and the decoding-side alignment trains only the output projection."""

import pytest
import torch

from course_lib import nextgpt


@pytest.fixture(scope="module")
def aligned(tiny):
    model, tokenizer = tiny
    llm = model.language_model
    before = {name: p.detach().clone() for name, p in llm.state_dict().items()}
    grads_before = {name: p.requires_grad for name, p in llm.named_parameters()}
    run = nextgpt.align_output_projection(llm, tokenizer, steps=150, seed=0)
    return run, llm, before, grads_before


def test_loss_falls_by_a_large_factor_and_signals_find_their_captions(aligned):
    run, *_ = aligned
    assert len(run.losses) == 150
    assert run.losses[-1] < run.losses[0] / 20, (run.losses[0], run.losses[-1])
    assert run.retrieval_after == 1.0 and run.retrieval_before < 0.5
    k, hidden = nextgpt.SIGNAL_TOKENS["image"], 256
    assert run.signal_states.shape == (len(run.captions), k, hidden)
    assert run.targets.shape == (len(run.captions), 16, 32)


def test_only_the_output_projection_trains(aligned, tiny):
    run, llm, before, grads_before = aligned
    after = llm.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before), "the LLM changed"
    assert {name: p.requires_grad for name, p in llm.named_parameters()} == grads_before
    assert not any(p.requires_grad for p in run.text_encoder.parameters())
    # The frozen text encoder is rebuilt from the same seed: its weights and caption embeddings did not move.
    again = nextgpt.align_output_projection(llm, tiny[1], steps=0, seed=0)
    assert all(
        torch.equal(a, b)
        for a, b in zip(run.text_encoder.state_dict().values(), again.text_encoder.state_dict().values())
    )
    assert torch.equal(run.targets, again.targets) and torch.equal(run.signal_states, again.signal_states)
    # ... while the projector did move away from its seeded start.
    moved = [
        not torch.equal(a, b)
        for a, b in zip(run.projector.state_dict().values(), again.projector.state_dict().values())
    ]
    assert all(moved)
    assert run.info["trainable_parameters"] == sum(p.numel() for p in run.projector.parameters())


def test_deterministic_and_leaves_global_rng_alone(tiny):
    model, tokenizer = tiny
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = nextgpt.align_output_projection(model.language_model, tokenizer, steps=20, seed=1)
    assert torch.equal(torch.rand(3), expected_next)
    second = nextgpt.align_output_projection(model.language_model, tokenizer, steps=20, seed=1)
    assert first.losses == second.losses


def test_output_projector_shapes():
    projector = nextgpt.OutputProjector(llm_hidden=40, out_width=12, out_len=7, width=16)
    assert projector(torch.randn(3, 4, 40)).shape == (3, 7, 12)
    encoder = nextgpt.TinyTextEncoder(vocab_size=50, width=8, max_len=6)
    ids = encoder.pad([[3, 4, 5], list(range(1, 10))])
    assert ids.shape == (2, 6) and ids[0, 3:].eq(0).all()
    assert encoder(ids).shape == (2, 6, 8)


def test_signal_tokens_and_diagram():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert nextgpt.signal_token_names("image") == ["[IMG0]", "[IMG1]", "[IMG2]", "[IMG3]"]
    assert len(nextgpt.signal_token_names("video")) == 24 and nextgpt.signal_token_names("audio")[-1] == "[AUD7]"
    fig = nextgpt.draw_pipeline()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in (
        "ImageBind",
        "input\nprojection",
        "LLM",
        "[IMG0]..[IMG3]",
        "output projection",
        "Stable Diffusion",
        "AudioLDM",
        "Zeroscope",
    ):
        assert word in texts, word
    plt.close(fig)


def test_visionllm_super_link_encodes_the_task_queries_in_context(tiny):
    """VisionLLM v2's routing: the task's queries follow the routing token, and their hidden states (what the
    decoder reads) depend on the conversation before them."""
    import pytest
    import torch

    from course_lib.visionllm import ROUTES, TaskQueries, super_link

    model, tokenizer = tiny
    hidden = model.language_model.config.hidden_size
    queries = TaskQueries(hidden, {"[DET]": 8, "[SEG]": 4})
    boxes = super_link(model.language_model, tokenizer, "框出图中的饺子 [DET]", "[DET]", queries)
    masks = super_link(model.language_model, tokenizer, "框出图中的饺子 [SEG]", "[SEG]", queries)
    assert boxes.shape == (8, hidden) and masks.shape == (4, hidden)
    other = super_link(model.language_model, tokenizer, "框出图中的月饼 [DET]", "[DET]", queries)
    assert not torch.allclose(boxes, other)  # the same queries, another request: another decoder input
    assert set(ROUTES) == {"[DET]", "[SEG]", "[POSE]", "[GEN]"}
    with pytest.raises(ValueError, match="must end with the routing token"):
        super_link(model.language_model, tokenizer, "[DET] 框出饺子", "[DET]", queries)
