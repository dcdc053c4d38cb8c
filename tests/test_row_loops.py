"""The CPU backend's row loops called directly (tests/rows_harness.cc): a row is split into
spans (runs of equal bits of an FMix / ClassMix bit mask, a box's inside and outside), or on
the fused path into channel rows mixed 8 lanes at a time with a scalar tail, and the spans must
cover the row exactly. The operator's tests compare whole outputs, where a span one
pixel too long is hidden whenever the next row, written after it, overwrites the extra pixel;
here each call's rows are checked against the mask's definition and the output's bytes before
and after those rows must be untouched."""

import ctypes
import os

import numpy as np
import pytest

from conftest import build_test_library

HERE = os.path.dirname(os.path.abspath(__file__))
P = ctypes.c_void_p
GUARD = 64  # bytes before and after the rows a call writes, which must keep their value
KIND_BOX, KIND_BITS = 0, 2  # mask.h MaskKind


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    so = build_test_library(str(tmp_path_factory.mktemp("rows")), "rows",
                            [os.path.join(HERE, "rows_harness.cc")])
    so.msda_bit_run_end.restype = ctypes.c_int
    so.msda_bit_run_end.argtypes = [P, ctypes.c_int64, ctypes.c_int, ctypes.c_int]
    so.msda_mix_rows.restype = ctypes.c_int
    so.msda_mix_rows.argtypes = [ctypes.c_int, P, P, P, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                 ctypes.c_int, ctypes.c_int, P, ctypes.c_float, P,
                                 ctypes.c_int64, ctypes.c_int64]
    so.msda_mix_rows_fused.restype = ctypes.c_int
    so.msda_mix_rows_fused.argtypes = [ctypes.c_int, P, P, P, *[ctypes.c_int] * 8,
                                       P, ctypes.c_float, P, P, ctypes.c_int64, ctypes.c_int64]
    return so


def run_rows(h, w, rng, kinds=("short", "long", "mixed", "zeros", "ones", "tail")):
    """An h x w bit mask (uint8 0 / 1) made of runs: short ones (1-3 pixels), long ones (up to
    the row), a mix, whole rows of 0 or 1, and rows whose last 1-9 pixels are one run (the
    whole-byte steps of BitRunEnd end there)."""
    mask = np.zeros((h, w), np.uint8)
    for r in range(h):
        kind = kinds[rng.integers(len(kinds))]
        if kind in ("zeros", "ones"):
            mask[r] = kind == "ones"
            continue
        c, v = 0, rng.integers(2)
        while c < w:
            top = {"short": 4, "long": w + 1, "mixed": 24, "tail": 24}[kind]
            n = int(rng.integers(1, top))
            mask[r, c:c + n] = v
            c, v = c + n, 1 - v
        if kind == "tail":
            mask[r, max(0, w - int(rng.integers(1, 10))):] = rng.integers(2)
    return mask


def pack(mask):
    """Row-major bits, least significant first (mask.h MaskBit), with 8 bytes of slack set to
    the opposite of the last bit (so that no run seems to continue past the mask's end)."""
    flat = mask.reshape(-1)
    pad = 0xFF if flat.size and flat[-1] == 0 else 0x00
    return np.concatenate([np.packbits(flat, bitorder="little"), np.full(8, pad, np.uint8)])


@pytest.mark.parametrize("w", list(range(1, 41)) + [63, 64, 65, 221, 224])
def test_bit_run_end_is_the_end_of_the_run(rows, w):
    """BitRunEnd from every column of every row equals the end of that run of equal bits, for
    rows starting at any bit offset in their byte (W not a multiple of 8)."""
    rng = np.random.default_rng(w)
    h = 11
    mask = run_rows(h, w, rng)
    bits = pack(mask)
    ptr = bits.ctypes.data_as(P)
    for r in range(h):
        row = mask[r]
        # the end of the run at c: the first column after c whose bit differs, else w
        change = np.flatnonzero(np.diff(row)) + 1
        for c0 in range(w):
            later = change[change > c0]
            want = int(later[0]) if later.size else w
            got = rows.msda_bit_run_end(ptr, r * w, c0, w)
            assert got == want, (r, c0, row.tolist())


