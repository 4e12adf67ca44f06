"""Model answers to the lessons' exercises (course_lib.exercises), one lesson each: the code that goes
between an exercise cell's markers. CI executes every notebook with these filled in, so each one is proven to
pass its check; a student's notebook never shows them."""

SOLUTIONS = {
    "01": """tokens_per_tile = 256                        # (448 / 14)² = 1024 patches, pixel shuffle keeps 1 in 4
tokens_without_shuffle = 1024 * len(tiles)   # every tile, unshuffled
""",
    "02": """llava15_13b = 1024 * 5120 + 5120 + 5120 * 5120 + 5120    # Linear(1024, 5120), GELU, Linear(5120, 5120)


def my_replace(input_ids, text_embeds, image_embeds, placeholder_id):
    rows, cols = torch.where(input_ids == placeholder_id)
    out = text_embeds.clone()
    out[rows, cols] = image_embeds.reshape(-1, text_embeds.shape[-1])
    return out
""",
    "03": """my_itg_mask = [
    # q1 q2 q3 t1 t2 t3 t4
    [1, 1, 1, 0, 0, 0, 0],  # q1
    [1, 1, 1, 0, 0, 0, 0],  # q2
    [1, 1, 1, 0, 0, 0, 0],  # q3
    [1, 1, 1, 1, 0, 0, 0],  # t1
    [1, 1, 1, 1, 1, 0, 0],  # t2
    [1, 1, 1, 1, 1, 1, 0],  # t3
    [1, 1, 1, 1, 1, 1, 1],  # t4
]
""",
    "04": """tokens_at_quarter = 64               # 32 x 32 patches in 4 x 4 blocks: 8 x 8 tokens
patches_in_token_1_0 = [8, 9, 12, 13]  # row 1 of tokens = patch rows 2-3, column 0 = patch columns 0-1
""",
    "05": "banner_tiles = 11  # a 10 x 1 grid, plus the thumbnail\n",
    "06": "context_tokens = 768  # a 2 x 1 grid plus the thumbnail = 3 tiles, x 256\n",
    "07": "sessions = 26\n",
    "08": "last_wait_seconds = 8  # admitted together, answered one after another: 4 x 2 s\n",
    "09": 'answer = "B"\n',
    "10": 'your_answer = math.ceil(records / BATCH_SIZE) * PROFILES[plan.profile]["max_epochs"]\n',
    "11": "your_answer = 0.87\n",
    "01b": "patches_at_224 = (224 // 14) ** 2\n",
    "02b": "new_token_cost = 2 * 92_553 * 2048  # the input embedding and lm_head\n",
    "10b": "zero3_four_gpus = 16 * 2.2e9 / 4 / 1e9  # GB\n",
    "02c": """llava_stage2_trained = {"connector", "language model"}
det_decoder_input = (8, model.language_model.config.hidden_size)  # one hidden state per [DET] query
""",
    "06b": "tokens_saved = sum(c.prompt_tokens for c in costs) - sum(c.new_tokens for c in costs)\n",
    "11b": """your_precision = 45 / 70
your_f1 = 2 * your_precision * (45 / 50) / (your_precision + 45 / 50)
""",
}
