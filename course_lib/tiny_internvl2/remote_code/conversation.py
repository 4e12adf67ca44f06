"""Chat templates: how a list of turns becomes the prompt string the language model reads.

Only the templates this model family needs are registered. The "internlm2-chat" layout is

    <|im_start|>system\n{system}<|im_end|><|im_start|>user\n{question}<|im_end|><|im_start|>assistant\n

(turns joined with no newline after <|im_end|>), which is also the layout XTuner's internlm2_chat
template trains on.
"""

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

INTERNVL2_SYSTEM_MESSAGE = (
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
)


@dataclass
class Conversation:
    name: str
    system_template: str
    system_message: str
    roles: Tuple[str, str]
    sep: str
    stop_token_ids: List[int] = field(default_factory=list)
    messages: List[List[Optional[str]]] = field(default_factory=list)

    def append_message(self, role: str, message: Optional[str]) -> None:
        self.messages.append([role, message])

    def get_prompt(self) -> str:
        prompt = self.system_template.format(system_message=self.system_message) + self.sep
        for role, message in self.messages:
            # None (the turn to answer) and "" (an empty answer) both write the role alone, as upstream.
            prompt += role + message + self.sep if message else role
        return prompt

    def copy(self) -> "Conversation":
        return replace(self, messages=[list(m) for m in self.messages], stop_token_ids=list(self.stop_token_ids))


conv_templates: Dict[str, Conversation] = {}


def register_conv_template(template: Conversation, override: bool = False) -> None:
    if template.name in conv_templates and not override:
        raise ValueError(f"chat template {template.name!r} is already registered")
    conv_templates[template.name] = template


def get_conv_template(name: str) -> Conversation:
    if name not in conv_templates:
        raise KeyError(f"unknown chat template {name!r}; known: {sorted(conv_templates)}")
    return conv_templates[name].copy()


register_conv_template(
    Conversation(
        name="internlm2-chat",
        system_template="<|im_start|>system\n{system_message}",
        system_message=INTERNVL2_SYSTEM_MESSAGE,
        roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
        sep="<|im_end|>",
    )
)
