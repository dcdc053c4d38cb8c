// Host-side parameter sampling for msda.Mix: the random draws of spec section 2 and the mask
// parameters of sections 3-6 ("spec": docs/methods.md). Shared by both backends, so CPU and GPU
// see the same partner, lam, box and Gaussian tables for the same seed. Free of DALI's operator
// machinery: the generator is any URBG returning uint32 (DALI's Philox4x32_10 in the operator).
//
// The samplers are written out here rather than taken from <random>: std::gamma_distribution's
// output differs between standard libraries, and the draws define the operator's output.

#ifndef DALI_MSDA_CSRC_MIX_PARAMS_H_
#define DALI_MSDA_CSRC_MIX_PARAMS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fmix.h"
#include "mask.h"
#include "methods.h"

namespace msda {

// lam' of GMix is clamped to this so that lam in {0, 1} does not divide by zero (spec 6).
constexpr double kMinGaussLam = 1e-12;
constexpr double kPi = 3.14159265358979323846;

// ---- samplers ----

/// Uniform double in (0, 1): 53 random bits, centred in their bucket.
template <typename RNG>
double Uniform01(RNG &rng) {
  uint64_t hi = rng(), lo = rng();
  uint64_t bits = ((hi << 32) | lo) >> 11;
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
}

/// Uniform integer in {0, ..., n - 1} (n >= 1), by 64-bit multiply-shift (bias < n / 2^64).
template <typename RNG>
int UniformInt(RNG &rng, int n) {
  uint64_t hi = rng(), lo = rng();
  unsigned __int128 x = static_cast<unsigned __int128>((hi << 32) | lo) * static_cast<uint64_t>(n);
  return static_cast<int>(x >> 64);
}

template <typename RNG>
double StandardNormal(RNG &rng) {  // Box-Muller, one output used
  double u1 = Uniform01(rng), u2 = Uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

/// `count` i.i.d. N(0, 1) values: FMix noise. Marsaglia's polar method (no sin / cos; both
/// values of a pair used), each coordinate from 32 random bits, (int32 + 1/2) / 2^31 in (-1, 1):
/// the noise needs volume more than 53-bit tails, and this is the hot loop of FMix masks. The
/// candidate pairs are drawn kBlock at a time and the accepted ones (s < 1, about 79 %) listed
/// without a branch, then transformed in order: the values are those of drawing and testing
/// one pair at a time (the same pairs accepted, the same operations), without a mispredicted
/// branch per rejection. The stream is taken by value: it ends up to a block past the last pair
/// used.
template <typename RNG>
void StandardNormals(RNG rng, int64_t count, double *out) {
  constexpr double kScale = 0x1.0p-31;
  constexpr int kBlock = 64;
  double u[kBlock], v[kBlock], s[kBlock];
  int accepted[kBlock];
  for (int64_t k = 0; k < count;) {
    for (int i = 0; i < kBlock; i++) {
      u[i] = (static_cast<int32_t>(rng()) + 0.5) * kScale;
      v[i] = (static_cast<int32_t>(rng()) + 0.5) * kScale;
      s[i] = u[i] * u[i] + v[i] * v[i];  // > 0: u, v are never 0
    }
    int n = 0;
    for (int i = 0; i < kBlock; i++) {
      accepted[n] = i;
      n += s[i] < 1.0;
    }
    for (int a = 0; a < n && k < count; a++) {
      const int i = accepted[a];
      const double f = std::sqrt(-2.0 * std::log(s[i]) / s[i]);
      out[k++] = u[i] * f;
      if (k < count) out[k++] = v[i] * f;
    }
  }
}

/// log of a Gamma(a, 1) variate (Marsaglia & Tsang; a < 1 through the boost
/// G(a) = G(a + 1) * U^(1/a)). Working in logs keeps Beta(a, a) accurate for small a, where
/// both gamma variates can underflow.
template <typename RNG>
double LogGamma(RNG &rng, double a) {
  double boost = 0.0;
  if (a < 1.0) {
    boost = std::log(Uniform01(rng)) / a;
    a += 1.0;
  }
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = StandardNormal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    double u = Uniform01(rng);
    if (u < 1.0 - 0.0331 * (x * x) * (x * x) ||
        std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v)))
      return std::log(d * v) + boost;
  }
}

/// lam ~ Beta(alpha, alpha), alpha > 0, rounded to float32 (the type of an explicit `lam`).
template <typename RNG>
float SampleBeta(RNG &rng, double alpha) {
  double lx = LogGamma(rng, alpha), ly = LogGamma(rng, alpha);
  return static_cast<float>(1.0 / (1.0 + std::exp(ly - lx)));  // X / (X + Y)
}

