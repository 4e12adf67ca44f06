"""Build the tiny model's tokenizer offline: a byte-level BPE trained on corpus.py.

Special tokens mirror InternVL2's tokenizer: <unk>=0, <s>=1 (added before every encoded text, like
InternLM2's add_bos_token), </s>=2 (also the pad token), then the chat and image markers, each a
single token. The saved folder loads with AutoTokenizer as a PreTrainedTokenizerFast.
"""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .corpus import SYSTEM_MESSAGES, corpus_lines

BASE_SPECIAL = ["<unk>", "<s>", "</s>"]
CHAT_SPECIAL = [
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
]

# Renders exactly the prompt InternVLChatModel.chat builds (and XTuner's internlm2_chat template trains
# on): no newline after <|im_end|>. The default system message is the checkpoint's own.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = default_system %}{% set turns = messages %}{% endif %}"
    "{{ '<|im_start|>system\\n' + system + '<|im_end|>' }}"
    "{% for message in turns %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_template_for(system_message: str) -> str:
    escaped = system_message.replace("\\", "\\\\").replace("'", "\\'")
    return "{% set default_system = '" + escaped + "' %}" + CHAT_TEMPLATE


def train_tokenizer(vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=BASE_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_lines(), trainer=trainer)
    tokenizer.add_special_tokens(CHAT_SPECIAL)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    return tokenizer


def build_tokenizer(
    out_dir: Path, vocab_size: int, system_message: str = SYSTEM_MESSAGES[0]
) -> PreTrainedTokenizerFast:
    """Train and save the tokenizer into out_dir; returns the transformers tokenizer."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(vocab_size),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        additional_special_tokens=CHAT_SPECIAL,
        model_max_length=8192,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = chat_template_for(system_message)
    fast.save_pretrained(str(out_dir))
    return fast
