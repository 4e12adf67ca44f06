"""The Q-Former masks are checked by what they do to a tiny Q-Former's outputs, not against matrix literals."""

import pytest
import torch

from course_lib.qformer_masks import (
    TinyQFormer,
    fake_image_features,
    information_flow,
    itc_mask,
    itg_mask,
    itm_mask,
    run_qformer,
    stage1_masks,
    to_qformer_mask,
)

VOCAB = 100
NUM_QUERIES = 4
TEXT_LENGTH = 6
UNCHANGED = 1e-6  # masked positions get a softmax weight of exactly 0, so "unchanged" is exact up to float noise
CHANGED = 1e-3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def qformer():
    return TinyQFormer(vocab_size=VOCAB, num_queries=NUM_QUERIES, hidden_size=32, num_layers=2, image_dim=24, seed=0)


@pytest.fixture(scope="module")
def inputs(qformer):
    """(queries, text embeddings, image features) for one example, seeded."""
    ids = torch.randint(3, VOCAB, (1, TEXT_LENGTH), generator=torch.Generator().manual_seed(1))
    return qformer.queries(), qformer.embed_text(ids).detach(), fake_image_features(16, 24, seed=2)


def change(a, b):
    return (a - b).abs().max().item()


def run(qformer, queries, text, image, task):
    mask = stage1_masks(queries.shape[1], text.shape[1])[task]
    return run_qformer(qformer, queries, text, image, mask)


def other_text(text, positions=None, seed=3):
    """text with fresh embeddings at the given positions (all of them by default)."""
    noise = torch.randn(text.shape, generator=torch.Generator().manual_seed(seed))
    changed = text.clone()
    positions = range(text.shape[1]) if positions is None else positions
    for position in positions:
        changed[:, position] = noise[:, position]
    return changed


@pytest.mark.parametrize("task, queries_move", [("ITC", False), ("ITG", False), ("ITM", True)])
def test_query_outputs_see_the_text_only_under_itm(qformer, inputs, task, queries_move):
    queries, text, image = inputs
    before = run(qformer, queries, text, image, task)
    after = run(qformer, queries, other_text(text), image, task)
    assert change(before.text, after.text) > CHANGED  # the text outputs see their own input in every task
    if queries_move:
        assert change(before.queries, after.queries) > CHANGED
    else:
        assert change(before.queries, after.queries) < UNCHANGED


@pytest.mark.parametrize("t", range(TEXT_LENGTH - 1))
def test_itg_text_output_ignores_later_tokens(qformer, inputs, t):
    queries, text, image = inputs
    before = run(qformer, queries, text, image, "ITG")
    after = run(qformer, queries, other_text(text, positions=range(t + 1, TEXT_LENGTH)), image, "ITG")
    assert change(before.text[:, : t + 1], after.text[:, : t + 1]) < UNCHANGED
    assert change(before.text[:, t + 1 :], after.text[:, t + 1 :]) > CHANGED


@pytest.mark.parametrize("t", range(1, TEXT_LENGTH))
def test_itg_text_output_reads_earlier_tokens(qformer, inputs, t):
    queries, text, image = inputs
    before = run(qformer, queries, text, image, "ITG")
    after = run(qformer, queries, other_text(text, positions=[t - 1]), image, "ITG")
    for later in range(t, TEXT_LENGTH):
        assert change(before.text[:, later], after.text[:, later]) > CHANGED, f"position {later} ignores {t - 1}"


@pytest.mark.parametrize("task, text_moves", [("ITC", False), ("ITM", True), ("ITG", True)])
def test_text_outputs_see_image_and_queries_except_under_itc(qformer, inputs, task, text_moves):
    queries, text, image = inputs
    before = run(qformer, queries, text, image, task)
    new_image = run(qformer, queries, text, fake_image_features(16, 24, seed=5), task)
    new_queries = run(
        qformer, queries + torch.randn(queries.shape, generator=torch.Generator().manual_seed(6)), text, image, task
    )
    assert change(before.queries, new_image.queries) > CHANGED  # queries always read the image (cross-attention)
    for after in (new_image, new_queries):
        if text_moves:
            assert change(before.text, after.text) > CHANGED
        else:
            assert change(before.text, after.text) < UNCHANGED


def test_information_flow_on_tokenized_text(tiny_path):
    """The lesson's demo with the kit's tokenizer: "dumplings" -> "noodles" changes only the last token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_path))
    ids = tokenizer(["a bowl of dumplings", "a bowl of noodles"], return_tensors="pt").input_ids
    model = TinyQFormer(vocab_size=len(tokenizer), num_queries=8, seed=0)
    table = information_flow(model, ids[:1], ids[1:], fake_image_features(seed=0), fake_image_features(seed=1))
    moved = {task: tuple(value > UNCHANGED for value in row.values()) for task, row in table.items()}
    # columns: queries <- text, earlier text <- later text, text <- image
    assert moved == {"ITC": (False, True, False), "ITM": (True, True, True), "ITG": (False, False, True)}


def test_same_seed_same_model():
    a, b = TinyQFormer(vocab_size=VOCAB, seed=7), TinyQFormer(vocab_size=VOCAB, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.query_tokens, TinyQFormer(vocab_size=VOCAB, seed=8).query_tokens)


@pytest.mark.parametrize("num_queries, text_length", [(1, 1), (1, 5), (4, 1), (3, 4), (32, 20)])
def test_mask_shapes(num_queries, text_length):
    size = num_queries + text_length
    for task, mask in stage1_masks(num_queries, text_length).items():
        assert mask.shape == (size, size) and mask.dtype == torch.bool, task
        assert mask.diagonal().all(), f"{task}: every position must at least see itself"
        assert to_qformer_mask(mask, batch_size=2).shape == (2, size, size)


@pytest.mark.parametrize("build", [itc_mask, itm_mask, itg_mask])
@pytest.mark.parametrize("num_queries, text_length", [(0, 4), (4, 0), (-1, 3), (3, -2), (2.5, 3), (True, 3)])
def test_bad_sizes_raise(build, num_queries, text_length):
    with pytest.raises(ValueError, match="positive integer"):
        build(num_queries, text_length)


def test_run_rejects_a_mask_of_the_wrong_size(qformer, inputs):
    queries, text, image = inputs
    with pytest.raises(ValueError, match="Q\\+T"):
        run_qformer(qformer, queries, text, image, itm_mask(NUM_QUERIES, TEXT_LENGTH + 1))
