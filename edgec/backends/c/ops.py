"""C emitters of the linear, pooling and elementwise-binary operators.

Each emitter takes the :class:`~edgec.backends.c.codegen.Emitter` and one operator, writes the
operator's constants and its kernel call through the emitter, and returns its multiply-accumulate
count. Parameters mirror what TFLite Micro's ``Prepare`` computes (see :mod:`.fixedpoint`).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from edgec.core.errors import InputError
from edgec.backends.c.fixedpoint import activation_range, conv_multipliers, fc_multiplier, quantize_multiplier, requant_mode




def scale(t) -> float:
    """The tensor's (first) quantization scale."""
    return float(t.scales[0])


def zp(t) -> int:
    """The tensor's (first) zero point."""
    return int(t.zero_points[0])


def nelem(t) -> int:
    """Number of elements of a tensor."""
    return int(np.prod([max(int(d), 1) for d in t.shape])) if t.shape else 1


def _padding(in_size: int, f: int, stride: int, dil: int, out_size: int) -> int:
    effective = (f - 1) * dil + 1
    return max((out_size - 1) * stride + effective - in_size, 0) // 2


def is_int4(model, op) -> bool:
    """Whether ``op`` is a conv / depthwise / fully-connected operator with INT4 weights (:mod:`.int4`)."""
    return (op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1
            and model.tensors[op.inputs[1]].type == "INT4")


def act_bounds(e, op, out) -> tuple[int, int]:
    """The int8 output bounds of ``op``'s fused activation (none, ReLU, ReLU6...) on tensor ``out``."""
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    return activation_range(act, scale(out), zp(out), op=op.name)


def _folded_bias(e, op, in_offset: int, factor: int = 1) -> str:
    """bias + in_offset * sum(weights of the channel), wrapped to int32 like the kernel's sums
    (times ``factor``: 2 for the doubled int16 convolution weights, see :func:`pack_conv_pairs16`).

    Conv and fully-connected kernels then multiply raw int8 inputs, which lets the SIMD loops skip
    the per-element offset; the int32 total is unchanged (integer addition is associative).
    """
    filt = e.model.tensors[op.inputs[1]]
    channels = filt.shape[0]
    bias = np.zeros(channels, np.int64)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        t = e.model.tensors[op.inputs[2]]
        if t.type != "INT32" or t.data is None:
            raise InputError(f"operator {op.name} (op #{op.index}): {t.type} bias has no C kernel; "
                             "use the tflm format for this model", stage="export")
        bias = np.asarray(t.data, np.int64).reshape(-1)
    sums = np.asarray(filt.data, np.int64).reshape(channels, -1).sum(axis=1)
    folded = (factor * (bias + in_offset * sums)) & 0xFFFFFFFF
    return e.array("int32_t", np.where(folded >= 1 << 31, folded - (1 << 32), folded))


def bias_values(e, op):
    """The int32 bias values of a conv / fully-connected operator, or None without bias."""
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        data = e.model.tensors[op.inputs[2]].data
        return None if data is None else np.asarray(data, np.int64).reshape(-1)
    return None


def bias_array(e, op) -> str:
    """The C name of ``op``'s int32 bias array (a constant), or ``0`` when it has none."""
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        t = e.model.tensors[op.inputs[2]]
        if t.type != "INT32":
            raise InputError(f"operator {op.name} (op #{op.index}): {t.type} bias has no C kernel; "
                             "use the tflm format for this model", stage="export")
        return e.const(op.inputs[2])
    return "0"


def _require_4d(e, op, *tensors) -> None:
    for t in tensors:
        if len(t.shape) != 4:
            raise InputError(f"operator {op.name} (op #{op.index}): expects 4-D tensors, got "
                             f"{t.shape}; use the tflm format for this model", stage="export")


