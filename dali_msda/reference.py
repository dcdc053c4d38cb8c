"""NumPy-only reference of ``fn.msda.mix``: the specification (docs/methods.md) in code.

"Spec N" below is section N of docs/methods.md.

It is the oracle of the tests and of the benchmarks' correctness gate, so it is written for
reading, not for speed. Given the same per-sample parameters (apply decision, ``lam``, centre) it
reproduces the operator bit for bit on masks, uint8 and float32 outputs (FMix also needs the noise
and the rounding coin, which the operator takes as ``fmix_noise`` and reports through its label
weight); the operator's own random draws (Philox, seeded) are not reproduced here;
``draw_params`` samples the same distributions with a NumPy generator instead.

Conventions (spec section 1): sample ``i`` is mixed with ``partner(i) = B - 1 - i``; its mask
``M`` (H x W, float32) is the weight of its OWN image::

    out_i = M * x_i + (1 - M) * x_j
    target_i = w * smooth(y_i) + (1 - w) * smooth(y_j),   w = mean(M) (the label weight)
"""

import math

import numpy as np

from .methods import BOX_METHODS, MAP_METHODS, METHODS, MODES  # noqa: F401  (names and ids)

MIN_VISIBLE = 0.2  # spec 13: YOLOX's box_candidates area_thr
LAYOUTS = ("HWC", "CHW", "FHWC", "FCHW")
MIN_GAUSS_LAM = 1e-12  # GMix: lam' is clamped to this (spec 6)


# ---- spec section 2: shared draws -------------------------------------------------------------

def partner(i, batch_size):
    """The official pairing: the batch reversed. The middle of an odd batch is its own partner."""
    return batch_size - 1 - i


def center_from_relative(rel, size):
    """Pixel centre from a relative one in [0, 1): min(floor(rel * size), size - 1)."""
    return min(max(int(math.floor(float(np.float32(rel)) * size)), 0), size - 1)


