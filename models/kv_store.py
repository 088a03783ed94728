"""Device side of the streaming KV cache: preallocated K/V for all layers, written in place.

Layout of the slot axis: ``[ring | protected region]``. The protected region holds ``copies`` copies of
each protected token, interleaved (token t, copy j at slot ``ring + t * copies + j``), so the used slots
are a prefix of the axis and attention never reads the spare ones; the ring holds evictable tokens (``models.cache.CachePolicy`` decides which slot each token
takes). Attention reads a prefix of the slot axis and a boolean mask built once per step from three
per-slot facts: its sequence number (``slot_seq``, BIG when empty), its protected copy (``slot_group``,
-1 for the ring), and, per query row, the row's own sequence number, the oldest evictable sequence
number it may see, and the copy it reads. Nothing is concatenated or re-allocated per frame.

The object speaks transformers' cache protocol (``update`` returns the keys / values attention reads),
so the native Qwen2 decoder runs unchanged on it.
"""
from __future__ import annotations

import torch

from models.cache import rotate_half

BIG = 2**62  # sequence number of an empty slot: never visible


class KVStore:
    def __init__(self, n_layers: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype, device, inv_freq: torch.Tensor):
        self.shape = (n_layers, 1, n_kv_heads, head_dim)
        self.dtype, self.device = dtype, torch.device(device)
        self.inv_freq2 = torch.cat([inv_freq, inv_freq]).to(self.device, torch.float32)  # once, not per step
        self._zero = torch.zeros((), dtype=dtype, device=self.device)
        self._min = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=self.device)
        self.copies = self.protected_size = self.ring_size = 0
        self.attend = 0  # slots attention reads (a prefix)
        self.static = False  # compiled step: always read every slot (static shapes)
        self.slots: torch.Tensor | None = None  # destination slots of the forward in flight
        self.length = 0  # host mirror of the number of kept tokens (get_seq_length)
        self.K = self.V = self.slot_seq = self.slot_group = self.Kp = self.Kp_rot = None

    # ------------------------------------------------------------------ allocation
    @property
    def n_slots(self) -> int:
        return self.protected_size * self.copies + self.ring_size

    def ensure(self, protected_size: int, copies: int, ring_size: int) -> bool:
        """(Re)allocate for this layout, keeping what is stored; True when the buffers changed."""
        if (protected_size, copies, ring_size) == (self.protected_size, self.copies, self.ring_size):
            return False
        if self.K is not None and copies != self.copies:
            raise ValueError("the number of protected copies is fixed for a cache")
        with torch.inference_mode(False):  # normal tensors: resettable and editable outside inference mode too
            self._allocate(protected_size, copies, ring_size)
        return True

    def _allocate(self, protected_size: int, copies: int, ring_size: int) -> None:
        nl, b, h, d = self.shape
        c_new = protected_size * copies + ring_size
        K = torch.zeros(nl, b, h, c_new, d, dtype=self.dtype, device=self.device)
        V = torch.zeros_like(K)
        seq = torch.full((c_new,), BIG, dtype=torch.long, device=self.device)
        Kp = torch.zeros(nl, b, h, protected_size, d, dtype=torch.float32, device=self.device)
        Kp_rot = torch.zeros_like(Kp)
        if self.K is not None:  # growth (a query beyond the protected region, or the unbounded ring): rare
            ro, rn, po = self.ring_size, ring_size, self.protected_size * copies
            for new, old in ((K, self.K), (V, self.V)):
                new[..., :ro, :] = old[..., :ro, :]
                new[..., rn: rn + po, :] = old[..., ro: ro + po, :]
            seq[:ro], seq[rn: rn + po] = self.slot_seq[:ro], self.slot_seq[ro: ro + po]
            Kp[..., : self.protected_size, :] = self.Kp
            Kp_rot[..., : self.protected_size, :] = self.Kp_rot
        group = torch.full((c_new,), -1, dtype=torch.long, device=self.device)
        group[ring_size:] = torch.arange(copies, device=self.device).repeat(protected_size)
        self.K, self.V, self.slot_seq, self.slot_group, self.Kp, self.Kp_rot = K, V, seq, group, Kp, Kp_rot
        self.protected_size, self.copies, self.ring_size = protected_size, copies, ring_size
        self._mark_static()

    def _mark_static(self) -> None:
        # CUDA graphs may only mutate tensors at fixed addresses (transformers' StaticCache does the same)
        if self.device.type == "cuda":
            for t in (self.K, self.V, self.slot_seq, self.slot_group, self.Kp, self.Kp_rot):
                torch._dynamo.mark_static_address(t)

    def reset(self) -> None:
        """Empty the cache for the next stream; keys and values are zeroed too: attention reads masked
        slots, and a masked NaN or inf still poisons a row (0 * NaN), so a stream that produced one (NaN
        frame features) would otherwise spoil every later stream of this engine."""
        if self.slot_seq is not None:
            self.slot_seq.fill_(BIG)
            for t in (self.K, self.V, self.Kp, self.Kp_rot):
                t.zero_()
        self.length = 0

    # ------------------------------------------------------------------ transformers cache protocol
    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        k, v = self.K[layer_idx], self.V[layer_idx]
        k.index_copy_(2, self.slots, key_states)
        v.index_copy_(2, self.slots, value_states)
        if self.static or self.attend >= k.shape[2]:
            return k, v
        return k[:, :, : self.attend], v[:, :, : self.attend]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    # ------------------------------------------------------------------ per step (traceable)
    def begin(self, slots, row_seq, row_group, group_lo) -> torch.Tensor:
        """Book the new tokens' slots and return the attention mask [1, 1, q, slots read], additive (0 /
        the dtype's min), built once per step: given a bool mask, sdpa would convert it in every layer.

        A row sees a slot when the slot's token is not newer than the row (causal) and it is either an
        evictable token not evicted as of the row's frame (sequence number >= ``group_lo`` of the row's
        group) or the protected copy rotated for the row's frame. The per-group part is computed on
        [groups, slots], so the per-row work is one compare and one gather."""
        self.slots = slots
        self.slot_seq.index_copy_(0, slots, row_seq)
        n = self.slot_seq.shape[0] if self.static else self.attend
        s, g = self.slot_seq[:n], self.slot_group[:n]
        groups = torch.arange(group_lo.shape[0], device=s.device)[:, None]
        ok = ((g < 0) & (s >= group_lo[:, None])) | (g == groups)  # [groups, slots]
        ok = ok if group_lo.shape[0] == 1 else ok[row_group]
        return torch.where(ok & (s <= row_seq[:, None]), self._zero, self._min)[None, None]

    def refresh(self, shift: torch.Tensor) -> None:
        """Protected keys of every copy = pristine keys rotated forward by ``shift`` [copies, P] positions."""
        if not self.protected_size:
            return
        ang = shift.to(torch.float32)[..., None] * self.inv_freq2  # [copies, P, d]
        cos, sin = ang.cos().transpose(0, 1), ang.sin().transpose(0, 1)  # [P, copies, d]
        nl, b, h, d = self.shape
        region = self.K[..., self.ring_size:, :].view(nl, b, h, self.protected_size, self.copies, d)
        region.copy_(self.Kp[..., None, :] * cos + self.Kp_rot[..., None, :] * sin)

    # ------------------------------------------------------------------ rare edits (eager)
    def rotate_ring(self, by: int) -> None:
        """Rotate every ring key by ``by`` positions (re-basing positions; values carry none)."""
        if not by or not self.ring_size:
            return
        ang = by * self.inv_freq2
        ring = self.K[..., : self.ring_size, :]
        rf = ring.float()
        ring.copy_(rf * ang.cos() + rotate_half(rf) * ang.sin())

    def add_protected(self, new: list) -> None:
        """After a forward wrote protected tokens (copy 0): keep their pristine keys, replicate values."""
        if not new:
            return
        t = torch.tensor([x[0] for x in new], device=self.device)
        s0 = torch.tensor([x[1] for x in new], device=self.device)
        seq = torch.tensor([x[2] for x in new], device=self.device)
        k0 = self.K.index_select(3, s0).float()
        self.Kp.index_copy_(3, t, k0)
        self.Kp_rot.index_copy_(3, t, rotate_half(k0))
        for j in range(1, self.copies):
            self.V.index_copy_(3, s0 + j, self.V.index_select(3, s0))
            self.slot_seq.index_copy_(0, s0 + j, seq)

    def clear(self, slots: list[int]) -> None:
        if slots:
            self.slot_seq.index_fill_(0, torch.tensor(slots, device=self.device), BIG)

    # ------------------------------------------------------------------ inspection (tests, describe)
    def kept(self, lo: int, layer: int = 0, copy: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(seq, keys, values) of the kept tokens of one layer in stream order: protected tokens (their
        copy ``copy``) and ring tokens from sequence number ``lo`` on (the policy's oldest kept one)."""
        seq, g = self.slot_seq, self.slot_group
        keep = (seq < BIG) & (((g < 0) & (seq >= lo)) | (g == copy))
        idx = torch.nonzero(keep).flatten()
        order = idx[torch.argsort(seq[idx])]
        return seq[order], self.K[layer][..., order, :], self.V[layer][..., order, :]
