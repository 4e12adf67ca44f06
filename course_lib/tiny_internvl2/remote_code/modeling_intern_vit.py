"""An InternViT-style vision encoder, small enough to read top to bottom.

Image (B, 3, 448, 448) -> 14x14 patches (B, 1024, C) with a CLS token in front -> pre-norm transformer
layers with layer scale -> (B, 1025, C). There is no final norm: InternVL reads the last hidden state
(or the layer named by select_layer) and drops the CLS token itself. Parameter names match InternViT
(embeddings.patch_embedding, encoder.layers.N.attn.qkv, .ls1, .mlp.fc1, ...).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import PreTrainedModel

from .configuration_intern_vit import InternVisionConfig


class InternRMSNorm(nn.Module):
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


NORM2FN = {"rms_norm": InternRMSNorm, "layer_norm": nn.LayerNorm}


class InternVisionEmbeddings(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(1, 1, self.embed_dim))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, self.embed_dim, kernel_size=self.patch_size, stride=self.patch_size
        )
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Parameter(torch.randn(1, self.num_positions, self.embed_dim))

    def _patch_position_embedding(self, height: int, width: int, dtype) -> torch.Tensor:
        """Position embeddings of the patch grid, resized when the image is not image_size."""
        side = self.image_size // self.patch_size
        grid = self.position_embedding[:, 1:, :].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if (height, width) != (side, side):
            grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return grid.reshape(1, -1, height * width).permute(0, 2, 1).to(dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixel_values.to(dtype))  # (B, C, H/14, W/14)
        batch, _, height, width = patches.shape
        patches = patches.flatten(2).transpose(1, 2)  # (B, H*W/196, C)
        cls = self.class_embedding.expand(batch, 1, -1).to(dtype)
        embeddings = torch.cat([cls, patches], dim=1)
        position = torch.cat(
            [self.position_embedding[:, :1, :].to(dtype), self._patch_position_embedding(height, width, dtype)],
            dim=1,
        )
        return embeddings + position


class InternAttention(nn.Module):
    """Bidirectional multi-head self-attention with one packed qkv projection."""

    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        if self.head_dim * self.num_heads != self.embed_dim:
            raise ValueError(
                f"hidden_size ({self.embed_dim}) must be divisible by num_attention_heads ({self.num_heads})"
            )
        self.qkv = nn.Linear(self.embed_dim, 3 * self.embed_dim, bias=config.qkv_bias)
        self.attn_drop = nn.Dropout(config.attention_dropout)
        self.proj_drop = nn.Dropout(config.dropout)
        self.qk_normalization = config.qk_normalization
        if self.qk_normalization:
            self.q_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
            self.k_norm = InternRMSNorm(self.embed_dim, eps=config.layer_norm_eps)
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, length, channels = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        if self.qk_normalization:
            q = self.q_norm(q.transpose(1, 2).flatten(-2)).view(batch, length, self.num_heads, -1).transpose(1, 2)
            k = self.k_norm(k.transpose(1, 2).flatten(-2)).view(batch, length, self.num_heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, length, channels)
        return self.proj_drop(self.proj(out))


class InternMLP(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        self.act = ACT2FN[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, config: InternVisionConfig, drop_path_rate: float):
        super().__init__()
        norm = NORM2FN[config.norm_type]
        self.attn = InternAttention(config)
        self.mlp = InternMLP(config)
        self.norm1 = norm(config.hidden_size, eps=config.layer_norm_eps)
        self.norm2 = norm(config.hidden_size, eps=config.layer_norm_eps)
        self.ls1 = nn.Parameter(config.initializer_factor * torch.ones(config.hidden_size))
        self.ls2 = nn.Parameter(config.initializer_factor * torch.ones(config.hidden_size))
        self.drop_path1 = DropPath(drop_path_rate)
        self.drop_path2 = DropPath(drop_path_rate)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.drop_path1(self.attn(self.norm1(hidden_states)) * self.ls1)
        hidden_states = hidden_states + self.drop_path2(self.mlp(self.norm2(hidden_states)) * self.ls2)
        return hidden_states


class InternVisionEncoder(nn.Module):
    def __init__(self, config: InternVisionConfig):
        super().__init__()
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers).tolist()
        self.layers = nn.ModuleList(InternVisionEncoderLayer(config, rate) for rate in rates)
        self.gradient_checkpointing = False

    def forward(self, inputs_embeds, output_hidden_states=False, return_dict=True):
        hidden_states = inputs_embeds
        all_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(layer.__call__, hidden_states)
            else:
                hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_states = all_states + (hidden_states,)
        if not return_dict:
            return tuple(t for t in (hidden_states, all_states) if t is not None)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_states)


class InternVisionModel(PreTrainedModel):
    main_input_name = "pixel_values"
    config_class = InternVisionConfig
    _no_split_modules = ["InternVisionEncoderLayer"]
    supports_gradient_checkpointing = True

    def __init__(self, config: InternVisionConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, InternVisionEmbeddings):
            nn.init.normal_(module.class_embedding, mean=0.0, std=std)
            nn.init.normal_(module.position_embedding, mean=0.0, std=std)

    def get_input_embeddings(self):
        return self.embeddings

    def forward(
        self,
        pixel_values: Optional[torch.FloatTensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        pixel_embeds: Optional[torch.FloatTensor] = None,
    ):
        output_hidden_states = bool(output_hidden_states)
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        if pixel_embeds is not None:
            hidden_states = pixel_embeds
        elif pixel_values is not None:
            if pixel_values.ndim != 4:
                raise ValueError(f"pixel_values must be (tiles, 3, H, W); got shape {tuple(pixel_values.shape)}")
            hidden_states = self.embeddings(pixel_values)
        else:
            raise ValueError("pass pixel_values or pixel_embeds")
        encoded = self.encoder(hidden_states, output_hidden_states=output_hidden_states, return_dict=True)
        last = encoded.last_hidden_state
        if not return_dict:
            return (last, last[:, 0, :]) + ((encoded.hidden_states,) if output_hidden_states else ())
        return BaseModelOutputWithPooling(
            last_hidden_state=last, pooler_output=last[:, 0, :], hidden_states=encoded.hidden_states
        )
