"""What users run today instead of fn.msda.mix, re-implemented from their public behaviour.

Every function mixes a batch `x` (N, C, H, W torch tensor) with its reversed batch, as the
official code and timm do, from explicit parameters, so that the benchmark can check each one
against dali_msda.reference before timing it. They return the mixed batch (float) and the label
weight(s) of each sample's own class.

- timm `Mixup` (timm/data/mixup.py), batch mode: in place on the float batch,
  `x_flipped = x.flip(0).mul_(1 - lam); x.mul_(lam).add_(x_flipped)`; CutMix:
  `x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]`, the box of today's timm (rand_bbox
  from 1.0.29: the reference's box="exact"). Per-element mode: a Python loop over the samples,
  reading from a clone; pair mode: a loop over the pairs (i, B - 1 - i), one draw mixing both.
- torchvision.transforms.v2 `MixUp` / `CutMix`: out-of-place on the batch and its roll; here
  with the flip pairing so that outputs are comparable.
- The official HMix / GMix code (naver-ai/hmix-gmix, a timm fork), batch mode: HMix blends then
  pastes the box; GMix builds the Gaussian mask as an H x W tensor and blends with it.
"""

import math

import torch

from dali_msda import reference as ref


TIMM_BOX = "exact"  # timm's rand_bbox from 1.0.29; up to 1.0.28 (and elsewhere here) "even"


def _box(side, cy, cx, h, w, box="even"):
    return ref.cut_box(side, cy, cx, h, w, box)


def box_of(fn_):
    """The reference's `box` that the baseline `fn_` cuts (what its check compares with)."""
    return TIMM_BOX if fn_ in (timm_cutmix_batch, timm_cutmix_elem, timm_cutmix_pair) else "even"


# ---- timm, batch mode (in place) ----------------------------------------------------------------

def timm_mixup_batch(x, lam, cy, cx):
    x_flipped = x.flip(0).mul_(1.0 - lam)  # a copy, taken before x changes
    x.mul_(lam).add_(x_flipped)
    return x, lam


def timm_cutmix_batch(x, lam, cy, cx):
    h, w = x.shape[-2:]
    y0, y1, x0, x1 = _box(math.sqrt(1.0 - lam), cy, cx, h, w, TIMM_BOX)
    x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
    return x, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)


# ---- timm, per-element mode (Python loop over a clone) -----------------------------------------

def timm_mixup_elem(x, lams, cys, cxs):
    n = x.shape[0]
    x_orig = x.clone()
    for i in range(n):
        j = n - i - 1
        if lams[i] != 1.0:
            x[i] = x[i] * lams[i] + x_orig[j] * (1 - lams[i])
    return x, lams


def timm_cutmix_elem(x, lams, cys, cxs):
    n, _, h, w = x.shape
    x_orig = x.clone()
    weights = []
    for i in range(n):
        j = n - i - 1
        y0, y1, x0, x1 = _box(math.sqrt(1.0 - lams[i]), cys[i], cxs[i], h, w, TIMM_BOX)
        x[i][:, y0:y1, x0:x1] = x_orig[j][:, y0:y1, x0:x1]
        weights.append(1.0 - (y1 - y0) * (x1 - x0) / float(h * w))
    return x, weights


# ---- timm, pair mode (Python loop over the pairs of a clone: one draw for i and B - 1 - i) ----

def timm_mixup_pair(x, lams, cys, cxs):
    n = x.shape[0]
    x_orig = x.clone()
    for i in range(n // 2):
        j = n - i - 1
        if lams[i] != 1.0:
            x[i] = x[i] * lams[i] + x_orig[j] * (1 - lams[i])
            x[j] = x[j] * lams[i] + x_orig[i] * (1 - lams[i])
    return x, [lams[min(i, n - 1 - i)] for i in range(n)]


def timm_cutmix_pair(x, lams, cys, cxs):
    n, _, h, w = x.shape
    x_orig = x.clone()
    weights = [1.0] * n
    for i in range(n // 2):
        j = n - i - 1
        y0, y1, x0, x1 = _box(math.sqrt(1.0 - lams[i]), cys[i], cxs[i], h, w, TIMM_BOX)
        x[i][:, y0:y1, x0:x1] = x_orig[j][:, y0:y1, x0:x1]
        x[j][:, y0:y1, x0:x1] = x_orig[i][:, y0:y1, x0:x1]
        weights[i] = weights[j] = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    return x, weights


# ---- torchvision.transforms.v2 (out of place) --------------------------------------------------

def tv2_mixup(x, lam, cy, cx):
    rolled = x.flip(0).mul(1.0 - lam)
    return x.mul(lam).add_(rolled), lam


def tv2_cutmix(x, lam, cy, cx):
    h, w = x.shape[-2:]
    y0, y1, x0, x1 = _box(math.sqrt(1.0 - lam), cy, cx, h, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)


# ---- official HMix / GMix, batch mode ----------------------------------------------------------

def official_hmix_batch(x, lam, cy, cx, ratio=0.5):
    h, w = x.shape[-2:]
    y0, y1, x0, x1 = _box(math.sqrt(ratio * (1.0 - lam)), cy, cx, h, w)
    lam_box = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    a = float(torch.tensor(min(1.0, lam / lam_box) if lam_box > 0 else 0.0,
                           dtype=torch.float32))
    x_flip = x.flip(0)
    out = x * a + x_flip * (1.0 - a)
    out[:, :, y0:y1, x0:x1] = x_flip[:, :, y0:y1, x0:x1]
    return out, a * lam_box


def official_gmix_batch(x, lam, cy, cx):
    """The Gaussian mask built with tensor operations on x's device, in x's dtype (the official
    code's way), and the blend in that dtype."""
    h, w = x.shape[-2:]
    lp = max(lam if lam < 0.5 else 1.0 - lam, ref.MIN_GAUSS_LAM)
    rows = torch.arange(h, device=x.device, dtype=torch.float32)
    cols = torch.arange(w, device=x.device, dtype=torch.float32)
    gy = torch.exp(-math.pi * (rows - cy) ** 2 / (h * h) / lp)
    gx = torch.exp(-math.pi * (cols - cx) ** 2 / (w * w) / lp)
    g = gy[:, None] * gx[None, :]
    mask = (g if lam < 0.5 else 1.0 - g).to(x.dtype)
    out = x * mask + x.flip(0) * (1.0 - mask)
    return out, float(mask.double().mean())


BATCH = {  # method -> [(name, fn)] of batch-mode equivalents
    "mixup": [("timm (in place)", timm_mixup_batch), ("torchvision v2", tv2_mixup)],
    "cutmix": [("timm (in place)", timm_cutmix_batch), ("torchvision v2", tv2_cutmix)],
    "hmix": [("official hmix-gmix", official_hmix_batch)],
    "gmix": [("official hmix-gmix", official_gmix_batch)],
}
ELEM = {
    "mixup": [("timm elem (Python loop)", timm_mixup_elem)],
    "cutmix": [("timm elem (Python loop)", timm_cutmix_elem)],
}
