"""The KV cache of several streams advanced together: ``models.kv_store.KVStore`` with a lane axis.

One preallocated K and V buffer ``[layers, lanes, kv heads, slots + 1, head dim]``: lane i holds the
cache of stream i in the same slot layout a single stream uses (``[ring | protected region]``, see
``models.kv_store``), and each lane has its own per-slot sequence numbers; the protected-copy index of
a slot (``slot_group``) is the same for all lanes. The ring and the protected region are as large as
the largest lane needs; a lane whose own policy keeps a smaller ring (only ``unbounded`` grows it)
has its protected slots mapped past the shared ring (``phys``). The last slot is scratch: the
padding rows of a lane with fewer new tokens than the forward write there, and it is never visible
to a real row (its sequence number is the padding rows' BIG).

One forward covers the first ``m`` lanes (the streams in flight, kept at the front by ``move``).
Per forward: ``begin`` (write slots + the additive mask [m, 1, q, slots read]), ``refresh`` (protected
copies rotated per lane), and transformers' cache protocol (``update``). The rare per-lane edits
(re-basing the ring, new protected tokens, undoing a response, reset) take the lane's index.
"""
from __future__ import annotations

import numpy as np
import torch

from models.cache import rotate_half
from models.kv_store import BIG


class BatchKVStore:
    def __init__(self, lanes: int, n_layers: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype, device,
                 inv_freq: torch.Tensor):
        self.lanes, self.n_layers, self.n_kv_heads, self.head_dim = lanes, n_layers, n_kv_heads, head_dim
        self.dtype, self.device = dtype, torch.device(device)
        self.inv_freq2 = torch.cat([inv_freq, inv_freq]).to(self.device, torch.float32)
        self._zero = torch.zeros((), dtype=dtype, device=self.device)
        self._min = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=self.device)
        self.copies = self.protected_size = self.ring_size = 0
        self.m = lanes  # lanes in the forward in flight (a prefix of the lane axis)
        self.attend = 0  # slots attention reads (a prefix; the scratch slot is never in it)
        self.static = False  # compiled step: read every slot
        self._write = None  # (lane index [m, 1], slots [m, q]) of the forward in flight
        self.K = self.V = self.slot_seq = self.slot_group = self.Kp = self.Kp_rot = None

    # ------------------------------------------------------------------ allocation
    @property
    def n_slots(self) -> int:
        """Slots per lane, the scratch slot included."""
        return self.ring_size + self.protected_size * self.copies + 1

    @property
    def scratch(self) -> int:
        return self.n_slots - 1

    def ensure(self, protected_size: int, copies: int, ring_size: int) -> bool:
        """Grow (never shrink) to hold this layout, keeping every lane's content; True when reallocated."""
        if self.K is not None and copies != self.copies:
            raise ValueError("the number of protected copies is fixed for a cache")
        p, r = max(protected_size, self.protected_size), max(ring_size, self.ring_size)
        if self.K is not None and (p, r) == (self.protected_size, self.ring_size):
            return False
        with torch.inference_mode(False):
            self._allocate(p, copies, r)
        return True

    def _allocate(self, protected_size: int, copies: int, ring_size: int) -> None:
        n = ring_size + protected_size * copies + 1
        shape = (self.n_layers, self.lanes, self.n_kv_heads, n, self.head_dim)
        K = torch.zeros(shape, dtype=self.dtype, device=self.device)
        V = torch.zeros_like(K)
        seq = torch.full((self.lanes, n), BIG, dtype=torch.long, device=self.device)
        pshape = (self.n_layers, self.lanes, self.n_kv_heads, protected_size, self.head_dim)
        Kp = torch.zeros(pshape, dtype=torch.float32, device=self.device)
        Kp_rot = torch.zeros_like(Kp)
        if self.K is not None:  # growth: a longer query in some lane, or an unbounded ring
            ro, rn, po = self.ring_size, ring_size, self.protected_size * copies
            for new, old in ((K, self.K), (V, self.V)):
                new[..., :ro, :] = old[..., :ro, :]
                new[..., rn: rn + po, :] = old[..., ro: ro + po, :]
            seq[:, :ro], seq[:, rn: rn + po] = self.slot_seq[:, :ro], self.slot_seq[:, ro: ro + po]
            Kp[..., : self.protected_size, :] = self.Kp
            Kp_rot[..., : self.protected_size, :] = self.Kp_rot
        group = torch.full((n,), -1, dtype=torch.long, device=self.device)
        group[ring_size: n - 1] = torch.arange(copies, device=self.device).repeat(protected_size)
        self.K, self.V, self.slot_seq, self.slot_group, self.Kp, self.Kp_rot = K, V, seq, group, Kp, Kp_rot
        self.protected_size, self.copies, self.ring_size = protected_size, copies, ring_size
        if self.device.type == "cuda":  # CUDA graphs: buffers at fixed addresses
            for t in (self.K, self.V, self.slot_seq, self.slot_group, self.Kp, self.Kp_rot):
                torch._dynamo.mark_static_address(t)

    def phys(self, slots: np.ndarray, ring_size: int) -> np.ndarray:
        """A lane's slots (its policy's layout, ring of ``ring_size``) -> slots of this store."""
        slots = np.asarray(slots, dtype=np.int64)
        if ring_size == self.ring_size:
            return slots
        return np.where(slots >= ring_size, slots - ring_size + self.ring_size, slots)

    # ------------------------------------------------------------------ per lane (eager, rare)
    def reset_lane(self, lane: int) -> None:
        """Empty one lane for its next stream; its keys and values are zeroed too: attention reads masked
        slots (and the scratch slot, compiled), and a masked NaN or inf still poisons a row (0 * NaN), so a
        stream that produced one (NaN frame features) would otherwise spoil every later stream of the lane."""
        if self.slot_seq is not None:
            self.slot_seq[lane].fill_(BIG)
            for t in (self.K, self.V, self.Kp, self.Kp_rot):
                t[:, lane].zero_()

    def clear(self, lane: int, slots: list[int]) -> None:
        """Forget ring slots (an undone response)."""
        if slots:
            self.slot_seq[lane].index_fill_(0, torch.tensor(slots, device=self.device), BIG)

    def rotate_ring(self, lane: int, by: int) -> None:
        """Rotate every ring key of one lane by ``by`` positions (re-basing its positions)."""
        if not by or not self.ring_size:
            return
        ang = by * self.inv_freq2
        ring = self.K[:, lane, :, : self.ring_size, :]
        rf = ring.float()
        ring.copy_(rf * ang.cos() + rotate_half(rf) * ang.sin())

    def add_protected(self, lane: int, new: list, ring_size: int) -> None:
        """After a forward wrote protected tokens (copy 0) in one lane: keep their pristine keys and
        replicate their values to the other copies (as ``KVStore.add_protected``)."""
        if not new:
            return
        t = torch.tensor([x[0] for x in new], device=self.device)
        s0 = torch.from_numpy(self.phys([x[1] for x in new], ring_size)).to(self.device)
        seq = torch.tensor([x[2] for x in new], device=self.device)
        K, V = self.K[:, lane], self.V[:, lane]  # [L, H, slots, d]
        k0 = K.index_select(2, s0).float()
        self.Kp[:, lane].index_copy_(2, t, k0)
        self.Kp_rot[:, lane].index_copy_(2, t, rotate_half(k0))
        for j in range(1, self.copies):
            V.index_copy_(2, s0 + j, V.index_select(2, s0))
            self.slot_seq[lane].index_copy_(0, s0 + j, seq)

    def move(self, src: int, dst: int) -> None:
        """Copy lane ``src`` into lane ``dst`` (keeping the streams in flight a prefix of the lane axis)."""
        if self.K is None or src == dst:
            return
        for t in (self.K, self.V, self.Kp, self.Kp_rot):
            t[:, dst] = t[:, src]
        self.slot_seq[dst] = self.slot_seq[src]

    def swap(self, a: int, b: int) -> None:
        """Exchange lanes ``a`` and ``b`` (both streams in flight, in the two forwards of a split tick)."""
        if self.K is None or a == b:
            return
        for t in (self.K, self.V, self.Kp, self.Kp_rot):
            t[:, [a, b]] = t[:, [b, a]]
        self.slot_seq[[a, b]] = self.slot_seq[[b, a]]

    def kept(self, lane: int, lo: int, layer: int = 0, copy: int = 0):
        """(seq, keys, values) of one lane's kept tokens in stream order (as ``KVStore.kept``)."""
        seq, g = self.slot_seq[lane], self.slot_group
        keep = (seq < BIG) & (((g < 0) & (seq >= lo)) | (g == copy))
        idx = torch.nonzero(keep).flatten()
        order = idx[torch.argsort(seq[idx])]
        return seq[order], self.K[layer, lane: lane + 1][..., order, :], self.V[layer, lane: lane + 1][..., order, :]

    # ------------------------------------------------------------------ per forward (traceable)
    def begin(self, slots, row_seq, row_group, group_lo) -> torch.Tensor:
        """Book the new tokens' slots ([m, q] each; ``group_lo`` [m, copies]) and return the additive
        mask [m, 1, q, slots read]: per lane exactly ``KVStore.begin``'s rule."""
        m = slots.shape[0]
        lanes = torch.arange(m, device=slots.device)[:, None]
        self._write = (lanes, slots)
        self.slot_seq[lanes, slots] = row_seq
        n = self.slot_seq.shape[1] if self.static else self.attend
        s, g = self.slot_seq[:m, :n], self.slot_group[:n]
        groups = torch.arange(group_lo.shape[1], device=s.device)[None, :, None]
        ok = ((g < 0) & (s[:, None, :] >= group_lo[:, :, None])) | (g == groups)  # [m, groups, slots]
        ok = ok.expand(m, slots.shape[1], n) if group_lo.shape[1] == 1 else ok[lanes, row_group]  # [m, q, slots]
        return torch.where(ok & (s[:, None, :] <= row_seq[:, :, None]), self._zero, self._min)[:, None]

    def refresh(self, shift: torch.Tensor) -> None:
        """Protected keys of every copy of the first m lanes = pristine keys rotated by ``shift`` [m, copies, P]."""
        if not self.protected_size:
            return
        m = shift.shape[0]
        ang = shift.to(torch.float32)[..., None] * self.inv_freq2  # [m, copies, P, d]
        cos, sin = ang.cos().transpose(1, 2)[None, :, None], ang.sin().transpose(1, 2)[None, :, None]
        r, p, c = self.ring_size, self.protected_size, self.copies
        region = self.K[:, :m, :, r: r + p * c, :].view(self.n_layers, m, self.n_kv_heads, p, c, self.head_dim)
        region.copy_(self.Kp[:, :m, ..., None, :] * cos + self.Kp_rot[:, :m, ..., None, :] * sin)

    # ------------------------------------------------------------------ transformers cache protocol
    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        lanes, slots = self._write
        m = slots.shape[0]
        k, v = self.K[layer_idx, :m], self.V[layer_idx, :m]  # [m, H, slots, d]
        k[lanes, :, slots] = key_states.transpose(1, 2)  # [m, q, H, d]
        v[lanes, :, slots] = value_states.transpose(1, 2)
        if self.static:
            return k, v
        return k[:, :, : self.attend], v[:, :, : self.attend]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions are always given