/// The random quantities of one draw (spec section 2): one per batch or one per sample.
struct Draw {
  bool apply;  // mixing happens (probability `prob`)
  float lam;
  int cy, cx;  // integer pixel centre
  bool round_up = false;  // FMix: ceil (true) or floor of lam H W ones, a fair coin
  float scale = 0.0f;     // ResizeMix: the partner's scale tau (spec 10), drawn or `lam`
  bool ranged = false;    // CutMix: a box drawn from ranges (spec 4b), rows [by0, by1) and
  int by0 = 0, by1 = 0, bx0 = 0, bx1 = 0;  // columns [bx0, bx1), instead of from lam
  /// The value a sample reports as its `lam` (the `params` output): tau for ResizeMix.
  float Reported(Method m) const { return Traits(m).draws_scale ? scale : lam; }
  /// Every field equal: draws that make the same mask (DrawBatch shares it).
  bool operator==(const Draw &) const = default;
};

/// CutMix boxes drawn from ranges (spec 4b) instead of from lam.
struct BoxRanges {
  enum Kind { kNone, kMinMax, kArea } kind = kNone;
  double lo = 0.0, hi = 0.0;          // kMinMax: side shares; kArea: area shares
  double aspect_lo = 0.3, aspect_hi = 1.0 / 0.3;  // kArea: h / w
};

/// Spec 4b, timm's rand_bbox_minmax (timm >= 1.0.29): cut_h over [floor(H lo), floor(H hi)), then
/// cut_w, then the top-left row over [0, H - cut_h] and column over [0, W - cut_w], the edge
/// included. (The ranges are checked non-empty for H, W by the op.)
template <typename RNG>
void DrawMinMaxBox(RNG &rng, const BoxRanges &r, int H, int W, Draw &d) {
  const int h_lo = static_cast<int>(H * r.lo), h_hi = static_cast<int>(H * r.hi);
  const int w_lo = static_cast<int>(W * r.lo), w_hi = static_cast<int>(W * r.hi);
  const int cut_h = h_lo + UniformInt(rng, h_hi - h_lo);
  const int cut_w = w_lo + UniformInt(rng, w_hi - w_lo);
  d.by0 = UniformInt(rng, H - cut_h + 1);
  d.bx0 = UniformInt(rng, W - cut_w + 1);
  d.by1 = d.by0 + cut_h;
  d.bx1 = d.bx0 + cut_w;
  d.ranged = true;
}

/// Spec 4b, UniMatch's obtain_cutmix_box: the area s = U(lo, hi) H W once, then an aspect r,
/// w = floor(sqrt(s / r)), h = floor(sqrt(s r)), a column and a row, drawn again until the box
/// fits. False if none fitted in `max_tries` (the op refuses ranges where none can).
template <typename RNG>
bool DrawAreaBox(RNG &rng, const BoxRanges &r, int H, int W, Draw &d,
                 int64_t max_tries = 1 << 20) {
  const double size = (r.lo + (r.hi - r.lo) * Uniform01(rng)) * H * W;
  for (int64_t t = 0; t < max_tries; t++) {
    const double ratio = r.aspect_lo + (r.aspect_hi - r.aspect_lo) * Uniform01(rng);
    const int w = static_cast<int>(std::sqrt(size / ratio));
    const int h = static_cast<int>(std::sqrt(size * ratio));
    const int x0 = UniformInt(rng, W);
    const int y0 = UniformInt(rng, H);
    if (x0 + w <= W && y0 + h <= H) {
      d.by0 = y0;
      d.by1 = y0 + h;
      d.bx0 = x0;
      d.bx1 = x0 + w;
      d.ranged = true;
      return true;
    }
  }
  return false;
}

template <typename RNG>
Draw DrawOne(RNG &rng, double alpha, double prob, int H, int W) {
  Draw d;
  d.apply = Uniform01(rng) < prob;
  d.cy = UniformInt(rng, H);
  d.cx = UniformInt(rng, W);
  d.lam = SampleBeta(rng, alpha);
  return d;
}

/// Pixel centre from a relative one in [0, 1): min(floor(rel * size), size - 1).
inline int CenterFromRelative(float rel, int size) {
  int c = static_cast<int>(std::floor(static_cast<double>(rel) * size));
  return std::clamp(c, 0, size - 1);
}

// ---- masks (spec sections 3-6) ----

struct Box {
  int y0, y1, x0, x1;
  int64_t Area() const { return int64_t(y1 - y0) * (x1 - x0); }
};

/// CutMix's box drawn from ranges (spec 4b; `d.ranged`), and the share of an H x W image it
/// leaves: its label weight.
inline Box RangedBox(const Draw &d) { return Box{d.by0, d.by1, d.bx0, d.bx1}; }
inline double AreaLeft(const Box &b, int H, int W) { return 1.0 - b.Area() / (double(H) * W); }

