"""The InternVL2 chat model: vision encoder -> pixel shuffle -> mlp1 projector -> language model.

One 448x448 tile gives 1024 patch features; pixel shuffle at downsample_ratio 0.5 folds each 2x2 block of
patches into one token with 4x the channels (1024 -> 256 tokens); mlp1 maps them into the language model's
embedding space, where they replace the <IMG_CONTEXT> placeholders of the prompt
"<img>" + "<IMG_CONTEXT>" * 256 * tiles + "</img>". The public API (extract_feature, chat, batch_chat,
generate, forward(..., labels)) behaves like InternVL2's, so course code and XTuner use both alike.
"""

import importlib.util
import warnings
from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_internvl_chat import InternVLChatConfig
from .conversation import get_conv_template
from .modeling_intern_vit import InternVisionModel
from .modeling_internlm2 import InternLM2ForCausalLM

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig
    main_input_name = "pixel_values"
    base_model_prefix = "language_model"
    _no_split_modules = ["InternVisionModel", "InternLM2DecoderLayer"]
    # gradient_checkpointing_enable() on the chat model reaches both sub-models (each has the flag).
    supports_gradient_checkpointing = True

    def __init__(self, config: InternVLChatConfig, vision_model=None, language_model=None, use_flash_attn=True):
        super().__init__(config)
        image_size = config.force_image_size or config.vision_config.image_size
        self.patch_size = config.vision_config.patch_size
        self.select_layer = config.select_layer
        self.template = config.template
        self.downsample_ratio = config.downsample_ratio
        self.ps_version = config.ps_version
        self.num_image_token = int((image_size // self.patch_size) ** 2 * (config.downsample_ratio**2))

        # Without the flash-attn package the language model falls back to eager attention; with it,
        # torch's fused scaled-dot-product attention (which uses flash kernels on CUDA) is used.
        use_flash_attn = use_flash_attn and flash_attn_installed()
        requested = getattr(config.llm_config, "attn_implementation", "eager")
        if requested == "flash_attention_2":
            config.llm_config.attn_implementation = "sdpa" if use_flash_attn else "eager"
        config.vision_config.use_flash_attn = use_flash_attn

        self.vision_model = vision_model or InternVisionModel(config.vision_config)
        self.language_model = language_model or InternLM2ForCausalLM(config.llm_config)

        vit_hidden = config.vision_config.hidden_size
        llm_hidden = config.llm_config.hidden_size
        folded = vit_hidden * int(1 / self.downsample_ratio) ** 2
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(folded), nn.Linear(folded, llm_hidden), nn.GELU(), nn.Linear(llm_hidden, llm_hidden)
        )

        self.img_context_token_id = None
        self.conv_template = get_conv_template(self.template)
        self.system_message = config.system_message or self.conv_template.system_message
        # use_backbone_lora / use_llm_lora hold the LoRA rank (0: none); alpha is twice the rank, as upstream.
        if config.use_backbone_lora:
            self.wrap_backbone_lora(r=config.use_backbone_lora, lora_alpha=2 * config.use_backbone_lora)
        if config.use_llm_lora:
            self.wrap_llm_lora(r=config.use_llm_lora, lora_alpha=2 * config.use_llm_lora)
        self.post_init()

    # ---- LoRA (peft) and the output head, as InternVL2's own class offers them --------------------
    def wrap_backbone_lora(self, r: int = 128, lora_alpha: int = 256, lora_dropout: float = 0.05) -> None:
        """LoRA on the vision encoder's attention and MLP linears (qkv, proj, fc1, fc2)."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
        )
        self.vision_model = get_peft_model(self.vision_model, config)

    def wrap_llm_lora(self, r: int = 128, lora_alpha: int = 256, lora_dropout: float = 0.05) -> None:
        """LoRA on InternLM2's attention (wqkv, wo) and feed-forward (w1, w2, w3) linears."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            task_type="CAUSAL_LM",
            target_modules=["attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"],
        )
        self.language_model = get_peft_model(self.language_model, config)
        # The embeddings are frozen, so their outputs must ask for gradients or nothing flows back to LoRA.
        self.language_model.enable_input_require_grads()

    @property
    def lm_head(self) -> nn.Module:
        """The language model's output projection (InternLM2 names it `output`). Deliberately not
        get_output_embeddings(): on this outer model transformers would tie it to the input embeddings."""
        return self.language_model.get_output_embeddings()

    def _init_weights(self, module):
        # Sub-models initialise themselves; here only the projector.
        if isinstance(module, nn.Linear) and any(module is m for m in self.mlp1.modules()):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.llm_config.initializer_range)
            nn.init.zeros_(module.bias)

    # ---- vision side ---------------------------------------------------------------------------
    def pixel_shuffle(self, x: torch.Tensor, scale_factor: float = 0.5) -> torch.Tensor:
        """(N, W, H, C) -> (N, W*s, H*s, C/s^2): fold s^-1 x s^-1 neighbourhoods into the channels."""
        n, w, h, c = x.size()
        x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.permute(0, 2, 1, 3).contiguous()
        x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
        if self.ps_version == "v1":
            warnings.warn("ps_version v1 keeps the transposed layout; checkpoints trained with v2 expect v2")
        else:
            x = x.permute(0, 2, 1, 3).contiguous()
        return x

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(tiles, 3, 448, 448) -> (tiles, num_image_token, llm_hidden)."""
        if self.select_layer == -1:
            vit_embeds = self.vision_model(pixel_values=pixel_values, return_dict=True).last_hidden_state
        else:
            vit_embeds = self.vision_model(
                pixel_values=pixel_values, output_hidden_states=True, return_dict=True
            ).hidden_states[self.select_layer]
        vit_embeds = vit_embeds[:, 1:, :]  # drop CLS
        side = int(vit_embeds.shape[1] ** 0.5)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], side, side, -1)
        vit_embeds = self.pixel_shuffle(vit_embeds, scale_factor=self.downsample_ratio)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], -1, vit_embeds.shape[-1])
        return self.mlp1(vit_embeds)

    def _merge_image_embeds(self, input_ids, input_embeds, vit_embeds):
        """Write image features into the rows of <IMG_CONTEXT> tokens, in order."""
        if self.img_context_token_id is None:
            raise ValueError("img_context_token_id is not set: use tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')")
        batch, length, channels = input_embeds.shape
        flat = input_embeds.reshape(batch * length, channels)
        selected = input_ids.reshape(batch * length) == self.img_context_token_id
        vit_embeds = vit_embeds.reshape(-1, channels).to(flat.dtype)
        if int(selected.sum()) != vit_embeds.shape[0]:
            raise ValueError(
                f"the prompt has {int(selected.sum())} {IMG_CONTEXT_TOKEN} tokens but the images give "
                f"{vit_embeds.shape[0]} features ({self.num_image_token} per tile); build the prompt with "
                f"num_image_token * tiles context tokens per image"
            )
        flat = flat.clone()
        flat[selected] = vit_embeds
        return flat.reshape(batch, length, channels)

    # ---- training forward ----------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        input_ids: torch.LongTensor = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        image_flags: Optional[torch.LongTensor] = None,
        past_key_values: Optional[List[torch.FloatTensor]] = None,
        labels: Optional[torch.LongTensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[Tuple, CausalLMOutputWithPast]:
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        input_embeds = self.language_model.get_input_embeddings()(input_ids)
        vit_embeds = self.extract_feature(pixel_values)
        if image_flags is not None:  # text-only samples carry an all-zero dummy tile
            vit_embeds = vit_embeds[image_flags.reshape(-1) == 1]
        input_embeds = self._merge_image_embeds(input_ids, input_embeds, vit_embeds)
        return self.language_model(
            inputs_embeds=input_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            labels=labels,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=return_dict,
        )

    # ---- inference -----------------------------------------------------------------------------
    def _build_query(self, question: str, history, num_patches_list) -> Tuple[str, "object"]:
        template = get_conv_template(self.template)
        template.system_message = self.system_message
        for old_question, old_answer in history or []:
            template.append_message(template.roles[0], old_question)
            template.append_message(template.roles[1], old_answer)
        template.append_message(template.roles[0], question)
        template.append_message(template.roles[1], None)
        query = template.get_prompt()
        if query.count("<image>") != len(num_patches_list):
            raise ValueError(
                f"the conversation has {query.count('<image>')} <image> placeholders for {len(num_patches_list)} "
                "images: put one <image> per image in the question (or the first question of the history)"
            )
        for num_patches in num_patches_list:
            image_tokens = IMG_START_TOKEN + IMG_CONTEXT_TOKEN * self.num_image_token * num_patches + IMG_END_TOKEN
            query = query.replace("<image>", image_tokens, 1)
        return query, template

    def chat(
        self,
        tokenizer,
        pixel_values,
        question,
        generation_config,
        history=None,
        return_history=False,
        num_patches_list=None,
        IMG_START_TOKEN=IMG_START_TOKEN,
        IMG_END_TOKEN=IMG_END_TOKEN,
        IMG_CONTEXT_TOKEN=IMG_CONTEXT_TOKEN,
        verbose=False,
    ):
        """One turn of conversation. With history=None and an image, '<image>\\n' is put before the question."""
        if history is None and pixel_values is not None and "<image>" not in question:
            question = "<image>\n" + question
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else []
        if pixel_values is not None and sum(num_patches_list) != pixel_values.shape[0]:
            raise ValueError(
                f"num_patches_list sums to {sum(num_patches_list)} but pixel_values has {pixel_values.shape[0]} tiles"
            )
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        history = [] if history is None else list(history)
        query, template = self._build_query(question, history, num_patches_list)
        if verbose:
            print(query.replace(IMG_CONTEXT_TOKEN * self.num_image_token, "<IMG_CONTEXT>*" + str(self.num_image_token)))
        model_inputs = tokenizer(query, return_tensors="pt")
        response = self._generate_answers(tokenizer, pixel_values, model_inputs, generation_config, template.sep)[0]
        history.append((question, response))
        return (response, history) if return_history else response

    def batch_chat(
        self,
        tokenizer,
        pixel_values,
        questions,
        generation_config,
        num_patches_list=None,
        history=None,
        return_history=False,
        IMG_START_TOKEN=IMG_START_TOKEN,
        IMG_END_TOKEN=IMG_END_TOKEN,
        IMG_CONTEXT_TOKEN=IMG_CONTEXT_TOKEN,
        verbose=False,
        image_counts=None,
    ):
        """Several independent single-turn questions at once, one image each (left-padded batch)."""
        if history is not None or return_history:
            raise NotImplementedError("batch_chat answers single-turn questions; use chat for multi-turn")
        if image_counts is not None:
            num_patches_list = image_counts
        if num_patches_list is None or len(num_patches_list) != len(questions):
            raise ValueError("batch_chat needs num_patches_list with one entry (tiles of that image) per question")
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        queries = []
        template = None
        for question, num_patches in zip(questions, num_patches_list):
            if pixel_values is not None and "<image>" not in question:
                question = "<image>\n" + question
            query, template = self._build_query(question, None, [num_patches])
            queries.append(query)
        previous_side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            model_inputs = tokenizer(queries, return_tensors="pt", padding=True)
        finally:
            tokenizer.padding_side = previous_side
        return self._generate_answers(tokenizer, pixel_values, model_inputs, generation_config, template.sep)

    def _generate_answers(self, tokenizer, pixel_values, model_inputs, generation_config, sep) -> List[str]:
        """Generate until the template's separator token and decode each answer up to it."""
        sep = sep.strip()
        device = self.language_model.get_input_embeddings().weight.device
        generation_config = dict(generation_config)  # the caller's dict is not changed
        generation_config["eos_token_id"] = tokenizer.convert_tokens_to_ids(sep)
        output_ids = self.generate(
            pixel_values=pixel_values,
            input_ids=model_inputs["input_ids"].to(device),
            attention_mask=model_inputs["attention_mask"].to(device),
            **generation_config,
        )
        return [text.split(sep)[0].strip() for text in tokenizer.batch_decode(output_ids, skip_special_tokens=True)]

    @torch.no_grad()
    def generate(
        self,
        pixel_values: Optional[torch.FloatTensor] = None,
        input_ids: Optional[torch.FloatTensor] = None,
        attention_mask: Optional[torch.LongTensor] = None,
        visual_features: Optional[torch.FloatTensor] = None,
        generation_config=None,
        output_hidden_states: Optional[bool] = None,
        **generate_kwargs,
    ) -> torch.LongTensor:
        input_embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is not None or visual_features is not None:
            if visual_features is not None:
                vit_embeds = visual_features
            else:
                dtype = self.vision_model.embeddings.patch_embedding.weight.dtype
                vit_embeds = self.extract_feature(pixel_values.to(device=input_embeds.device, dtype=dtype))
            input_embeds = self._merge_image_embeds(input_ids, input_embeds, vit_embeds)
        generate_kwargs.setdefault("pad_token_id", self.language_model.config.pad_token_id)
        return self.language_model.generate(
            inputs_embeds=input_embeds,
            attention_mask=attention_mask,
            generation_config=generation_config,
            output_hidden_states=output_hidden_states,
            use_cache=True,
            **generate_kwargs,
        )
