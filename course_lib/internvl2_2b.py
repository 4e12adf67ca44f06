"""InternVL2-2B's published sizes (its config.json), in one place: the numbers the lessons draw and count with
when the real checkpoint is not on the machine."""

IMAGE_SIZE, PATCH_SIZE, DOWNSAMPLE_RATIO = 448, 14, 0.5
VISION = dict(layers=24, hidden=1024)  # InternViT-300M-448px
LLM = dict(
    layers=24,
    hidden=2048,
    intermediate=8192,
    heads=16,
    kv_heads=8,
    head_dim=128,  # InternLM2-chat-1.8B
    vocab_size=92_553,
)  # InternLM2's 92,544 tokens and InternVL2's 9 added ones (<img>, <IMG_CONTEXT>, ...)
PARAMETERS = 2.2e9  # the whole model, about