def draw_sources(mode, batch_size):
    """Per sample, the sample whose draw it uses (the operator's DrawSource): 0 in batch mode,
    itself in elem mode, the first of its pair, min(i, B - 1 - i), in pair mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    i = np.arange(batch_size)
    return {"batch": np.zeros_like(i), "elem": i, "pair": np.minimum(i, batch_size - 1 - i)}[mode]


def draw_count(mode, batch_size):
    """How many draws a batch makes: 1 in batch mode, B in elem mode, ceil(B / 2) in pair mode
    (draw_sources indexes them)."""
    return {"batch": 1, "elem": batch_size, "pair": (batch_size + 1) // 2}[mode]


def draw_params(rng, batch_size, height, width, alpha=1.0, prob=1.0, mode="batch"):
    """Sample (apply, lam, cy, cx) per sample as the operator does, from a NumPy Generator.

    ``batch`` mode: one draw shared by the batch; ``elem``: one draw per sample; ``pair``: one
    draw per pair, sample i's (i <= B - 1 - i) for samples i and B - 1 - i.
    """
    src = draw_sources(mode, batch_size)
    n_draws = draw_count(mode, batch_size)
    apply = rng.random(n_draws) < prob
    cy = rng.integers(0, height, n_draws)
    cx = rng.integers(0, width, n_draws)
    lam = rng.beta(alpha, alpha, n_draws).astype(np.float32)
    apply, lam, cy, cx = (a[src] for a in (apply, lam, cy, cx))
    return {"apply": apply, "lam": lam, "cy": cy, "cx": cx}


# ---- spec sections 3-6: masks -------------------------------------------------------------------

BOXES = ("even", "exact")


def cut_box(side, cy, cx, height, width, box="even"):
    """Box of side ratio `side` around (cy, cx), clipped (spec 4): rows [y0, y1), cols [x0, x1).
    `box="even"`: [cy - cut_h // 2, cy + cut_h // 2), an even side (the CutMix and HMix/GMix
    authors' code, timm's rand_bbox up to 1.0.28); "exact": [cy - cut_h // 2, cy + (cut_h + 1)
    // 2) (timm's rand_bbox from 1.0.29)."""
    if box not in BOXES:
        raise ValueError(f"box must be one of {BOXES}; got {box!r}")
    cut_h, cut_w = int(height * side), int(width * side)
    up_h, up_w = ((cut_h + 1) // 2, (cut_w + 1) // 2) if box == "exact" else (cut_h // 2,
                                                                             cut_w // 2)
    y0 = min(max(cy - cut_h // 2, 0), height)
    y1 = min(max(cy + up_h, 0), height)
    x0 = min(max(cx - cut_w // 2, 0), width)
    x1 = min(max(cx + up_w, 0), width)
    return y0, y1, x0, x1


def box_mask(box, outside, height, width):
    """M = 0 inside the box, `outside` elsewhere."""
    mask = np.full((height, width), np.float32(outside), dtype=np.float32)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = 0.0
    return mask


def mixup_mask(lam, height, width):
    """Spec 3: M = lam everywhere; the label weight is lam."""
    lam = np.float32(lam)
    return np.full((height, width), lam, dtype=np.float32), float(lam)


def cutmix_mask(lam, cy, cx, height, width, correct_lam=True, box="even"):
    """Spec 4: the partner inside a box of side ratio sqrt(1 - lam); label weight from its area."""
    lam = float(np.float32(lam))
    box = cut_box(math.sqrt(1.0 - lam), cy, cx, height, width, box)
    area = (box[1] - box[0]) * (box[3] - box[2])
    weight = 1.0 - area / (float(height) * width) if correct_lam else lam
    return box_mask(box, 1.0, height, width), weight


def minmax_box(rng, height, width, minmax):
    """Spec 4b, timm's rand_bbox_minmax (timm >= 1.0.29): sides uniform over [floor(size min),
    floor(size max)), the top-left corner uniform over every place where the box fits, the edge
    included. (y0, y1, x0, x1); `rng` a NumPy Generator."""
    cut_h = int(rng.integers(int(height * minmax[0]), int(height * minmax[1])))
    cut_w = int(rng.integers(int(width * minmax[0]), int(width * minmax[1])))
    y0 = int(rng.integers(0, height - cut_h + 1))
    x0 = int(rng.integers(0, width - cut_w + 1))
    return y0, y0 + cut_h, x0, x0 + cut_w


def area_box(rng, height, width, area=(0.02, 0.4), aspect=(0.3, 1 / 0.3)):
    """Spec 4b, UniMatch's obtain_cutmix_box (its coin p is the draw's `apply`): an area share
    drawn once, then aspect and top-left corner drawn again until the box fits. (y0, y1, x0,
    x1); `rng` a NumPy Generator."""
    size = rng.uniform(area[0], area[1]) * height * width
    while True:
        ratio = rng.uniform(aspect[0], aspect[1])
        w = int(np.sqrt(size / ratio))
        h = int(np.sqrt(size * ratio))
        x0 = int(rng.integers(0, width))
        y0 = int(rng.integers(0, height))
        if x0 + w <= width and y0 + h <= height:
            return y0, y0 + h, x0, x0 + w


def ranged_cutmix_mask(box, height, width):
    """Spec 4b: M = 0 inside a drawn box, 1 outside; the label weight is the area left."""
    y0, y1, x0, x1 = box
    return box_mask(box, 1.0, height, width), 1.0 - (y1 - y0) * (x1 - x0) / (height * width)


def hmix_mask(lam, cy, cx, height, width, ratio=0.5, box="even"):
    """Spec 5: box of side ratio sqrt(r (1 - lam)), weight a = lam / lam_box outside it."""
    lam = float(np.float32(lam))
    ratio = float(np.float32(ratio))
    box = cut_box(math.sqrt(ratio * (1.0 - lam)), cy, cx, height, width, box)
    lam_box = 1.0 - (box[1] - box[0]) * (box[3] - box[2]) / (float(height) * width)
    a = np.float32(min(1.0, lam / lam_box) if lam_box > 0.0 else 0.0)
    return box_mask(box, a, height, width), float(a) * lam_box


def gaussian_factors(lam, cy, cx, height, width):
    """GMix's separable Gaussian: G(row, col) = gy[row] * gx[col], with
    gy[row] = exp(-pi (row - cy)^2 / H^2 / lam'), gx likewise; lam' = min(lam, 1 - lam)."""
    lam = float(np.float32(lam))
    lp = max(lam if lam < 0.5 else 1.0 - lam, MIN_GAUSS_LAM)
    hh, ww = float(height) * height, float(width) * width
    gy = np.array([math.exp(-math.pi * float((r - cy) ** 2) / hh / lp) for r in range(height)],
                  dtype=np.float32)
    gx = np.array([math.exp(-math.pi * float((c - cx) ** 2) / ww / lp) for c in range(width)],
                  dtype=np.float32)
    return gy, gx


def gmix_mask(lam, cy, cx, height, width):
    """Spec 6: M = G (lam < 0.5, the blob shows the own image) or 1 - G (the partner's).

    exp(-pi (a + b) / l) = exp(-pi a / l) * exp(-pi b / l): G is evaluated as the float32 product
    of the two float32 factors (as the operator does); `gmix_mask_direct` is the literal formula.
    The label weight is the float64 sum of the float32 mask over H W (spec 7).
    """
    gy, gx = gaussian_factors(lam, cy, cx, height, width)
    g = gy[:, None] * gx[None, :]
    mask = g if float(np.float32(lam)) < 0.5 else np.float32(1.0) - g
    return mask, float(mask.sum(dtype=np.float64)) / (float(height) * width)


def gmix_mask_direct(lam, cy, cx, height, width):
    """The spec-6 formula as written, in float64: exp(-pi (dy^2/H^2 + dx^2/W^2) / lam')."""
    lam = float(np.float32(lam))
    lp = max(lam if lam < 0.5 else 1.0 - lam, MIN_GAUSS_LAM)
    rows = (np.arange(height)[:, None] - cy) ** 2 / float(height) ** 2
    cols = (np.arange(width)[None, :] - cx) ** 2 / float(width) ** 2
    g = np.exp(-math.pi * (rows + cols) / lp)
    return g if lam < 0.5 else 1.0 - g


# ---- spec section 10: ResizeMix -----------------------------------------------------------------

def resized_box(tau, cy, cx, height, width):
    """ResizeMix's box: floor(H tau) x floor(W tau) around (cy, cx), shifted (not clipped) to
    lie inside the image, as the official getbox_new does (spec 10)."""
    h, w = math.floor(height * float(tau)), math.floor(width * float(tau))
    y0 = min(max(cy - h // 2, 0), height)
    y1 = min(max(y0 + h, 0), height)
    y0 = min(max(y1 - h, 0), height)
    x0 = min(max(cx - w // 2, 0), width)
    x1 = min(max(x0 + w, 0), width)
    x0 = min(max(x1 - w, 0), width)
    return y0, y1, x0, x1


def resizemix_mask(tau, cy, cx, height, width):
    """(mask, label weight): 0 in the box the resized partner covers, 1 elsewhere; the own
    label's weight is 1 - box area / image area (nothing pasted when the box is empty)."""
    y0, y1, x0, x1 = box = resized_box(tau, cy, cx, height, width)
    area = (y1 - y0) * (x1 - x0)
    if area == 0:
        return np.ones((height, width), np.float32), 1.0
    return box_mask(box, 1.0, height, width), 1.0 - area / (height * width)


def linear_taps(length, size):
    """Bilinear taps of an axis of `size` resized to `length` (spec 10; torch's
    align_corners=False): (i0, i1, w1) per output index, in the operator's float32 order."""
    scale = np.float32(size) / np.float32(length)
    s = (np.arange(length).astype(np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    s = np.maximum(s, np.float32(0.0))
    i0 = np.minimum(s.astype(np.int64), size - 1)
    return i0, np.minimum(i0 + 1, size - 1), s - i0.astype(np.float32)


def resized_partner(xj, box, layout, interp="nearest"):
    """The partner as ResizeMix shows it (spec 10): inside `box` the whole of `xj` (in `layout`)
    resized to the box; `xj` itself elsewhere (where the mask is 1, so never shown). Nearest:
    source row (r - y0) H // h and column (c - x0) W // w (integers; what torch's
    F.interpolate(size=(h, w)) picks). Bilinear: float32 taps (linear_taps), rows then columns
    weighted as the operator does, rounded to the type of `xj`."""
    y0, y1, x0, x1 = box
    h_axis, w_axis = layout.index("H"), layout.index("W")
    height, width = xj.shape[h_axis], xj.shape[w_axis]
    if interp == "bilinear":
        ry0, ry1, wy = linear_taps(y1 - y0, height)
        cx0, cx1, wx = linear_taps(x1 - x0, width)
        shape = [1] * xj.ndim
        shape[h_axis] = -1
        wy1 = wy.reshape(shape)
        shape[h_axis], shape[w_axis] = 1, -1
        wx1 = wx.reshape(shape)
        one = np.float32(1.0)
        x = xj.astype(np.float32)

        def tap(r, c):
            return np.take(np.take(x, r, axis=h_axis), c, axis=w_axis)

        with np.errstate(invalid="ignore", over="ignore"):
            v = ((one - wy1) * ((one - wx1) * tap(ry0, cx0) + wx1 * tap(ry0, cx1)) +
                 wy1 * ((one - wx1) * tap(ry1, cx0) + wx1 * tap(ry1, cx1)))
        small = convert(v, xj.dtype)
    elif interp == "nearest":
        rows = (np.arange(y1 - y0) * height) // (y1 - y0)
        cols = (np.arange(x1 - x0) * width) // (x1 - x0)
        small = np.take(np.take(xj, rows, axis=h_axis), cols, axis=w_axis)
    else:
        raise ValueError(f"interp must be 'nearest' or 'bilinear'; got {interp!r}")
    out = xj.copy()
    index = [slice(None)] * xj.ndim
    index[h_axis], index[w_axis] = slice(y0, y1), slice(x0, x1)
    out[tuple(index)] = small
    return out


def sample_mask(method, lam, cy, cx, height, width, hmix_ratio=0.5, correct_lam=True,
                fmix_noise=None, fmix_round_up=None, decay_power=3.0, box="even"):
    """(mask, label weight) of one applied sample. FMix takes its noise (H x (W // 2 + 1) x 2)
    and rounding coin instead of a centre."""
    if method == "resizemix":  # lam is the scale tau
        return resizemix_mask(lam, cy, cx, height, width)
    if method == "fmix":
        if fmix_noise is None or fmix_round_up is None:
            raise ValueError("method 'fmix' needs fmix_noise and fmix_round_up")
        low = fmix_low_freq(fmix_noise, height, width, decay_power)
        return fmix_mask(lam, low, fmix_round_up)
    if method == "mixup":
        return mixup_mask(lam, height, width)
    if method == "cutmix":
        return cutmix_mask(lam, cy, cx, height, width, correct_lam, box)
    if method == "hmix":
        return hmix_mask(lam, cy, cx, height, width, hmix_ratio, box)
    if method == "gmix":
        return gmix_mask(lam, cy, cx, height, width)
    raise ValueError(f"method must be one of {METHODS}; got {method!r}")


# ---- spec section 9: FMix -----------------------------------------------------------------------

def fmix_weights(height, width, decay_power=3.0):
    """The amplitude of each rfft2 bin (H x (W // 2 + 1)): 1 / max(f, 1 / max(H, W)) ** d, f the
    bin's frequency magnitude in cycles per pixel (spec 9)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.sqrt(fx * fx + fy * fy)
    return 1.0 / np.maximum(freq, 1.0 / max(height, width)) ** decay_power


FMIX_DRAWN_NOISE_MAX = 9.3455  # the operator's drawn noise never exceeds sqrt(126 ln 2) (spec 9)


def fmix_image_bounded(height, width, decay_power, noise_max):
    """Whether FMix's transforms stay finite in float64 for H x W masks and noise of magnitude at
    most `noise_max` (spec 9): 4 x bins x noise_max x max(H, W) ** decay_power is finite."""
    with np.errstate(all="ignore"):
        top = 1.0 / np.power(1.0 / np.float64(max(height, width)), np.float64(decay_power))
        return bool(np.isfinite(top * (4.0 * (height * (width // 2 + 1)) * noise_max)))


def fmix_max_decay_power(height, width, noise_max):
    """The largest decay_power that `fmix_image_bounded` accepts for H x W masks and noise of
    magnitude at most `noise_max`, to the last bit (bisection until no float64 lies between the
    bracket's ends); infinity for 1 x 1 masks, whose only weight is 1. The operator's message
    states this limit to within 1e-6 relative (spec 9)."""
    if max(height, width) <= 1:
        return math.inf
    lo, hi = 0.0, 1.0
    while fmix_image_bounded(height, width, hi, noise_max):
        hi *= 2.0
    while True:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            return lo
        lo, hi = (mid, hi) if fmix_image_bounded(height, width, mid, noise_max) else (lo, mid)


def fmix_low_freq(noise, height, width, decay_power=3.0, official=False):
    """The low-frequency image of FMix (float64 H x W) from `noise` (H x (W // 2 + 1) x 2, the
    real and imaginary parts, i.i.d. N(0, 1)): the inverse real FFT of weights * (re + i im).
    The operator's image equals NumPy 2's bit for bit (spec 9); NumPy 1's FFT (an older
    pocketfft) rounds the last bits of most values differently, so with NumPy 1 a mask can
    differ from the operator's where two values are that close (no test's mask did).

    `official=True` reproduces ecs-vlc/FMix's make_low_freq_image, which builds the complex
    spectrum as `spectrum[:, 0] + 1j * spectrum[:, 1]` on an array of shape (1, H, W', 2): it
    indexes the row axis, not the real/imaginary one, so the spectrum it transforms is the first
    two rows of weighted noise laid out as a (W', 2) array: at most frequency 1 along the
    width (one cycle), whatever the weights ask."""
    noise = np.asarray(noise, np.float64)
    wf = width // 2 + 1
    if noise.shape != (height, wf, 2):
        raise ValueError(f"noise must have shape {(height, wf, 2)}; got {noise.shape}")
    if not fmix_image_bounded(height, width, decay_power, np.abs(noise).max(initial=0.0)):
        raise ValueError(f"decay_power {decay_power} is too large for FMix masks of {height} x "
                         f"{width}: the weights times the noise overflow float64 (spec 9)")
    param = fmix_weights(height, width, decay_power)[..., None] * noise
    if official:
        if width % 2:  # the official grid has W // 2 + 2 columns for odd W; the extra one is
            param = np.concatenate([param, param[:, -1:] * 0], axis=1)  # cropped by irfftn
        spectrum = param[None][:, 0] + 1j * param[None][:, 1]  # (1, W', 2): rows 0 and 1
        low = np.fft.irfftn(spectrum, (height, width), axes=(-2, -1))  # as numpy < 2 did
        return np.real(low)[0, :height, :width]
    return np.fft.irfft2(param[..., 0] + 1j * param[..., 1], s=(height, width))


def fmix_mask(lam, low_freq, round_up):
    """Binary mask (float32) with the `num` largest pixels of `low_freq` set to 1, num =
    ceil(lam H W) if `round_up` else floor(lam H W) (the official code flips a fair coin), and
    its label weight num / (H W), exact (the official code returns lam)."""
    h, w = low_freq.shape
    n = h * w
    x = float(lam) * n  # float64, exact for the float32 lam of the operator
    num = math.ceil(x) if round_up else math.floor(x)
    order = np.argsort(-low_freq.reshape(-1), kind="stable")
    mask = np.zeros(n, np.float32)
    mask[order[:num]] = 1.0
    return mask.reshape(h, w), num / n


def fmix_sample(rng, lam, height, width, decay_power=3.0, official=False):
    """One FMix mask and its label weight with noise and the rounding coin from `rng`."""
    noise = rng.standard_normal((height, width // 2 + 1, 2))
    low = fmix_low_freq(noise, height, width, decay_power, official)
    return fmix_mask(lam, low, rng.random() > 0.5)


# ---- spec sections 1 and 7: blend and targets ----------------------------------------------------

def smooth(vectors, eps, multi_label=False):
    """onehot_eps generalised to label vectors v: (1 - eps) v + eps / K (float64); multi-hot
    vectors (`multi_label`): each entry a binary label, (1 - eps) v + eps / 2."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return (1.0 - eps) * vectors + eps / (2 if multi_label else vectors.shape[-1])


def label_vectors(labels, num_classes=None):
    """Class ids -> one-hot rows; float vectors are kept (already soft)."""
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.integer):
        ids = labels.reshape(len(labels))
        if num_classes is None:
            raise ValueError("num_classes is required with class-index labels")
        if ids.min(initial=0) < 0 or ids.max(initial=0) >= num_classes:
            raise ValueError(f"labels must be in [0, {num_classes})")
        out = np.zeros((len(ids), num_classes), dtype=np.float32)
        out[np.arange(len(ids)), ids] = 1.0
        return out
    return labels.astype(np.float32).reshape(len(labels), -1)


CANONICAL_NAN = {np.dtype(np.float16): 0x7e00, np.dtype(np.float32): 0x7fc00000}


def convert(values, dtype):
    """float32 -> output type (spec 7): uint8 rounds half to even and saturates (NaN -> 0);
    float16 rounds to nearest even; every NaN becomes the canonical quiet NaN of the type."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float32)
    if dtype == np.uint8:
        values = np.where(np.isnan(values), np.float32(0), values)
        return np.rint(np.clip(values, 0, 255)).astype(np.uint8)
    out = values.astype(dtype)
    bits = out.view(np.uint16 if dtype == np.float16 else np.uint32)
    bits[np.isnan(values)] = CANONICAL_NAN[dtype]
    return out


def mix_values(m, xi, xj, out_dtype, mean=None, inv_std=None):
    """One sample's output values in its input layout (spec 1, 7): the own value where M is
    exactly 1, the partner's where exactly 0, the float32 blend elsewhere; then, with
    normalisation, (v - mean) * inv_std per channel; then the conversion. Without
    normalisation and with the output type equal to the input type, the values taken where M
    is 0 or 1 are copied bit for bit (a float16 NaN keeps its payload, -0.0 its sign)."""
    with np.errstate(invalid="ignore", over="ignore"):
        a, b = xi.astype(np.float32), xj.astype(np.float32)
        blend = m * a + (np.float32(1.0) - m) * b
        v = np.where(m == 1.0, a, np.where(m == 0.0, b, blend))
        if mean is not None:
            v = (v - mean) * inv_std
        out = convert(v, out_dtype)
    if mean is None and np.dtype(out_dtype) == xi.dtype:
        out = np.where(m == 1.0, xi, np.where(m == 0.0, xj, out))
    return out


def normalization(mean, std, channels):
    """(mean, inv_std) as float32 arrays of length `channels` (spec 7): each given as one value
    or one per channel; inv_std is the float32 reciprocal of the float32 std."""
    def per_channel(v, name, default):
        v = np.atleast_1d(np.asarray(default if v is None else v, dtype=np.float32))
        if v.size == 1:
            v = np.repeat(v, channels)
        if v.size != channels:
            raise ValueError(f"`{name}` must have 1 or {channels} values; got {v.size}")
        return v
    mean_c = per_channel(mean, "mean", 0.0)
    std_c = per_channel(std, "std", 1.0)
    if not (np.isfinite(std_c).all() and (std_c > 0).all()):
        raise ValueError("`std` must be finite and > 0")
    return mean_c, (np.float32(1.0) / std_c).astype(np.float32)


def flip(sample, layout):
    """A sample mirrored horizontally (along W)."""
    return np.flip(sample, axis=layout.index("W"))


def to_layout(sample, layout, out_layout):
    """A sample transposed from `layout` to `out_layout` (the same letters)."""
    return np.transpose(sample, [layout.index(d) for d in out_layout])


def expand_mask(mask, layout, shape):
    """Broadcast an H x W mask over the channels (and frames) of one sample of `layout`."""
    h_axis, w_axis = layout.index("H"), layout.index("W")
    view_shape = [1] * len(shape)
    view_shape[h_axis], view_shape[w_axis] = mask.shape
    return mask.reshape(view_shape)


def mix(images, labels, method, *, lam, center, apply=True, layout="HWC", num_classes=None,
        hmix_ratio=0.5, correct_lam=True, label_smoothing=0.0, dtype=None, mean=None, std=None,
        mirror=None, output_layout=None, fmix_noise=None, fmix_round_up=None, decay_power=3.0,
        given_masks=None, resize_interp="nearest", box="even", multi_label=False):
    """The whole operator for given per-sample parameters.

    images: array (B, ...) in `layout`; labels: B class ids or (B, K) float vectors;
    lam: B floats in [0, 1]; center: (B, 2) relative (y, x) in [0, 1) or, as ints, pixels;
    apply: bool or B bools. Fused normalisation (spec 7): `mean` / `std` (one value or one per
    channel; either turns it on), `mirror` (B flags: sample i is flipped horizontally before it
    is mixed, as crop_mirror_normalize would flip it; its partner is read with the partner's own
    flag) and `output_layout` (the output's layout; default `layout`). The masks are in output
    coordinates (not flipped). FMix (spec 9): `fmix_noise` (B, H, W // 2 + 1, 2) and
    `fmix_round_up` (B bools: ceil or floor of lam H W ones); `center` is not used. ResizeMix
    (spec 10): `lam` is the scale tau; `resize_interp` "nearest" or "bilinear". `box`: CutMix's and
    HMix's box, "even" or "exact" (cut_box). `multi_label`: float label vectors are multi-hot
    (smoothed towards 1 / 2, spec 1). `given_masks`
    (B, H, W): apply these masks instead (label weight: the mask mean), e.g. the op's own FMix
    masks (`output_mask`) to check the blend where the noise is the op's.
    Returns (mixed, targets float32 (B, K), masks float32 (B, H, W)).
    """
    images = np.asarray(images)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")
    output_layout = output_layout or layout
    if sorted(output_layout) != sorted(layout) or output_layout not in LAYOUTS:
        raise ValueError(f"output_layout {output_layout!r} does not fit layout {layout!r}")
    batch = images.shape[0]
    height = images.shape[1 + layout.index("H")]
    width = images.shape[1 + layout.index("W")]
    channels = images.shape[1 + layout.index("C")]
    out_dtype = np.dtype(dtype) if dtype is not None else images.dtype
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float32), (batch,))
    center = np.broadcast_to(np.asarray(center), (batch, 2))
    apply = np.broadcast_to(np.asarray(apply, dtype=bool), (batch,))
    flips = np.broadcast_to(np.asarray(0 if mirror is None else mirror).astype(bool), (batch,))
    norm = (None, None)
    if mean is not None or std is not None:
        mean_c, inv_c = normalization(mean, std, channels)
        shape = [1] * (images.ndim - 1)
        shape[layout.index("C")] = channels
        norm = (mean_c.reshape(shape), inv_c.reshape(shape))
    if multi_label and np.issubdtype(np.asarray(labels).dtype, np.integer):
        raise ValueError("multi_label takes multi-hot float label vectors, not class ids")
    vectors = label_vectors(labels, num_classes)
    soft = smooth(vectors, float(np.float32(label_smoothing)), multi_label)

    out_shape = (batch,) + tuple(images.shape[1 + layout.index(d)] for d in output_layout)
    mixed = np.empty(out_shape, dtype=out_dtype)
    targets = np.empty(vectors.shape, dtype=np.float32)
    masks = np.empty((batch, height, width), dtype=np.float32)
    for i in range(batch):
        j = partner(i, batch)
        if np.issubdtype(center.dtype, np.integer):
            cy, cx = int(center[i, 0]), int(center[i, 1])
        else:
            cy, cx = center_from_relative(center[i, 0], height), center_from_relative(
                center[i, 1], width)
        if given_masks is not None:
            mask = np.asarray(given_masks[i], np.float32)
            weight = float(mask.astype(np.float64).mean())
        elif apply[i] and j != i:
            mask, weight = sample_mask(
                method, lam[i], cy, cx, height, width, hmix_ratio, correct_lam,
                None if fmix_noise is None else fmix_noise[i],
                None if fmix_round_up is None else bool(fmix_round_up[i]), decay_power, box)
        else:
            mask, weight = np.ones((height, width), dtype=np.float32), 1.0
        m = expand_mask(mask, layout, images.shape[1:])
        xi = flip(images[i], layout) if flips[i] else images[i]
        xj = flip(images[j], layout) if flips[j] else images[j]
        if method == "resizemix" and given_masks is None and apply[i] and j != i:
            box = resized_box(lam[i], cy, cx, height, width)
            if box[0] < box[1] and box[2] < box[3]:
                xj = resized_partner(xj, box, layout, resize_interp)
        values = mix_values(m, xi, xj, out_dtype, *norm)
        mixed[i] = to_layout(values, layout, output_layout)
        targets[i] = (weight * soft[i] + (1.0 - weight) * soft[j]).astype(np.float32)
        masks[i] = mask
    return mixed, targets, masks


# ---- spec section 11: segmentation maps ----------------------------------------------------------

def mix_seg(seg, masks, method, *, lam, center, apply=True, mirror=None):
    """The mixed label maps (spec 11) for the masks `masks` (B, H, W) the images got (mix's
    third output) and the same per-sample parameters. `seg`: (B, H, W) or (B, H, W, 1) integer
    maps. Pixel p of sample i takes its own map's label where M_i(p) >= 0.5 and its partner's
    where M_i(p) < 0.5, each map flipped with its image (`mirror`) and, for ResizeMix, the
    partner's map resized into the box by nearest neighbour (whatever the images'
    interpolation); values are taken as they are (an ignore label passes through where its map
    is chosen)."""
    seg = np.asarray(seg)
    batch, height, width = seg.shape[:3]
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float32), (batch,))
    center = np.broadcast_to(np.asarray(center), (batch, 2))
    apply = np.broadcast_to(np.asarray(apply, dtype=bool), (batch,))
    flips = np.broadcast_to(np.asarray(0 if mirror is None else mirror).astype(bool), (batch,))
    maps = seg.reshape(batch, height, width)
    out = np.empty_like(maps)
    for i in range(batch):
        j = partner(i, batch)
        own = maps[i][:, ::-1] if flips[i] else maps[i]
        other = maps[j][:, ::-1] if flips[j] else maps[j]
        if method == "resizemix" and apply[i] and j != i:
            if np.issubdtype(center.dtype, np.integer):
                cy, cx = int(center[i, 0]), int(center[i, 1])
            else:
                cy, cx = (center_from_relative(center[i, 0], height),
                          center_from_relative(center[i, 1], width))
            box = resized_box(lam[i], cy, cx, height, width)
            if box[0] < box[1] and box[2] < box[3]:
                other = resized_partner(other[..., None], box, "HWC", "nearest")[..., 0]
        out[i] = np.where(np.asarray(masks[i]) >= np.float32(0.5), own, other)
    return out.reshape(seg.shape)


# ---- spec section 12: ClassMix ------------------------------------------------------------------

def present_classes(partner_map, ignore_index=-1):
    """The sorted distinct labels of a map, `ignore_index` left out."""
    values = np.unique(np.asarray(partner_map))
    return values[values != ignore_index]


def classmix_mask(partner_map, selected):
    """(mask, label weight): M = 0 where the partner's map (as shown: flipped with its image)
    holds one of the `selected` labels, 1 elsewhere; the weight is the mask mean."""
    mask = (~np.isin(np.asarray(partner_map), np.asarray(selected))).astype(np.float32)
    return mask, float(mask.astype(np.float64).mean())


def classmix_subset_size(n):
    """The number of classes ClassMix selects of n present: ceil(n / 2), the official code's
    int((n + n % 2) / 2)."""
    return (n + n % 2) // 2


# ---- spec section 13: boxes ---------------------------------------------------------------------

def flip_boxes(boxes):
    """Relative ltrb boxes of a horizontally flipped image: (1 - r, t, 1 - l, b), float32."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    one = np.float32(1.0)
    return np.stack([one - b[:, 2], b[:, 1], one - b[:, 0], b[:, 3]], axis=1).astype(np.float32)


def _area(l, t, r, b):
    return float(np.float32(r) - np.float32(l)) * float(np.float32(b) - np.float32(t))


def _overlap(l, t, r, b, paste):
    """(l, t, r, b, area) of the part of a box inside the pasted rectangle (area 0: none)."""
    pl, pt, pr, pb = paste
    il, it, ir, ib = max(l, pl), max(t, pt), min(r, pr), min(b, pb)
    return il, it, ir, ib, max(ir - il, 0.0) * max(ib - it, 0.0)


def cut_own_box(box, paste, min_visible=MIN_VISIBLE):
    """An own box under a pasted rectangle `paste` (l, t, r, b; relative floats): the tight box
    around its visible part and the visible share v, or None when v == 0 or v < min_visible."""
    l, t, r, b = (float(np.float32(v)) for v in box)
    pl, pt, pr, pb = paste
    area = _area(l, t, r, b)
    if area == 0.0:
        return None  # nothing of it can stay visible
    il, it, ir, ib, inter = _overlap(l, t, r, b, paste)
    visible = 1.0 - inter / area
    if visible <= 0.0 or visible < min_visible:
        return None
    # P spans its height: the x-range shrinks to the open side (both sides open: unchanged);
    # P spans its width: the y-range likewise (not both: then nothing would stay visible)
    if inter > 0.0 and pt <= t and pb >= b:
        l, r = (l, il) if ir >= r else (ir, r) if il <= l else (l, r)
    elif inter > 0.0 and pl <= l and pr >= r:
        t, b = (t, it) if ib >= b else (ib, b) if it <= t else (t, b)
    return l, t, r, b


def mix_boxes(boxes, box_labels, method, *, lam, center, apply=True, mirror=None, height,
              width, min_visible=MIN_VISIBLE, box="even", weights=None, pasted_boxes=None):
    """The mixed boxes (spec 13), per sample (boxes [N', 4] float32, labels [N'] int32, weights
    [N'] float32), for the parameters `mix` reports: `lam` (ResizeMix: tau), integer pixel
    `center` (cy, cx), `apply`; `mirror` flips each image's boxes first. `weights`: the label
    weight of each sample (Mixup's box weights; default lam). `pasted_boxes`: CutMix's box per
    sample (y0, y1, x0, x1) where it was drawn from ranges (spec 4b), not from lam."""
    if method not in BOX_METHODS:
        raise ValueError(f"boxes are defined for {BOX_METHODS}; got {method!r}")
    batch = len(boxes)
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float32), (batch,))
    center = np.broadcast_to(np.asarray(center), (batch, 2))
    apply = np.broadcast_to(np.asarray(apply, dtype=bool), (batch,))
    flips = np.broadcast_to(np.asarray(0 if mirror is None else mirror).astype(bool), (batch,))
    shown = [flip_boxes(boxes[i]) if flips[i] else np.asarray(boxes[i], np.float32).reshape(-1, 4)
             for i in range(batch)]
    labels = [np.asarray(box_labels[i], np.int32).reshape(-1) for i in range(batch)]
    out = []
    for i in range(batch):
        j = partner(i, batch)
        own, own_labels = shown[i], labels[i]
        if not apply[i] or j == i:
            out.append((own.copy(), own_labels.copy(), np.ones(len(own), np.float32)))
            continue
        if method == "mixup":
            w = float(np.float32(lam[i])) if weights is None else float(weights[i])
            out.append((np.concatenate([own, shown[j]]).reshape(-1, 4),
                        np.concatenate([own_labels, labels[j]]).astype(np.int32),
                        np.concatenate([np.full(len(own), w, np.float32),
                                        np.full(len(shown[j]), 1.0 - w, np.float32)])))
            continue
        cy, cx = int(center[i, 0]), int(center[i, 1])
        if method == "cutmix" and pasted_boxes is not None:
            y0, y1, x0, x1 = (int(v) for v in pasted_boxes[i])
        elif method == "cutmix":
            y0, y1, x0, x1 = cut_box(math.sqrt(1.0 - float(lam[i])), cy, cx, height, width, box)
        else:
            y0, y1, x0, x1 = resized_box(lam[i], cy, cx, height, width)
        pasted = y1 > y0 and x1 > x0
        paste = (x0 / width, y0 / height, x1 / width, y1 / height)
        kept, kept_labels = [], []
        for k in range(len(own)):
            if not pasted:
                kept.append(own[k]), kept_labels.append(own_labels[k])
                continue
            b = cut_own_box(own[k], paste, min_visible)
            if b is not None:
                kept.append(b), kept_labels.append(own_labels[k])
        for k in range(len(shown[j]) if pasted else 0):
            l, t, r, b = (float(v) for v in shown[j][k])
            pl, pt, pr, pb = paste
            if method == "resizemix":
                nb = (pl + l * (pr - pl), pt + t * (pb - pt), pl + r * (pr - pl),
                      pt + b * (pb - pt))
                if _area(*nb) > 0.0:
                    kept.append(nb), kept_labels.append(labels[j][k])
                continue
            area = _area(l, t, r, b)
            il, it, ir, ib, inter = _overlap(l, t, r, b, paste)
            if area > 0.0 and inter > 0.0 and inter / area >= min_visible:
                kept.append((il, it, ir, ib)), kept_labels.append(labels[j][k])
        out.append((np.asarray(kept, np.float32).reshape(-1, 4),
                    np.asarray(kept_labels, np.int32).reshape(-1),
                    np.ones(len(kept), np.float32)))
    return out