/// Box of side ratio `side` centred at (cy, cx), clipped to the image (spec 4): rows
/// [cy - cut_h / 2, cy + cut_h / 2) (an even side, as timm's rand_bbox, the CutMix authors' and
/// the HMix/GMix authors' code cut it), or with `exact` [cy - cut_h / 2, cy + (cut_h + 1) / 2)
/// (a side of exactly cut_h); columns likewise.
inline Box BoxAround(double side, int cy, int cx, int H, int W, bool exact) {
  int cut_h = static_cast<int>(H * side), cut_w = static_cast<int>(W * side);
  const int up_h = exact ? (cut_h + 1) / 2 : cut_h / 2, up_w = exact ? (cut_w + 1) / 2 : cut_w / 2;
  Box b;
  b.y0 = std::clamp(cy - cut_h / 2, 0, H);
  b.y1 = std::clamp(cy + up_h, 0, H);
  b.x0 = std::clamp(cx - cut_w / 2, 0, W);
  b.x1 = std::clamp(cx + up_w, 0, W);
  return b;
}

/// How the masks of a sample are made beyond its draw (the op's arguments).
struct MaskOptions {
  double hmix_ratio = 0.5;     // HMix: the share of 1 - lam given to the box
  bool correct_lam = true;     // CutMix: label weight from the clipped box's area
  bool resize_linear = false;  // ResizeMix: bilinear (else nearest)
  bool exact_box = false;      // CutMix / HMix: a box side of exactly cut_h (else even)
};

/// ResizeMix's box (spec 10): floor(H tau) x floor(W tau) around (cy, cx), shifted (not clipped)
/// to lie inside the image, as the official code's getbox_new does it.
inline Box ResizedBox(float tau, int cy, int cx, int H, int W) {
  const int h = static_cast<int>(std::floor(double(H) * tau));
  const int w = static_cast<int>(std::floor(double(W) * tau));
  Box b;
  b.y0 = std::clamp(cy - h / 2, 0, H);
  b.y1 = std::clamp(b.y0 + h, 0, H);
  b.y0 = std::clamp(b.y1 - h, 0, H);
  b.x0 = std::clamp(cx - w / 2, 0, W);
  b.x1 = std::clamp(b.x0 + w, 0, W);
  b.x0 = std::clamp(b.x1 - w, 0, W);
  return b;
}

inline SampleParams IdentityParams(int i) {
  SampleParams p{};
  p.partner = i;
  p.kind = kMaskBox;
  p.outside = 1.0f;
  return p;
}

/// Mask-table floats a method needs per mask: the H + W Gaussian factors of GMix, each part
/// rounded up to 4 floats (GaussColsOffset); none for the others.
inline int64_t TableSize(Method method, int H, int W) {
  return Traits(method).data == MaskData::kGaussTable ? GaussColsOffset(H) + GaussColsOffset(W)
                                                      : 0;
}

/// Bit-mask bytes a method needs per mask: H x W bits for FMix and ClassMix (MaskBit), none for
/// the others.
inline int64_t BitsSize(Method method, int H, int W) {
  return Traits(method).data == MaskData::kBits ? (int64_t(H) * W + 7) / 8 : 0;
}