OUT_TYPES = {np.dtype(np.uint8): 0, np.dtype(np.float16): 1, np.dtype(np.float32): 2}


def guarded(shape, dtype):
    """(raw, out): an output array of `shape` inside GUARD bytes either side, all 0xA5."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.full(size + 2 * GUARD, 0xA5, np.uint8)
    return raw, raw[GUARD:GUARD + size].view(dtype).reshape(shape)


def kept_outside(raw, written):
    """Whether the guard bytes and every element of the output not in `written` (a bool array
    of the output's shape) kept their 0xA5 bytes."""
    inside = raw[GUARD:len(raw) - GUARD].reshape(*written.shape, -1)
    return bool(np.all(raw[:GUARD] == 0xA5) and np.all(raw[len(raw) - GUARD:] == 0xA5) and
                np.all(inside[~written] == 0xA5))


def call_rows(rows, out_dtype, own, partner, planar, kind, box, outside, bits, q0, q1):
    """msda_mix_rows over rows [q0, q1), its output inside guard bytes; returns the output
    (as the sample's shape) and whether the guards and the rows outside [q0, q1) kept their
    bytes."""
    c, h, w = own.shape if planar else np.roll(own.shape, 1)  # (H, W, C) -> (C, H, W)
    raw, out = guarded(own.shape, out_dtype)
    rc = rows.msda_mix_rows(OUT_TYPES[np.dtype(out_dtype)], out.ctypes.data_as(P),
                            own.ctypes.data_as(P), partner.ctypes.data_as(P), h, w, c,
                            int(planar), kind, np.asarray(box, np.int32).ctypes.data_as(P),
                            outside, None if bits is None else bits.ctypes.data_as(P), q0, q1)
    assert rc == 0
    written = np.zeros(own.shape, bool)  # rows: one channel's (CHW) or all channels' (HWC)
    written.reshape(c * h if planar else h, -1)[q0:q1] = True
    return out, kept_outside(raw, written)


def convert(v, out_dtype):
    """float32 values to the output type as ConvertOut does it (no NaN here): uint8 saturated
    and rounded half to even, float16 rounded to nearest even."""
    if out_dtype == np.uint8:
        return np.clip(np.rint(v), 0, 255).astype(np.uint8)
    return v.astype(out_dtype)


def expected(own, partner, m, planar, out_dtype):
    """MixValue (spec 1) per element for the mask m (H x W), converted to the output type."""
    mm = m[None] if planar else m[:, :, None]
    a, b = own.astype(np.float32), partner.astype(np.float32)
    v = np.where(mm == 1, a, np.where(mm == 0, b, mm * a + (np.float32(1) - mm) * b))
    return convert(v, out_dtype)


def row_splits(rng, rows_total):
    """The whole sample in one call, and in 2-3 calls of consecutive rows (as tasks split it)."""
    if rows_total == 1:
        return [[(0, 1)]]
    cuts = np.sort(rng.choice(np.arange(1, rows_total), min(2, rows_total - 1), replace=False))
    return [[(0, rows_total)], list(zip([0, *cuts], [*cuts, rows_total]))]


SHAPES = [(1, 1), (3, 7), (9, 15), (17, 15), (5, 17), (4, 40), (2, 63), (3, 221), (2, 224)]


@pytest.mark.parametrize("channels,planar", [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("h,w", SHAPES)
def test_bit_mask_rows_cover_exactly_their_rows(rows, h, w, channels, planar):
    """FMix / ClassMix rows (MixRows, kMaskBits): every element the own or the partner's value as
    its bit says, nothing written outside the rows of the call (9 x 15 and 17 x 15 put a row's
    last 7 pixels at the start of a byte, where a whole-byte step one pixel short of the row's
    end would reach into the next row)."""
    rng = np.random.default_rng(h * 1000 + w + channels + 10 * planar)
    shape = (channels, h, w) if planar else (h, w, channels)
    for _ in range(6):
        mask = run_rows(h, w, rng)
        own = rng.integers(0, 256, shape, dtype=np.uint8)
        partner = rng.integers(0, 256, shape, dtype=np.uint8)
        want = expected(own, partner, mask.astype(np.float32), planar, np.uint8)
        total = channels * h if planar else h
        for split in row_splits(rng, total):
            got = np.zeros_like(want)
            for q0, q1 in split:
                out, clean = call_rows(rows, np.uint8, own, partner, planar, KIND_BITS,
                                       (0, 0, 0, 0), 1.0, pack(mask), q0, q1)
                assert clean, f"rows [{q0}, {q1}) wrote outside themselves"
                part = out.reshape(total, -1)[q0:q1]
                got.reshape(total, -1)[q0:q1] = part
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("outside,out_dtype", [(1.0, np.uint8), (0.0, np.uint8),
                                               (0.3, np.float32), (0.7, np.uint8)])
@pytest.mark.parametrize("h,w", SHAPES)
def test_box_rows_cover_exactly_their_rows(rows, h, w, outside, out_dtype):
    """Box rows (MixRows, kMaskBox: CutMix's outside 1, Mixup's blend weight, boxes at the
    image's edges, empty and whole-image boxes): MixValue of every element, nothing written
    outside the rows of the call."""
    rng = np.random.default_rng(h * 1000 + w + int(outside * 10))
    boxes = [(0, 0, 0, 0), (0, h, 0, w), (0, h, 0, 1), (h - 1, h, w - 1, w)]
    for _ in range(6):
        y0, x0 = rng.integers(0, h + 1), rng.integers(0, w + 1)
        boxes.append((y0, rng.integers(y0, h + 1), x0, rng.integers(x0, w + 1)))
    for channels, planar in ((3, False), (3, True), (1, False)):
        shape = (channels, h, w) if planar else (h, w, channels)
        own = rng.integers(0, 256, shape, dtype=np.uint8)
        partner = rng.integers(0, 256, shape, dtype=np.uint8)
        total = channels * h if planar else h
        for box in boxes:
            y0, y1, x0, x1 = box
            m = np.full((h, w), outside, np.float32)
            if x0 < x1:
                m[y0:y1, x0:x1] = 0.0
            want = expected(own, partner, m, planar, out_dtype)
            for split in row_splits(rng, total):
                got = np.zeros_like(want)
                for q0, q1 in split:
                    out, clean = call_rows(rows, out_dtype, own, partner, planar, KIND_BOX, box,
                                           outside, None, q0, q1)
                    assert clean, f"box {box}: rows [{q0}, {q1}) wrote outside themselves"
                    got.reshape(total, -1)[q0:q1] = out.reshape(total, -1)[q0:q1]
                np.testing.assert_array_equal(got.view(f"u{got.itemsize}"),
                                              want.view(f"u{want.itemsize}"), err_msg=str(box))


def fused_expected(own, partner, m, in_planar, out_planar, flips, norm, out_dtype):
    """MixValue (spec 1) of the mirrored sources (spec 7's order: mirror, mix, normalise,
    convert) in the output's layout."""
    a, b = ((x.transpose(1, 2, 0) if in_planar else x) for x in (own, partner))  # HWC
    a, b = (x[:, ::-1] if f else x for x, f in zip((a, b), flips))
    v = expected(a, b, m, False, np.float32)
    if norm is not None:
        c = v.shape[2]
        v = (v - norm[:c]) * norm[c:]
    v = convert(v, out_dtype)
    return np.ascontiguousarray(v.transpose(2, 0, 1) if out_planar else v)


def call_fused(rows, out_dtype, own, partner, in_planar, out_planar, flips, kind, box, outside,
               bits, norm, q0, q1):
    """msda_mix_rows_fused over frame-rows [q0, q1), its output inside guard bytes; returns the
    output, which of its elements the call should write (rows q0..q1 of every plane of a CHW
    output), and whether the guards and the other elements kept their bytes."""
    c, h, w = own.shape if in_planar else np.roll(own.shape, 1)  # (H, W, C) -> (C, H, W)
    out_shape = (c, h, w) if out_planar else (h, w, c)
    raw, out = guarded(out_shape, out_dtype)
    rc = rows.msda_mix_rows_fused(
        OUT_TYPES[np.dtype(out_dtype)], out.ctypes.data_as(P), own.ctypes.data_as(P),
        partner.ctypes.data_as(P), h, w, c, int(in_planar), int(out_planar), *flips, kind,
        np.asarray(box, np.int32).ctypes.data_as(P), outside,
        None if bits is None else bits.ctypes.data_as(P),
        None if norm is None else norm.ctypes.data_as(P), q0, q1)
    assert rc == 0
    written = np.zeros(out_shape, bool)
    (written[:, q0:q1] if out_planar else written[q0:q1])[...] = True
    return out, written, kept_outside(raw, written)


@pytest.mark.parametrize("out_dtype", [np.uint8, np.float16, np.float32])
@pytest.mark.parametrize("channels,in_planar,out_planar", [
    (3, False, True), (3, False, False), (3, True, False), (3, True, True), (1, False, True),
    (4, False, True), (4, True, False), (2, False, False)])
def test_fused_rows_cover_exactly_their_rows(rows, channels, in_planar, out_planar, out_dtype):
    """The fused path (MixRowsFused: mirror, normalisation, layout change; its row buffers kept
    from call to call, as a task's are): every element as spec 7 computes it, for widths on
    either side of the 8-lane loops' multiples, and nothing written outside the output rows of
    the call (in every channel plane of a CHW output)."""
    itemsize = np.dtype(out_dtype).itemsize
    rng = np.random.default_rng(channels * 100 + 10 * in_planar + out_planar + itemsize)
    mean = rng.uniform(60, 160, channels).astype(np.float32)
    inv_std = (1 / rng.uniform(20, 80, channels)).astype(np.float32)
    for h, w in [(1, 1), (3, 7), (2, 8), (4, 9), (9, 15), (5, 17), (3, 40), (2, 221)]:
        shape = (channels, h, w) if in_planar else (h, w, channels)
        own = rng.integers(0, 256, shape, dtype=np.uint8)
        partner = rng.integers(0, 256, shape, dtype=np.uint8)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        box = (y0, rng.integers(y0, h + 1), x0, rng.integers(x0, w + 1))
        bits_mask = run_rows(h, w, rng)
        for kind, outside in ((KIND_BITS, 1.0), (KIND_BOX, 1.0), (KIND_BOX, 0.37)):
            if kind == KIND_BITS:
                m, bits = bits_mask.astype(np.float32), pack(bits_mask)
            else:
                m, bits = np.full((h, w), outside, np.float32), None
                m[box[0]:box[1], box[2]:box[3]] = 0.0
            for norm in (None, np.concatenate([mean, inv_std])):
                flips = tuple(int(f) for f in rng.integers(0, 2, 2))
                want = fused_expected(own, partner, m, in_planar, out_planar, flips, norm,
                                      out_dtype)
                for split in row_splits(rng, h):
                    got = np.zeros_like(want)
                    for q0, q1 in split:
                        out, written, clean = call_fused(
                            rows, out_dtype, own, partner, in_planar, out_planar, flips, kind,
                            box, outside, bits, norm, q0, q1)
                        assert clean, f"{(h, w)} rows [{q0}, {q1}) wrote outside themselves"
                        got[written] = out[written]
                    np.testing.assert_array_equal(
                        got.view(f"u{itemsize}"), want.view(f"u{itemsize}"),
                        err_msg=f"{(h, w)} kind {kind} outside {outside} flips {flips} "
                                f"norm {norm is not None}")
