"""An InternLM2-style causal language model.

Token ids -> tok_embeddings -> N decoder layers (RMSNorm, grouped-query attention with one packed wqkv
projection and rotary positions, RMSNorm, SwiGLU feed-forward w1/w3/w2) -> norm -> output head.
Parameter names and the wqkv packing match InternLM2 checkpoints: for every key/value head the packed
projection holds its group of query heads, then its key head, then its value head.
"""

import math
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import CrossEntropyLoss
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_internlm2 import InternLM2Config

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
# transformers 5 renamed the key/value cache from `past_key_values` to `cache` in generate() and in model outputs.
# This model takes either name and returns the one the installed transformers uses, so it generates under both.
CACHE = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class InternLM2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(dtype)


class InternLM2RotaryEmbedding(nn.Module):
    """cos/sin tables for rotary position embedding, computed for the given position ids."""

    def __init__(self, dim: int, base: float):
        super().__init__()
        self.dim, self.base = dim, base

    @property
    def inv_freq(self) -> torch.Tensor:
        # Computed when used, not kept as a buffer: transformers 5 builds the model on the meta device and fills
        # in only what the checkpoint holds, so a non-persistent buffer would be left uninitialised memory.
        return 1.0 / (self.base ** (torch.arange(0, self.dim, 2, dtype=torch.int64).float() / self.dim))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :].to(x.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x):
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, kv_heads, L, d) -> (B, kv_heads * groups, L, d): each key/value head serves its query group."""
    if groups == 1:
        return states
    batch, kv_heads, length, dim = states.shape
    expanded = states[:, :, None].expand(batch, kv_heads, groups, length, dim)
    return expanded.reshape(batch, kv_heads * groups, length, dim)


class InternLM2MLP(nn.Module):
    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w3 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.w2(self.act_fn(self.w1(x)) * self.w3(x))


class InternLM2Attention(nn.Module):
    def __init__(self, config: InternLM2Config, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.wqkv = nn.Linear(
            self.hidden_size, (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim, bias=config.bias
        )
        self.wo = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=config.bias)
        implementation = config.attn_implementation
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation {implementation!r} is not available here; use one of {ATTENTION_IMPLEMENTATIONS}"
            )
        self.attn_implementation = implementation

    def forward(self, hidden_states, attention_mask, position_embeddings, past_key_value=None):
        batch, q_len, _ = hidden_states.shape
        groups = self.num_key_value_groups
        qkv = self.wqkv(hidden_states).view(batch, q_len, self.num_key_value_heads, groups + 2, self.head_dim)
        query = qkv[..., :groups, :].reshape(batch, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        key = qkv[..., -2, :].transpose(1, 2)
        value = qkv[..., -1, :].transpose(1, 2)

        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if past_key_value is not None:
            key, value = past_key_value.update(key, value, self.layer_idx)
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)

        if self.attn_implementation == "sdpa":
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        else:  # eager: the textbook softmax(QK^T / sqrt(d) + mask) V
            scores = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(self.head_dim)
            if attention_mask is not None:
                scores = scores + attention_mask
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            out = torch.matmul(probs, value)
        out = out.transpose(1, 2).reshape(batch, q_len, self.hidden_size)
        return self.wo(out)


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, config: InternLM2Config, layer_idx: int):
        super().__init__()
        self.attention = InternLM2Attention(config, layer_idx)
        self.feed_forward = InternLM2MLP(config)
        self.attention_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.ffn_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, attention_mask, cos, sin, past_key_value=None):
        hidden_states = hidden_states + self.attention(
            self.attention_norm(hidden_states), attention_mask, (cos, sin), past_key_value
        )
        return hidden_states + self.feed_forward(self.ffn_norm(hidden_states))


class InternLM2PreTrainedModel(PreTrainedModel):
    config_class = InternLM2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternLM2DecoderLayer"]
    _skip_keys_device_placement = "past_key_values"
    _supports_cache_class = True
    _supports_static_cache = False

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()


def causal_padding_mask(attention_mask, batch, q_len, past_len, dtype, device):
    """Additive (B, 1, q_len, past_len + q_len) mask: 0 where a query may attend, dtype-min elsewhere.

    A query at absolute position p sees keys at positions <= p that are not padding. Rows that see
    nothing (queries on left padding) stay finite, so softmax never returns NaN.
    """
    total = past_len + q_len
    key_pos = torch.arange(total, device=device)
    query_pos = torch.arange(past_len, total, device=device)
    allowed = (key_pos[None, :] <= query_pos[:, None])[None, None].expand(batch, 1, q_len, total)
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.shape[-1] != total:
            raise ValueError(
                f"attention_mask must be (batch, {total}) for {past_len} cached + {q_len} new tokens; "
                f"got {tuple(attention_mask.shape)}"
            )
        allowed = allowed & attention_mask[:, None, None, :].to(torch.bool)
    mask = torch.zeros(batch, 1, q_len, total, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


class InternLM2Model(InternLM2PreTrainedModel):
    def __init__(self, config: InternLM2Config):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(InternLM2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = InternLM2RotaryEmbedding(config.hidden_size // config.num_attention_heads, config.rope_theta)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.tok_embeddings

    def set_input_embeddings(self, value):
        self.tok_embeddings = value

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[Union[Cache, List[torch.FloatTensor]]] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        cache_position: Optional[torch.LongTensor] = None,
        cache: Optional[Cache] = None,
        **kwargs,
    ) -> Union[Tuple, BaseModelOutputWithPast]:
        past_key_values = cache if past_key_values is None else past_key_values
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        elif past_key_values is not None and not isinstance(past_key_values, Cache):
            past_key_values = DynamicCache.from_legacy_cache(past_key_values)

        batch, q_len, _ = inputs_embeds.shape
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + q_len, device=inputs_embeds.device)[None].expand(batch, -1)
        mask = causal_padding_mask(attention_mask, batch, q_len, past_len, inputs_embeds.dtype, inputs_embeds.device)
        cos, sin = self.rotary_emb(inputs_embeds, position_ids)

        hidden_states = inputs_embeds
        all_states = () if output_hidden_states else None
        for layer in self.layers:
            if output_hidden_states:
                all_states += (hidden_states,)
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(layer.__call__, hidden_states, mask, cos, sin, None)
            else:
                hidden_states = layer(hidden_states, mask, cos, sin, past_key_values if use_cache else None)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_states += (hidden_states,)
        cache = past_key_values if use_cache else None
        if not return_dict:
            return tuple(v for v in (hidden_states, cache, all_states) if v is not None)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, hidden_states=all_states, **{CACHE: cache})


class InternLM2ForCausalLM(InternLM2PreTrainedModel):
    # No GenerationMixin among the bases, as in InternVL2's published InternLM2ForCausalLM: transformers before
    # 4.50 gave every PreTrainedModel `generate`; from 4.50 a class gets it only by inheriting GenerationMixin, so
    # under a newer transformers this class cannot generate on its own (InternVL#1068, ms-swift#4324). The kit's
    # loader (course_lib.models.load_internvl) adds it back; this stand-in fails where the real checkpoint fails.
    _tied_weights_keys = ["output.weight"]

    def __init__(self, config: InternLM2Config):
        super().__init__(config)
        self.model = InternLM2Model(config)
        self.vocab_size = config.vocab_size
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.tok_embeddings

    def set_input_embeddings(self, value):
        self.model.tok_embeddings = value

    def get_output_embeddings(self):
        return self.output

    def set_output_embeddings(self, new_embeddings):
        self.output = new_embeddings

    def get_decoder(self):
        return self.model

    def prepare_inputs_for_generation(
        self,
        input_ids,
        past_key_values=None,
        attention_mask=None,
        inputs_embeds=None,
        use_cache=True,
        cache=None,
        **kwargs,
    ):
        """The inputs of one generation step (InternVL2's class defines this too, which is how transformers
        before 4.50 recognised it as a generating model). The first step reads the prompt (its embeddings when
        the chat model passes the picture in them); each later step reads only the new tokens, the keys and
        values of earlier positions coming from the cache. Positions count the non-padding tokens, so a
        left-padded batch places every prompt as if it stood alone."""
        past_key_values = cache if past_key_values is None else past_key_values
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        if inputs_embeds is not None and past_len == 0:
            inputs = {"inputs_embeds": inputs_embeds}
            new = inputs_embeds.shape[1]
        else:
            # input_ids holds the whole sequence, or only the generated tokens when the prompt came as embeddings
            if kwargs.get("next_sequence_length") is not None:  # transformers 5 says how many are new
                new = kwargs["next_sequence_length"]
            elif attention_mask is not None:
                new = attention_mask.shape[1] - past_len
            else:
                new = input_ids.shape[1] - past_len
            inputs = {"input_ids": input_ids[:, -new:]}
        position_ids = kwargs.get("position_ids")  # transformers 5 passes them, counted from the attention mask
        if position_ids is None and attention_mask is not None:
            position_ids = attention_mask.long().cumsum(-1) - 1
            position_ids = position_ids.masked_fill(attention_mask == 0, 1)
        return {
            **inputs,
            CACHE: past_key_values,
            "attention_mask": attention_mask,
            "position_ids": None if position_ids is None else position_ids[:, -new:],
            "use_cache": use_cache,
        }

    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[Union[Cache, List[torch.FloatTensor]]] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        cache_position: Optional[torch.LongTensor] = None,
        cache: Optional[Cache] = None,
        **kwargs,
    ) -> Union[Tuple, CausalLMOutputWithPast]:
        past_key_values = cache if past_key_values is None else past_key_values
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.output(outputs.last_hidden_state).float()
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].reshape(-1, self.config.vocab_size)
            shift_labels = labels[..., 1:].reshape(-1).to(shift_logits.device)
            loss = CrossEntropyLoss()(shift_logits, shift_labels)
        if not return_dict:
            rest = (logits, getattr(outputs, CACHE), outputs.hidden_states)
            rest = tuple(v for v in rest if v is not None)
            return ((loss,) + rest) if loss is not None else rest
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, **{CACHE: getattr(outputs, CACHE)}
        )
