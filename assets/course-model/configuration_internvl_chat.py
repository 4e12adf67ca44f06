"""Configuration of the whole chat model: vision encoder + projector + language model + tiling settings.

Field names and meanings follow InternVL2's config.json so that tools written for the real checkpoint
(XTuner's InternVL_V1_5 dataset and model, LMDeploy) read this one the same way.
"""

from transformers.configuration_utils import PretrainedConfig

from .configuration_intern_vit import InternVisionConfig
from .configuration_internlm2 import InternLM2Config


class InternVLChatConfig(PretrainedConfig):
    model_type = "internvl_chat"
    is_composition = True

    def __init__(
        self,
        vision_config=None,
        llm_config=None,
        use_backbone_lora=0,
        use_llm_lora=0,
        select_layer=-1,
        force_image_size=448,
        downsample_ratio=0.5,
        template="internlm2-chat",
        system_message=None,
        dynamic_image_size=True,
        use_thumbnail=True,
        ps_version="v2",
        min_dynamic_patch=1,
        max_dynamic_patch=12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vision_config, InternVisionConfig):
            self.vision_config = vision_config
        else:
            self.vision_config = InternVisionConfig(**(vision_config or {}))
        if isinstance(llm_config, InternLM2Config):
            self.llm_config = llm_config
        else:
            llm_config = dict(llm_config or {})
            architecture = (llm_config.get("architectures") or ["InternLM2ForCausalLM"])[0]
            if architecture != "InternLM2ForCausalLM":
                raise ValueError(
                    f"llm_config.architectures[0] is {architecture!r}; this model code implements "
                    "InternLM2ForCausalLM only."
                )
            llm_config.setdefault("architectures", ["InternLM2ForCausalLM"])
            self.llm_config = InternLM2Config(**llm_config)
        # Whether the output head shares the input embeddings is the language model's own setting. Without this
        # line the top level keeps PretrainedConfig's default (True), and transformers from 4.5x ties the language
        # model's `output.weight` to its embeddings when loading: the checkpoint's trained head is dropped and the
        # model answers noise. The top level follows llm_config, whatever an older config.json says.
        self.tie_word_embeddings = self.llm_config.tie_word_embeddings
        self.use_backbone_lora = use_backbone_lora
        self.use_llm_lora = use_llm_lora
        self.select_layer = select_layer
        self.force_image_size = force_image_size
        self.downsample_ratio = downsample_ratio
        self.template = template
        self.system_message = system_message
        self.dynamic_image_size = dynamic_image_size
        self.use_thumbnail = use_thumbnail
        self.ps_version = ps_version
        self.min_dynamic_patch = min_dynamic_patch
        self.max_dynamic_patch = max_dynamic_patch
        if ps_version not in ("v1", "v2"):
            raise ValueError(f"ps_version must be 'v1' or 'v2', got {ps_version!r}")

    def to_dict(self):
        output = super().to_dict()
        output["vision_config"] = self.vision_config.to_dict()
        output["llm_config"] = self.llm_config.to_dict()
        output["model_type"] = self.__class__.model_type
        return output