def conv_params(e, op, filt, depthwise: bool) -> tuple[str, str, str, tuple[int, ...], int]:
    """The ``edgec_conv_params`` struct, multipliers and shifts of a CONV_2D / DEPTHWISE_CONV_2D whose
    weights are ``filt`` (int8 or int4: the geometry and requantization are the same); returns their C
    names, the shape ``(n, ih, iw, ic, oh, ow, oc, fh, fw)`` and the requantization path (rq_mode)."""
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    _require_4d(e, op, inp, filt, out)
    o = op.options
    n, ih, iw, ic = inp.shape
    _, oh, ow, oc = out.shape
    fh, fw = filt.shape[1], filt.shape[2]
    if not depthwise and filt.shape[3] != ic:
        raise InputError(f"operator CONV_2D (op #{op.index}): grouped convolution has no C kernel; "
                         "use the tflm format for this model", stage="export")
    sh, sw = int(o.strideH), int(o.strideW)
    dh, dw = int(o.dilationHFactor or 1), int(o.dilationWFactor or 1)
    ph, pw = _padding(ih, fh, sh, dh, oh), _padding(iw, fw, sw, dw, ow)
    mults, shifts, lo, hi, mode = conv_requant(e, op, filt, depthwise)
    params = e.struct("edgec_conv_params", [n, ih, iw, ic, oh, ow, oc, fh, fw, sh, sw, dh, dw, ph, pw,
                                            oc // ic, -zp(inp), zp(out), lo, hi, mode])
    return (params, e.array("int32_t", mults), e.array("int32_t", shifts), (n, ih, iw, ic, oh, ow, oc, fh, fw),
            mode)


def conv_requant(e, op, filt, depthwise: bool) -> tuple[list[int], list[int], int, int, int]:
    """A CONV_2D / DEPTHWISE_CONV_2D's per-channel multipliers and shifts, its activation bounds and
    its requantization path (rq_mode, :func:`fixedpoint.requant_mode`; 0 without constant weights).
    The emitter (:func:`conv_params`) and the kernel choice (:func:`dw3x3_fits`) both ask here."""
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    oc = out.shape[3]
    mults, shifts = conv_multipliers(scale(inp), filt.scales, scale(out), oc)
    lo, hi = act_bounds(e, op, out)
    mode = 0
    if filt.data is not None:
        w = np.asarray(filt.data)
        rows = w.reshape(-1, oc).T if depthwise else w.reshape(oc, -1)
        mode = requant_mode(bias_values(e, op), rows, -zp(inp), shifts, lo, hi)
    return mults, shifts, lo, hi, mode


def _conv_like(e, op, depthwise: bool) -> int:
    inp, filt = e.model.tensors[op.inputs[0]], e.model.tensors[op.inputs[1]]
    params, m, s, (n, ih, iw, ic, oh, ow, oc, fh, fw), mode = conv_params(e, op, filt, depthwise)
    k = fh * fw * ic
    in_place = op.index in e.plan.in_place
    wide = int16_kernel(e.model, op, in_place, e.wide_conv)
    # int16 weights (and bias) doubled where the requantization takes 2 * acc (rq_mode 1, 2)
    factor = 2 if wide and mode else 1
    doubled = ", doubled" if factor == 2 else ""
    if depthwise and wide:
        values = bias_values(e, op)
        table = conv_rq_table(e, op, mode)
        if table is None:  # dw3x3_fits chose the kernel only where the table exists
            raise RuntimeError(f"DEPTHWISE_CONV_2D (op #{op.index}): int16 kernel without its requantization table")
        block = pack_dw3x3(np.asarray(filt.data), np.zeros(oc, np.int64) if values is None else values,
                           table, factor)
        filt_c, bias = e.array("int32_t", block), None
    elif depthwise:
        bias, filt_c = bias_array(e, op), e.const(op.inputs[1])
    else:
        bias = _folded_bias(e, op, -zp(inp), factor)
        if wide:
            filt_c = e.const(op.inputs[1], pack=lambda w: pack_conv_pairs16(w, factor), tag=f"pairs, int16{doubled}")
        elif k % 4 == 0:
            filt_c = e.const(op.inputs[1], pack=pack_conv_pairs, tag="pairs")
        elif (fh, fw) != (1, 1):  # im2col windows padded to whole words: the SIMD pair loop takes them
            filt_c = e.const(op.inputs[1], pack=lambda w: pack_conv_pairs(pad_windows(w)), tag="pairs, padded")
        else:
            filt_c = e.const(op.inputs[1])
    patches = _patch_bytes(e.model, op, in_place, wide)
    base = e.plan.scratch(op.index).offset if patches or in_place else 0
    scratch = f"({e.prefix}_arena + {base})" if patches else "0"
    ring = f"({e.prefix}_arena + {base + patches})" if in_place else "0"
    if depthwise and wide:
        e.call(f"edgec_depthwise_s8_w16(&{params}, {e.ptr(op.inputs[0])}, {filt_c}, {m}, {s}, "
               f"{e.ptr(op.outputs[0])}, {scratch}, {ring});")
        return n * oh * ow * oc * fh * fw
    head = f"&{params}, {e.ptr(op.inputs[0])}, {filt_c}, {bias}, {m}, {s}"
    if wide:
        table = conv_rq_table(e, op, mode) if mode else None
        rq = e.array("int32_t", table) if table is not None else "0"
        e.call(f"edgec_conv_s8_w16({head}, {rq}, {e.ptr(op.outputs[0])}, {scratch}, {ring});")
    elif depthwise:
        e.call(f"edgec_depthwise_s8({head}, {e.ptr(op.outputs[0])}, {ring});")
    else:
        e.call(f"edgec_conv_s8({head}, {e.ptr(op.outputs[0])}, {scratch}, {ring});")
    return n * oh * ow * oc * fh * fw * (1 if depthwise else ic)


# Longest window (taps, rounded up to whole words) edgec_conv_quad expands (EDGEC_QUAD_MAX_K in
# edgec_dot.c); longer ones keep the int8 layout, whose two-pixel loop takes any length.
QUAD_MAX_K = 576


def conv16_fits(fh: int, fw: int, ic: int, ow: int, in_place: bool) -> bool:
    """Whether a CONV_2D takes the int16-weight four-pixel kernel (edgec_conv_s8_w16): a window of
    whole words (or an im2col window, padded to them) no longer than :data:`QUAD_MAX_K`, and not in
    place over rows of one pixel (four pixels would span more rows than the ring holds: the kernel
    would run them one at a time)."""
    k = fh * fw * ic
    return ((k % 4 == 0 or (fh, fw) != (1, 1)) and window_bytes(k) <= QUAD_MAX_K
            and not (in_place and ow == 1))


def dw3x3_fits(model, op) -> bool:
    """Whether a DEPTHWISE_CONV_2D takes the int16-weight 3x3 kernel (edgec_depthwise_s8_w16): 3x3,
    stride and dilation 1, depth multiplier 1, channels a multiple of 4, and a requantization the
    DSP shortcut takes with constants from a table (rq_mode 1 or 2, :func:`conv_rq_table`)."""
    inp, filt, out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    o = op.options
    ic, oc = inp.shape[3], out.shape[3]  # a depthwise filter's last axis is the output channels
    if not (tuple(filt.shape[1:3]) == (3, 3) and ic == oc and ic % 4 == 0 and filt.data is not None
            and (int(o.strideH), int(o.strideW)) == (1, 1)
            and (int(o.dilationHFactor or 1), int(o.dilationWFactor or 1)) == (1, 1)):
        return False
    view = SimpleNamespace(model=model)  # what conv_requant and conv_rq_table read of an emitter
    mode = conv_requant(view, op, filt, depthwise=True)[4]
    return mode != 0 and conv_rq_table(view, op, mode) is not None


def dw3x3_pairs(out_w: int) -> int:
    """Pairs of padded columns per expanded row of edgec_depthwise_s8_w16's DSP kernel: the
    out_w + 2 columns a 3x3 window sweeps, rounded up to pairs."""
    return (out_w + 3) // 2


def dw3x3_scratch_bytes(model, op) -> int:
    """Scratch of edgec_depthwise_s8_w16's DSP kernel: three input rows expanded to int16 pairs of
    padded columns (:func:`dw3x3_pairs`), in_c of them per pair."""
    return 3 * dw3x3_pairs(model.tensors[op.outputs[0]].shape[2]) * model.tensors[op.inputs[0]].shape[3] * 4


def pack_dw3x3(w: np.ndarray, bias, table, factor: int = 1) -> np.ndarray:
    """DEPTHWISE_CONV_2D 3x3 weights [1, 3, 3, C] as edgec_depthwise_s8_w16 reads them: per output
    channel 10 int32 words, for filter rows 0..2 the tap pairs {w0, w1} and {w1, w2} as int16 halves
    (low half first), then the bias and the channel's requantization constants m, k, r from
    :func:`conv_rq_table` (``table``, 3 per channel); weights and bias times ``factor`` (2: doubled,
    for the requantization's 2 * acc)."""
    w = np.asarray(w, np.int64).reshape(3, 3, -1) * factor
    halves = np.stack([w[:, 0], w[:, 1], w[:, 1], w[:, 2]], axis=1) & 0xFFFF  # [row, 4, C]
    words = (halves[:, 0::2] | (halves[:, 1::2] << 16)).transpose(2, 0, 1).reshape(-1, 6)  # [C, 6]
    words = np.where(words >= 1 << 31, words - (1 << 32), words)
    bias = np.asarray(bias, np.int64).reshape(-1, 1) * factor
    consts = np.asarray(table, np.int64).reshape(-1, 3)
    return np.concatenate([words, bias, consts], axis=1).reshape(-1)


def _geometry(model, op):
    inp, filt, out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    o = op.options
    ph = _padding(inp.shape[1], filt.shape[1], int(o.strideH), int(o.dilationHFactor or 1), out.shape[1])
    return inp, filt, out, ph


def row_in_place(model, op) -> bool:
    """Whether the conv kernel can write its output over its input row by row: one image, stride
    and dilation 1 vertically, and output rows exactly as long as input rows, so that output row r
    lands on input row r once the rows below it no longer need it (edgec_conv_s8's ring buffer)."""
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or is_int4(model, op):
        return False  # the int4 kernels write a separate output
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if len(inp.shape) != 4 or len(out.shape) != 4 or inp.shape[0] != 1:
        return False
    o = op.options
    same_rows = inp.shape[1] == out.shape[1] and inp.shape[2] * inp.shape[3] == out.shape[2] * out.shape[3]
    simd_depthwise = out.shape[3] == inp.shape[3] and inp.shape[3] % 4 == 0
    return (int(o.strideH) == 1 and int(o.dilationHFactor or 1) == 1 and same_rows
            and (op.name == "CONV_2D" or simd_depthwise))


def _ring_bytes(model, op) -> int:
    _, _, out, ph = _geometry(model, op)
    return (ph + 2) * out.shape[2] * out.shape[3]


def int16_kernel(model, op, in_place: bool, wide: bool) -> bool:
    """Whether a convolution runs an int16-weight kernel (edgec_conv_s8_w16, edgec_depthwise_s8_w16):
    the model's conv weights may be widened (``wide``, :func:`codegen.wide_conv_fits`) and the layer
    fits the kernel (:func:`conv16_fits`, :func:`dw3x3_fits`). The memory plan and the emitter both
    ask here, so the scratch they agree on is the one the kernel gets."""
    if not wide or op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or is_int4(model, op):
        return False
    inp, filt, out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    _, fh, fw, _ = filt.shape
    ic = inp.shape[3]  # a depthwise filter's last axis is the output channels
    if op.name == "DEPTHWISE_CONV_2D":
        return dw3x3_fits(model, op)
    return conv16_fits(fh, fw, ic, out.shape[2], in_place)


def _patch_bytes(model, op, in_place: bool, wide: bool) -> int:
    """The scratch of a convolution's kernel before its ring: two im2col windows for CONV_2D beyond
    1x1 (one for the int16 kernel, whose loop without the DSP takes one window at a time), the
    expanded rows of the int16 depthwise kernel; ``wide`` as :func:`int16_kernel` decided."""
    _, fh, fw, ic = model.tensors[op.inputs[1]].shape
    if op.name == "DEPTHWISE_CONV_2D":
        return dw3x3_scratch_bytes(model, op) if wide else 0
    if (fh, fw) == (1, 1):
        return 0
    return (1 if wide else 2) * window_bytes(fh * fw * ic)


def scratch_bytes(model, op, in_place: bool, *, wide: bool = False) -> int:
    """Scratch bytes an operator's kernel needs (:func:`_patch_bytes`), plus the ring of pending
    output rows when a convolution runs in place; ``wide``: the model's conv weights may be
    widened (:func:`int16_kernel` decides per layer)."""
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or is_int4(model, op):
        return 0  # the int4 kernels read the input window in place
    patches = _patch_bytes(model, op, in_place, int16_kernel(model, op, in_place, wide))
    return patches + (_ring_bytes(model, op) if in_place else 0)


def conv_2d(e, op) -> int:
    """CONV_2D, per-channel int8 weights, int32 bias."""
    return _conv_like(e, op, depthwise=False)


def depthwise_conv_2d(e, op) -> int:
    """DEPTHWISE_CONV_2D (any depth multiplier)."""
    return _conv_like(e, op, depthwise=True)


def window_bytes(k: int) -> int:
    """Bytes of one im2col window of ``k`` taps in edgec_conv_s8's scratch: rounded up to whole
    4-byte words (the padding bytes meet zero weights, see :func:`pad_windows`)."""
    return (k + 3) // 4 * 4


def pad_windows(w: np.ndarray) -> np.ndarray:
    """CONV_2D filters [out_c, f_h, f_w, in_c] as rows of :func:`window_bytes` weights, the added
    ones zero, so that a window whose length is not a multiple of 4 runs through the word loops;
    the sums (and the folded bias) are unchanged."""
    w = np.asarray(w).reshape(w.shape[0], -1)
    return np.pad(w, ((0, 0), (0, window_bytes(w.shape[1]) - w.shape[1])))


def pack_conv_pairs(w: np.ndarray) -> np.ndarray:
    """CONV_2D filters [out_c, f_h, f_w, in_c] with a window of k = f_h * f_w * in_c bytes, k a
    multiple of 4, in the order edgec_conv_channels reads them: output channels in pairs, each
    pair's 4-byte words alternating (channel 2p's word g, channel 2p+1's word g); an odd last
    channel as it is. A pair then streams through one pointer and starts at k * 2p."""
    w = np.asarray(w).reshape(w.shape[0], -1)
    channels, k = w.shape
    pairs = channels // 2
    packed = w[:2 * pairs].reshape(pairs, 2, k // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([packed, w[2 * pairs:].reshape(-1)])


# Largest right shift whose rounding constant can also carry the output offset: (out << r) + the
# shifted value stays within int32 (|value| < 2^30, 128 << 22 = 2^29).
FOLD_SHIFT_MAX = 22


def conv_rq_table(e, op, mode: int) -> list[int] | None:
    """edgec_conv_s8_w16's requantization constants for rq_mode 1 and 2: per output channel the
    multiplier m, k = 2^(r-1) + out_offset * 2^r and r (the right shift), so that an output is
    saturate((SMMULR(2 * acc, m) + sign + k) >> r), the reference's rounding and offset in one add;
    None when a shift is over :data:`FOLD_SHIFT_MAX` (the kernel then derives them per call)."""
    inp, filt, out = (e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    mults, shifts = conv_multipliers(scale(inp), filt.scales, scale(out), out.shape[3])
    rights = [-int(v) for v in shifts]
    if mode == 0 or max(rights) > FOLD_SHIFT_MAX or min(rights) < 1:
        return None
    return [v for m, r in zip(mults, rights) for v in (int(m), (1 << (r - 1)) + zp(out) * (1 << r), r)]


def pack_conv_pairs16(w: np.ndarray, factor: int = 1) -> np.ndarray:
    """CONV_2D filters [out_c, f_h, f_w, in_c] widened to int16 in the order edgec_conv_s8_w16 reads
    them, windows zero-padded to whole words (:func:`pad_windows`): output channels in pairs, per
    4-byte word g of the window the pair's even weights {0, 2} (first channel, then second), then
    its odd weights {1, 3}, the SMLAD operands SXTB16 makes of the input word; an odd last channel
    per word its even weights then its odd ones. Twice the bytes of :func:`pack_conv_pairs`.
    ``factor`` 2 doubles them (and the kernel's sums), for the requantization's 2 * acc."""
    w = pad_windows(w).astype(np.int16) * np.int16(factor)
    channels, k = w.shape
    pairs, groups = channels // 2, k // 4
    # lane = 2 * i + half: even (half 0) lanes 0, 2, odd (half 1) lanes 1, 3
    packed = w[:2 * pairs].reshape(pairs, 2, groups, 2, 2).transpose(0, 2, 4, 1, 3).reshape(-1)
    odd = w[2 * pairs:].reshape(-1, groups, 2, 2).transpose(0, 1, 3, 2).reshape(-1)
    return np.concatenate([packed, odd])


def pack_fc_weights(w: np.ndarray) -> np.ndarray:
    """FULLY_CONNECTED weights [out_depth, in_depth] in the order edgec_fc_s8 reads them: blocks
    of four rows, each block per group of four inputs the four rows' four bytes, then the rows'
    last in_depth % 4 bytes one row after the other; the last out_depth % 4 rows as they are. The
    SIMD loop then reads one pointer forward (pipelined single loads) and every block starts at
    4 * in_depth * block, each leftover row at in_depth * row, as in the unpacked layout."""
    w = np.asarray(w).reshape(w.shape[0], -1)
    rows, depth = w.shape
    blocks, full = rows // 4, depth // 4 * 4
    b = w[:blocks * 4].reshape(blocks, 4, depth)
    groups = b[:, :, :full].reshape(blocks, 4, full // 4, 4).transpose(0, 2, 1, 3).reshape(blocks, 4 * full)
    tails = b[:, :, full:].reshape(blocks, 4 * (depth - full))
    return np.concatenate([np.concatenate([groups, tails], axis=1).reshape(-1), w[blocks * 4:].reshape(-1)])


def pack_fc_weights16(w: np.ndarray) -> np.ndarray:
    """FULLY_CONNECTED weights [out_depth, in_depth] widened to int16 in the order edgec_fc_s8_w16
    reads them: blocks of four rows as in :func:`pack_fc_weights`, but per group of four inputs
    each row's weights 0, 2, 1, 3 (the two SMLAD operands SXTB16 would make of the row's word), so
    the kernel loads them ready; the rows' last in_depth % 4 weights and the last out_depth % 4
    rows as they are. Twice the bytes of the int8 layout."""
    w = np.asarray(w).reshape(w.shape[0], -1).astype(np.int16)
    rows, depth = w.shape
    blocks, full = rows // 4, depth // 4 * 4
    b = w[:blocks * 4].reshape(blocks, 4, depth)
    groups = b[:, :, :full].reshape(blocks, 4, full // 4, 4)[..., [0, 2, 1, 3]]
    groups = groups.transpose(0, 2, 1, 3).reshape(blocks, 4 * full)
    tails = b[:, :, full:].reshape(blocks, 4 * (depth - full))
    return np.concatenate([np.concatenate([groups, tails], axis=1).reshape(-1), w[blocks * 4:].reshape(-1)])


def fully_connected(e, op) -> int:
    """FULLY_CONNECTED with per-tensor or per-channel int8 weights (int4: :mod:`.int4`)."""
    inp, filt, out = (e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if filt.data is None or len(filt.shape) != 2:
        raise InputError(f"operator FULLY_CONNECTED (op #{op.index}): needs constant 2-D weights; "
                         "use the tflm format for this model", stage="export")
    out_depth, in_depth = filt.shape
    batches = nelem(inp) // in_depth
    per_channel = filt.scales.size > 1
    if per_channel:
        mults, shifts = conv_multipliers(scale(inp), filt.scales, scale(out), out_depth)
    else:
        mult, shift = fc_multiplier(scale(inp), float(filt.scales[0]), scale(out))
        mults, shifts = [mult], [shift]
    if int(np.abs(filt.zero_points).max(initial=0)) != 0:
        raise InputError(f"operator FULLY_CONNECTED (op #{op.index}): asymmetric weights have no C "
                         "kernel; use the tflm format for this model", stage="export")
    lo, hi = act_bounds(e, op, out)
    mode = requant_mode(bias_values(e, op), filt.data.reshape(out_depth, -1), -zp(inp), shifts, lo, hi)
    params = e.struct("edgec_fc_params", [batches, in_depth, out_depth, int(per_channel),
                                          -zp(inp), zp(out), lo, hi, mode])
    m, s = e.array("int32_t", mults), e.array("int32_t", shifts)
    bias = _folded_bias(e, op, -zp(inp))
    if e.wide_fc:
        filt_c, kernel = e.const(op.inputs[1], pack=pack_fc_weights16, tag="fc4, int16"), "edgec_fc_s8_w16"
    else:
        filt_c, kernel = e.const(op.inputs[1], pack=pack_fc_weights, tag="fc4"), "edgec_fc_s8"
    e.call(f"{kernel}(&{params}, {e.ptr(op.inputs[0])}, {filt_c}, {bias}, "
           f"{m}, {s}, {e.ptr(op.outputs[0])});")
    return batches * out_depth * in_depth


def _pool(e, op, kernel: str) -> int:
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    _require_4d(e, op, inp, out)
    o = op.options
    n, ih, iw, c = inp.shape
    _, oh, ow, _ = out.shape
    fh, fw, sh, sw = int(o.filterHeight), int(o.filterWidth), int(o.strideH), int(o.strideW)
    lo, hi = act_bounds(e, op, out)
    params = e.struct("edgec_pool_params", [n, ih, iw, c, oh, ow, fh, fw, sh, sw,
                                            _padding(ih, fh, sh, 1, oh), _padding(iw, fw, sw, 1, ow),
                                            lo, hi])
    e.call(f"{kernel}(&{params}, {e.ptr(op.inputs[0])}, {e.ptr(op.outputs[0])});")
    return 0


def average_pool_2d(e, op) -> int:
    """AVERAGE_POOL_2D (same scale in and out, as the converter guarantees)."""
    return _pool(e, op, "edgec_avgpool_s8")


def max_pool_2d(e, op) -> int:
    """MAX_POOL_2D."""
    return _pool(e, op, "edgec_maxpool_s8")


def _broadcast_strides(shape, out_shape) -> list[int]:
    shape = [1] * (4 - len(shape)) + [int(d) for d in shape]
    strides, step = [0] * 4, 1
    for k in range(3, -1, -1):
        strides[k] = 0 if shape[k] == 1 and out_shape[k] != 1 else step
        step *= shape[k]
    return strides


def _binary(e, op, kernel: str, multipliers) -> int:
    a, b, out = (e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if max(len(a.shape), len(b.shape), len(out.shape)) > 4:
        raise InputError(f"operator {op.name} (op #{op.index}): more than 4 dimensions; "
                         "use the tflm format for this model", stage="export")
    out_shape = [1] * (4 - len(out.shape)) + [int(d) for d in out.shape]
    lo, hi = act_bounds(e, op, out)
    left_shift, mults = multipliers(a, b, out)
    params = e.struct("edgec_binary_params", [
        out_shape, _broadcast_strides(a.shape, out_shape), _broadcast_strides(b.shape, out_shape),
        -zp(a), -zp(b), zp(out), left_shift, *mults, lo, hi])
    e.call(f"{kernel}(&{params}, {e.ptr(op.inputs[0])}, {e.ptr(op.inputs[1])}, "
           f"{e.ptr(op.outputs[0])});")
    return 0


def _add_multipliers(a, b, out):
    left_shift = 20
    twice_max = 2.0 * float(max(np.float32(scale(a)), np.float32(scale(b))))
    m1 = quantize_multiplier(scale(a) / twice_max)
    m2 = quantize_multiplier(scale(b) / twice_max)
    mo = quantize_multiplier(twice_max / ((1 << left_shift) * scale(out)))
    return left_shift, [*m1, *m2, *mo]


def _mul_multipliers(a, b, out):
    mo = quantize_multiplier(scale(a) * scale(b) / scale(out))
    return 0, [0, 0, 0, 0, *mo]


def add(e, op) -> int:
    """ADD with broadcasting and fused activation."""
    return _binary(e, op, "edgec_add_s8", _add_multipliers)


def mul(e, op) -> int:
    """MUL with broadcasting and fused activation."""
    return _binary(e, op, "edgec_mul_s8", _mul_multipliers)
