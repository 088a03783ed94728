"""The Aha! model on transformers' native LLaVA-OneVision classes.

Frames are encoded by the SigLIP tower (hidden state of the last kept layer, no post-layernorm),
projected per patch by the OV MLP projector, then the 27x27 grid is resized to 7x7 (bilinear,
align_corners=False): 49 tokens per frame, no image-newline tokens. Frame embeddings replace the
placeholder tokens of the text in order. Three bias-free heads read the final hidden state.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlavaOnevisionForConditionalGeneration
from transformers.utils import ModelOutput

from models import losses as L
from models.config import AhaConfig


@dataclass
class AhaOutput(ModelOutput):
    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    informative_loss: torch.Tensor | None = None
    relevance_loss: torch.Tensor | None = None
    tv_loss: torch.Tensor | None = None
    uncertainty_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    informative_logits: torch.Tensor | None = None  # [B, S, 2]
    relevance: torch.Tensor | None = None  # [B, S] sigmoid probabilities
    log_variance: torch.Tensor | None = None  # [B, S] raw (unclamped) log-variance
    cache: object | None = None  # the KV cache (transformers 5.25 names it `cache`)
    last_hidden_state: torch.Tensor | None = None


class AhaForStreaming(LlavaOnevisionForConditionalGeneration):
    config_class = AhaConfig
    # the heads stay fp32 whatever the backbone's dtype: in bf16 their scores take a few hundred
    # distinct values, and ranking metrics (TVSum, Mr.HiSum, QVHighlights) then see ties
    HEADS = ("informative_head", "relevance_head", "uncertainty_head")
    _keep_in_fp32_modules_strict = list(HEADS)

    def __init__(self, config: AhaConfig):
        super().__init__(config)
        d = config.text_config.hidden_size
        self.informative_head = nn.Linear(d, 2, bias=False)
        self.relevance_head = nn.Linear(d, 1, bias=False)
        self.uncertainty_head = nn.Linear(d, 1, bias=False)
        self.post_init()

    @property
    def is_gradient_checkpointing(self) -> bool:
        # peft (0.21) still asks for this name, which transformers 5.25 deprecated (a FutureWarning
        # on every LoRA wrap): answer with the new property
        return self.is_activation_checkpointing

    # ----------------------------------------------------------------- frames
    @property
    def tokens_per_frame(self) -> int:
        return self.config.tokens_per_frame

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [F, 3, H, W] (normalised) -> frame embeddings [F, tokens_per_frame, D]."""
        return self.project_frames(self.vision_features(pixel_values))

    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen part: SigLIP patch features [F, patches, vision_dim] (cacheable on disk)."""
        if pixel_values.dim() != 4:
            raise ValueError(f"pixel_values must be [F, 3, H, W], got {tuple(pixel_values.shape)}")
        tower = self.model.vision_tower
        tower_trainable = next(tower.parameters()).requires_grad
        layer = self.config.vision_feature_layer
        if not isinstance(layer, int):
            raise ValueError(f"vision_feature_layer must be one layer index, got {layer!r}")
        n_states = len(tower.encoder.layers) + 1  # hidden_states: the embeddings, then each layer's output
        if not -n_states <= layer < n_states:
            raise ValueError(f"vision_feature_layer {layer} is outside the tower's {n_states} hidden states")
        with torch.set_grad_enabled(torch.is_grad_enabled() and tower_trainable):
            # run only the layers the feature needs and keep one hidden state, not all of them (the
            # tower's output_hidden_states=True holds 27 of them: ~45 MB per frame for so400m)
            feats = tower.embeddings(pixel_values.to(dtype=self.vision_dtype))
            for enc_layer in tower.encoder.layers[: layer % n_states]:
                feats = enc_layer(feats, None)
        if self.config.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]
        return feats

    def project_frames(self, vision_features: torch.Tensor) -> torch.Tensor:
        """The trained part: projector per patch, then the grid resize to tokens_per_frame (plus the
        whole-frame summary token last, with ``frame_summary_token``)."""
        return self._pool(self.model.multi_modal_projector(vision_features))

    @property
    def vision_dtype(self) -> torch.dtype:
        return self.model.vision_tower.embeddings.patch_embedding.weight.dtype

    def _pool(self, feats: torch.Tensor) -> torch.Tensor:
        n, p, d = feats.shape
        g = self.config.patch_grid
        if p != g * g:
            raise ValueError(f"expected {g * g} patch tokens per frame, got {p}")
        x = feats.view(n, g, g, d).permute(0, 3, 1, 2)
        mode, s, out_g = self.config.frame_pool_mode, self.config.frame_pool_stride, self.config.frame_grid
        if mode == "bilinear":
            x = F.interpolate(x, size=(out_g, out_g), mode="bilinear", align_corners=False)
        elif mode == "average":
            x = F.avg_pool2d(x, kernel_size=s, stride=s, ceil_mode=self.config.frame_pool_ceil)
        else:
            x = F.max_pool2d(x, kernel_size=s, stride=s, ceil_mode=self.config.frame_pool_ceil)
        tokens = x.permute(0, 2, 3, 1).reshape(n, out_g * out_g, d)
        if self.config.frame_summary_token:
            whole = feats.amax(dim=1, keepdim=True) if mode == "max" else feats.mean(dim=1, keepdim=True)
            tokens = torch.cat([tokens, whole], dim=1)
        return tokens

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        frame_embeds: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with every placeholder replaced, in order, by the frame tokens.

        Frames come as pixels, as cached SigLIP features (the projector still runs, so it can be
        trained), or as final frame embeddings (projector frozen / inference).
        """
        is_ph = input_ids == self.config.frame_placeholder_id
        # the placeholder may lie outside the embedding table (tiny vocabularies); it is overwritten anyway
        embeds = self.get_input_embeddings()(input_ids.masked_fill(is_ph, 0))
        n_ph = int(is_ph.sum())
        if frame_embeds is None and vision_features is not None and vision_features.numel():
            frame_embeds = self.project_frames(vision_features.to(self.model.multi_modal_projector.linear_1.weight.dtype))
        if frame_embeds is None and pixel_values is not None and pixel_values.numel():
            frame_embeds = self.encode_frames(pixel_values)
        n_vis = 0 if frame_embeds is None else frame_embeds.shape[0] * frame_embeds.shape[1]
        if n_ph != n_vis:
            raise ValueError(
                f"{n_ph} placeholder tokens but {n_vis} frame tokens "
                f"({self.tokens_per_frame} per frame); text and frames disagree"
            )
        if n_ph:
            vis = frame_embeds.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
            embeds = embeds.masked_scatter(is_ph.unsqueeze(-1), vis)
        return embeds

    # ----------------------------------------------------------------- heads
    def heads_to_fp32(self) -> None:
        """After a cast of the whole model (``.to(bf16)``): the heads back to fp32, and the RoPE
        frequencies (``rope_to_fp32``)."""
        for name in self.HEADS:
            getattr(self, name).float()
        self.rope_to_fp32()

    def rope_to_fp32(self) -> None:
        """RoPE inverse frequencies recomputed in fp32 where a cast rounded them. ``.to(bf16)`` casts the
        rotary buffers too (from_pretrained keeps them fp32): rounded by up to 0.4%, they turn the angle
        of a query-key pair 2048 positions apart by up to 2.4 rad in 15 of Qwen2-7B's 64 frequencies
        (a different model than the one trained), and the streaming cache reads the same buffer."""
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        for m in self.modules():
            inv = getattr(m, "inv_freq", None)
            if not isinstance(inv, torch.Tensor) or inv.dtype == torch.float32 or not hasattr(m, "config"):
                continue
            fn = m.compute_default_rope_parameters if m.rope_type == "default" else ROPE_INIT_FUNCTIONS[m.rope_type]
            fresh = fn(m.config)[0].to(inv.device, torch.float32)
            m.inv_freq = fresh
            if isinstance(getattr(m, "original_inv_freq", None), torch.Tensor):
                m.original_inv_freq = fresh.clone()

    def read_heads(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three heads in fp32, whatever the backbone's dtype, autocast or a DeepSpeed bf16
        engine (which casts every parameter): the hidden state and the weights are upcast."""
        if self.config.head_stop_grad:
            hidden = hidden.detach()
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            h = hidden.float()
            info = F.linear(h, self.informative_head.weight.float())
            rel = F.linear(h, self.relevance_head.weight.float()).squeeze(-1)
            logvar = F.linear(h, self.uncertainty_head.weight.float()).squeeze(-1)
        return {"informative_logits": info, "relevance": torch.sigmoid(rel), "log_variance": logvar}

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        frame_embeds: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        informative_labels: torch.Tensor | None = None,
        relevance_labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        compute_lm_logits: bool = True,
        **kwargs,
    ) -> AhaOutput:
        """Labels are pre-shifted: ``labels[b, p]`` is the target for the token after position p.

        With ``labels`` given, LM logits are computed only at labelled positions (the full
        [B, S, 152k] tensor is never built) and ``logits`` is None.
        """
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("give input_ids or inputs_embeds")
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, frame_embeds, vision_features)
        out = self.model.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            return_dict=True,
        )
        h = out.last_hidden_state
        heads = self.read_heads(h)

        logits = None
        parts: dict[str, torch.Tensor | None] = {}
        if labels is not None:
            lm_valid = labels != L.IGNORE
            if lm_valid.any():
                parts["lm"] = L.lm_loss(self.lm_head(h[lm_valid]), labels[lm_valid])
        elif compute_lm_logits:
            hk = h if not logits_to_keep else h[:, -logits_to_keep:]
            logits = self.lm_head(hk)

        training_labels = any(x is not None for x in (labels, informative_labels, relevance_labels))
        loss = None
        if training_labels and self.config.loss_protocol == "reference":
            parts = L.reference_losses(
                input_ids if input_ids is not None else torch.zeros(h.shape[:2], dtype=torch.long, device=h.device),
                lambda mask: self.lm_head(h[mask]), labels, heads["informative_logits"], informative_labels,
                heads["relevance"], heads["log_variance"], relevance_labels,
                self.config.logvar_min, self.config.logvar_max, self.config.loss_weights["diversity"],
            )
            loss = L.combine(parts, self.config.loss_weights)
        elif training_labels:
            zero = []
            if informative_labels is not None:
                parts["informative"] = L.informative_loss(heads["informative_logits"], informative_labels)
            if parts.get("informative") is None:
                zero.append(heads["informative_logits"])
            rel = None
            if relevance_labels is not None:
                rel = L.relevance_losses(
                    heads["relevance"],
                    heads["log_variance"],
                    relevance_labels,
                    self.config.logvar_min,
                    self.config.logvar_max,
                    self.config.loss_weights["diversity"],
                )
            if rel is None:
                zero += [heads["relevance"], heads["log_variance"]]
            else:
                parts.update(rel)
            if parts.get("lm") is None:
                zero.append(self.lm_head(h[:, -1:]))
            parts["zero"] = L.zero_touch(*zero) if zero else None
            loss = L.combine(parts, self.config.loss_weights)

        return AhaOutput(
            loss=loss,
            lm_loss=parts.get("lm"),
            informative_loss=parts.get("informative"),
            relevance_loss=parts.get("relevance"),
            tv_loss=parts.get("tv"),
            uncertainty_loss=parts.get("uncertainty"),
            logits=logits,
            informative_logits=heads["informative_logits"],
            relevance=heads["relevance"],
            log_variance=heads["log_variance"],
            cache=out.cache if use_cache else None,
            last_hidden_state=h,
        )
