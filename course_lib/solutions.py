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
    "03b": """def my_itc(num_queries, num_text):
    is_query = torch.arange(num_queries + num_text) < num_queries
    return is_query[:, None] == is_query[None, :]  # same tower: queries with queries, text with text


def my_itm(num_queries, num_text):
    size = num_queries + num_text
    return torch.ones(size, size, dtype=torch.bool)  # everyone sees everyone


def my_itg(num_queries, num_text):
    size = num_queries + num_text
    mask = torch.ones(size, size, dtype=torch.bool).tril()  # causal: a row sees the columns up to itself
    mask[:, :num_queries] = True  # every position sees every query (the image summary) ...
    mask[:num_queries, num_queries:] = False  # ... and the queries never see the text
    return mask
""",
    "04b": """def my_pixel_shuffle(x):
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c)  # (n, block row, row in block, block column, column in block, c)
    x = x.permute(0, 1, 3, 2, 4, 5)  # the two block axes first, then the position inside the block
    return x.reshape(n, h // 2, w // 2, 4 * c)  # channels: top-left, top-right, bottom-left, bottom-right
""",
    "05b": """def my_grid(width, height, grids, image_size=448):
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for columns, rows in grids:  # fewest tiles first
        diff = abs(aspect - columns / rows)
        if diff < best_diff:
            best, best_diff = (columns, rows), diff
        elif diff == best_diff and width * height > 0.5 * image_size * image_size * columns * rows:
            best = (columns, rows)  # a tie goes to the bigger grid only if the picture fills half of it
    return best
""",
    "06c": """def my_left_pad(token_lists, pad_id):
    longest = max(len(ids) for ids in token_lists)
    input_ids = [[pad_id] * (longest - len(ids)) + list(ids) for ids in token_lists]
    attention_mask = [[0] * (longest - len(ids)) + [1] * len(ids) for ids in token_lists]
    return torch.tensor(input_ids), torch.tensor(attention_mask)
""",
    "07b": """def my_messages(question, png_bytes, max_dynamic_patch):
    url = "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")
    image = {"type": "image_url", "image_url": {"url": url, "max_dynamic_patch": max_dynamic_patch}}
    return [{"role": "user", "content": [image, {"type": "text", "text": question}]}]  # the picture first
""",
    "09b": """def my_xtuner_record(item, image):
    answer = item["choices"][int(item["answer"])]  # "answer" is the option's number, as a string
    return {
        "image": image,
        "conversations": [
            {"from": "human", "value": item["question"] + "\\n<image>"},
            {"from": "gpt", "value": answer + "，图中的菜是" + item["food_name"]},
        ],
    }
""",
    "11c": """def my_wilson(correct, n, z=1.96):
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def my_mcnemar(fixed, broken):
    n = fixed + broken  # only the questions that changed count
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1)) / 2**n
    return min(1.0, 2 * tail)
""",
    "10c": """def my_lora_forward(x, weight, bias, lora_A, lora_B, alpha, r):
    out = x @ weight.T + (alpha / r) * (x @ lora_A.T @ lora_B.T)  # W x + (alpha / r) B A x, never forming B A
    return out if bias is None else out + bias
""",
}