/// Fills `p` for one applied draw and returns the label weight of the sample's own label
/// (lam_eff, spec 1). `gauss_table` (TableSize floats) is written for GMix only; for FMix the
/// caller writes the bit mask (FMixMask, fmix.h), whose mean the returned weight is.
inline double BuildMask(Method method, const Draw &d, const MaskOptions &o, int H, int W,
                        SampleParams &p, float *gauss_table) {
  const double lam = d.lam, hw = double(H) * W;
  p.kind = kMaskBox;
  p.y0 = p.y1 = p.x0 = p.x1 = 0;
  p.outside = 1.0f;
  p.invert = 0;
  switch (method) {
    case Method::kMixup:
      p.outside = d.lam;
      return d.lam;
    case Method::kCutMix: {  // a box cut from lam, or drawn from ranges (spec 4b: the weight
                             // always from its area)
      const Box b = d.ranged ? RangedBox(d)
                             : BoxAround(std::sqrt(1.0 - lam), d.cy, d.cx, H, W, o.exact_box);
      p.y0 = b.y0; p.y1 = b.y1; p.x0 = b.x0; p.x1 = b.x1;
      return d.ranged || o.correct_lam ? AreaLeft(b, H, W) : lam;
    }
    case Method::kHMix: {
      Box b = BoxAround(std::sqrt(o.hmix_ratio * (1.0 - lam)), d.cy, d.cx, H, W, o.exact_box);
      p.y0 = b.y0; p.y1 = b.y1; p.x0 = b.x0; p.x1 = b.x1;
      double lam_box = AreaLeft(b, H, W);
      double a = lam_box > 0.0 ? std::min(1.0, lam / lam_box) : 0.0;
      p.outside = static_cast<float>(a);
      return static_cast<double>(p.outside) * lam_box;  // the mean of the applied mask
    }
    case Method::kGMix: {
      double lp = std::max(lam < 0.5 ? lam : 1.0 - lam, kMinGaussLam);
      double sum_y = 0.0, sum_x = 0.0;
      const double hh = double(H) * H, ww = double(W) * W;
      for (int r = 0; r < H; r++) {
        double dy = r - d.cy;
        gauss_table[r] = static_cast<float>(std::exp(-kPi * (dy * dy) / hh / lp));
        sum_y += gauss_table[r];
      }
      float *gx = gauss_table + GaussColsOffset(H);
      for (int c = 0; c < W; c++) {
        double dx = c - d.cx;
        gx[c] = static_cast<float>(std::exp(-kPi * (dx * dx) / ww / lp));
        sum_x += gx[c];
      }
      p.kind = kMaskGauss;
      p.invert = lam >= 0.5;
      // mean of G = (sum gy)(sum gx) / (H W); each float32 product gy*gx differs from the
      // exact one by < 2^-24 relative, so this is the mask mean to < 6e-8 (spec 7 asks 1e-6).
      double mean_g = sum_y * sum_x / hw;
      return p.invert ? 1.0 - mean_g : mean_g;
    }
    case Method::kFMix:
      p.kind = kMaskBits;
      return FMixOnes(d.lam, d.round_up, H, W) / hw;  // the mask mean, exactly
    case Method::kClassMix:  // the mask comes from the partner's label map (spec 12): its
      p.kind = kMaskBits;    // maker sets the weight once it has counted the mask's ones
      return 1.0;
    case Method::kResizeMix: {
      Box b = ResizedBox(d.scale, d.cy, d.cx, H, W);
      if (b.Area() == 0) return 1.0;  // nothing pasted
      p.kind = o.resize_linear ? kMaskResizedLinear : kMaskResized;
      p.y0 = b.y0; p.y1 = b.y1; p.x0 = b.x0; p.x1 = b.x1;
      return AreaLeft(b, H, W);
    }
  }
  return 1.0;
}

/// Mask parameters of sample i of n for draw d (spec 2: the partner is n - 1 - i; a sample that
/// is its own partner, or was not drawn to mix, is left unchanged) and, in `weight`, its label
/// weight. GMix writes its factors to table (TableSize floats), which sits at `table_offset` in
/// the batch's table array; an FMix or ClassMix bit mask (BitsSize bytes) is to be written by
/// the caller at `bits_offset` of the batch's bit array. Either is the sample's mask_offset.
inline SampleParams PlanSample(Method method, const Draw &d, int i, int n,
                               const MaskOptions &options, int H, int W, float *table,
                               int64_t table_offset, int64_t bits_offset, double *weight) {
  const int j = n - 1 - i;
  SampleParams p = IdentityParams(i);
  *weight = 1.0;
  if (d.apply && j != i) {
    p.mask_offset = TableSize(method, H, W) ? table_offset
                    : BitsSize(method, H, W) ? bits_offset : 0;
    *weight = BuildMask(method, d, options, H, W, p, table);
    p.partner = j;
  }
  return p;
}

/// The target row of one sample with class-index labels ya (own) and yb (partner): the values
/// SoftTarget gives for one-hot vectors, entry by entry (the same double arithmetic), so rows
/// built from this on either backend equal SoftTarget's bit for bit.
inline TargetSpec OneHotTarget(double w, int ya, int yb, double eps, int K) {
  const double base = eps / K, keep = 1.0 - eps;
  auto entry = [&](double own_v, double partner_v) {
    return static_cast<float>(w * (keep * own_v + base) + (1.0 - w) * (keep * partner_v + base));
  };
  TargetSpec t;
  t.ya = ya;
  t.yb = yb;
  t.fill = entry(0.0, 0.0);
  t.vb = entry(0.0, 1.0);
  t.va = ya == yb ? entry(1.0, 1.0) : entry(1.0, 0.0);
  return t;
}

/// Target row of one sample (spec 1): w * smooth(v_own) + (1 - w) * smooth(v_partner), with
/// smooth(v) = (1 - eps) * v + eps / K; v are one-hot or soft label vectors of length K. With
/// `binary` (multi-hot labels), every entry is a label of its own, smoothed towards 1 / 2:
/// smooth(v) = (1 - eps) * v + eps / 2 (timm's mixup_target with multi_label).
inline void SoftTarget(double w, const float *v_own, const float *v_partner, int K, double eps,
                       float *out, bool binary = false) {
  const double base = binary ? eps / 2 : eps / K, keep = 1.0 - eps;
  for (int k = 0; k < K; k++) {
    double si = keep * v_own[k] + base, sj = keep * v_partner[k] + base;
    out[k] = static_cast<float>(w * si + (1.0 - w) * sj);
  }
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_PARAMS_H_
