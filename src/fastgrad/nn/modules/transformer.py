"""MultiheadAttention and the transformer encoder/decoder layers and stacks (PyTorch's names,
parameters, initialisation and order of random draws, so a PyTorch state_dict loads and the
outputs match)."""
import copy

import numpy as np

from fastgrad import _creation
from fastgrad._core.ops_linear import linear_relu as _linear_relu
from fastgrad._core.ops_norm import add_layer_norm as _add_layer_norm
from fastgrad.nn import functional as F
from fastgrad.nn import init
from fastgrad.nn.modules.container import ModuleList
from fastgrad.nn.modules.linear import Dropout, Linear, NonDynamicallyQuantizableLinear
from fastgrad.nn.modules.module import Module
from fastgrad.nn.modules.normalization import LayerNorm
from fastgrad.nn.parameter import Parameter


class MultiheadAttention(Module):
    """Attention over num_heads heads of embed_dim // num_heads. Parameters as PyTorch's:
    in_proj_weight (3E, E) and in_proj_bias (3E,), or q/k/v_proj_weight when kdim/vdim differ
    from embed_dim; out_proj (Linear); bias_k, bias_v with add_bias_kv."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        assert self.head_dim * num_heads == embed_dim, "embed_dim must be divisible by num_heads"
        empty = lambda *s: _creation.empty(*s, dtype=dtype)  # noqa: E731
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias,
                                                        dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim))
            self.bias_v = Parameter(empty(1, 1, embed_dim))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        return F._mha(query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight,
                      self.in_proj_bias, self.bias_k, self.bias_v, self.add_zero_attn,
                      self.dropout, self.out_proj.weight, self.out_proj.bias, self.training,
                      key_padding_mask, need_weights, attn_mask,
                      not self._qkv_same_embed_dim, self.q_proj_weight, self.k_proj_weight,
                      self.v_proj_weight, None, None, average_attn_weights, is_causal,
                      batch_first=self.batch_first)


def _activation(activation):
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if isinstance(activation, str):
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    return activation


def _float_mask(mask, dtype):
    """A bool mask (True = masked) as the additive float mask PyTorch's layers pass on."""
    if mask is None or mask._np.dtype != np.bool_:
        return mask
    return F._additive_mask(mask, dtype, False)


def _generate_square_subsequent_mask(sz, dtype=None):
    """(sz, sz) float mask: 0 on and below the diagonal, -inf above it."""
    from fastgrad._dtypes import to_numpy_dtype
    dt = np.dtype(np.float32) if dtype is None else np.dtype(to_numpy_dtype(dtype))
    return _creation.from_numpy(np.triu(np.full((sz, sz), -np.inf, dtype=dt), 1))


def _detect_is_causal_mask(mask, is_causal, size):
    """is_causal if given, else whether mask is exactly the square subsequent mask."""
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.shape[-2]
        m = mask._np
        if tuple(m.shape) == (sz, sz):
            causal = np.triu(np.full((sz, sz), -np.inf, dtype=m.dtype), 1)
            make_causal = bool(np.array_equal(m, causal))
    return make_causal


def _clones(module, n):
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


class _LayerBlocks(Module):
    """The self-attention and feed-forward blocks the encoder and decoder layers share."""

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _feed_forward(self, x):
        l1 = self.linear1
        if self.activation is F.relu and _plain(l1, Linear):
            h = _linear_relu(x, l1.weight, l1.bias)     # the clamp in the product's own pass
        else:
            h = self.activation(l1(x))
        return self.linear2(self.dropout(h))


def _add_norm(norm, x, h):
    """norm(x + h), the sum made in the norm's own pass when norm is a plain LayerNorm."""
    if _plain(norm, LayerNorm):
        y = _add_layer_norm(x, h, len(norm.normalized_shape), norm.weight, norm.bias, norm.eps)
        if y is not None:
            return y
    return norm(x + h)


def _plain(module, cls):
    """Whether calling module is exactly cls.forward: no subclass, hooks or instance forward (a
    fused path may then stand in for the call)."""
    d = module.__dict__
    return (type(module) is cls and not d.get("_forward_hooks") and
            not d.get("_forward_pre_hooks") and "forward" not in d)


class _Stack(Module):
    """num_layers deep copies of a layer, then an optional norm."""

    def __init__(self, layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def _seq_len(self, x):
        batch_first = self.layers[0].self_attn.batch_first if self.num_layers else False
        return None if x.dim() < 2 else x.shape[1 if batch_first and x.dim() == 3 else 0]

    def _finish(self, out):
        return out if self.norm is None else self.norm(out)


class TransformerEncoderLayer(_LayerBlocks):
    """Self-attention then a feed-forward block, each with a residual and a LayerNorm (after
    the residual, or before the block with norm_first)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu,
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        dt = src._np.dtype
        src_key_padding_mask = _float_mask(src_key_padding_mask, dt)
        src_mask = _float_mask(src_mask, dt)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = _add_norm(self.norm1, x, self._sa_block(x, src_mask, src_key_padding_mask,
                                                        is_causal))
            x = _add_norm(self.norm2, x, self._ff_block(x))
        return x

    def _ff_block(self, x):
        return self.dropout2(self._feed_forward(x))


class TransformerEncoder(_Stack):
    """num_layers deep copies of encoder_layer, then an optional norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__(encoder_layer, num_layers, norm)
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        dt = src._np.dtype
        src_key_padding_mask = _float_mask(src_key_padding_mask, dt)
        mask = _float_mask(mask, dt)
        is_causal = _detect_is_causal_mask(mask, is_causal, self._seq_len(src))
        out = src
        for mod in self.layers:
            out = mod(out, src_mask=mask, is_causal=is_causal,
                      src_key_padding_mask=src_key_padding_mask)
        return self._finish(out)


class TransformerDecoderLayer(_LayerBlocks):
    """Self-attention, attention over the encoder's memory, then a feed-forward block; each
    with a residual and a LayerNorm."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu,
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout,
                                            batch_first=batch_first, bias=bias, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout,
                                                 batch_first=batch_first, bias=bias, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                    memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = _add_norm(self.norm1, x, self._sa_block(x, tgt_mask, tgt_key_padding_mask,
                                                        tgt_is_causal))
            x = _add_norm(self.norm2, x, self._mha_block(x, memory, memory_mask,
                                                         memory_key_padding_mask,
                                                         memory_is_causal))
            x = _add_norm(self.norm3, x, self._ff_block(x))
        return x


    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self._feed_forward(x))


class TransformerDecoder(_Stack):
    """num_layers deep copies of decoder_layer, then an optional norm."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__(decoder_layer, num_layers, norm)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, self._seq_len(tgt))
        out = tgt
        for mod in self.layers:
            out = mod(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return self._finish(out)


class Transformer(Module):
    """An encoder-decoder transformer (encoder and decoder stacks, each ending in a LayerNorm);
    every parameter with more than one dim drawn xavier_uniform_ as PyTorch does."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation=F.relu, custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False,
                 bias=True, device=None, dtype=None):
        super().__init__()
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                norm_first, bias)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(*args, dtype=dtype), num_encoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(*args, dtype=dtype), num_decoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p)
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batched = src.dim() == 3
        if not self.batch_first and src.shape[1] != tgt.shape[1] and batched:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if self.batch_first and src.shape[0] != tgt.shape[0] and batched:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        return _generate_square_subsequent_mask(sz, dtype)
