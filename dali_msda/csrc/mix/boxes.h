// Boxes through the mix (spec 13): host code shared by both backends (boxes are argument inputs,
// always in host memory; the GPU op copies the result to its outputs).

#ifndef DALI_MSDA_CSRC_MIX_BOXES_H_
#define DALI_MSDA_CSRC_MIX_BOXES_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "methods.h"

namespace msda {

/// A relative ltrb box, float32 as it is stored.
struct Ltrb {
  float l, t, r, b;
};

/// Area of a float32 box: float64 product of its float32 side lengths (spec 13).
inline double BoxArea(float l, float t, float r, float b) {
  return static_cast<double>(r - l) * static_cast<double>(b - t);
}

/// The part of a box inside the pasted rectangle [pl, pr] x [pt, pb] (float64 edges), and its
/// area (0 when they do not overlap).
struct Overlap {
  double l, t, r, b, area;
};

inline Overlap OverlapWith(const Ltrb &box, double pl, double pt, double pr, double pb) {
  Overlap o{std::max(double(box.l), pl), std::max(double(box.t), pt),
            std::min(double(box.r), pr), std::min(double(box.b), pb), 0.0};
  o.area = std::max(o.r - o.l, 0.0) * std::max(o.b - o.t, 0.0);
  return o;
}

/// The boxes a batch's mix produces: sample i's are rows [offsets[i], offsets[i + 1]).
struct MixedBoxes {
  std::vector<Ltrb> boxes;
  std::vector<int32_t> labels;
  std::vector<float> weights;
  std::vector<int64_t> offsets{0};
  void Clear() {
    boxes.clear();
    labels.clear();
    weights.clear();
    offsets.assign(1, 0);
  }
  void Add(const Ltrb &box, int32_t label, float weight) {
    boxes.push_back(box);
    labels.push_back(label);
    weights.push_back(weight);
  }
  void EndSample() { offsets.push_back(static_cast<int64_t>(boxes.size())); }
  int64_t Count(int i) const { return offsets[i + 1] - offsets[i]; }
};

/// One image's boxes as shown: its input boxes, flipped with the image when `flip` is set.
struct BoxSource {
  const float *ltrb = nullptr;  // n x 4
  const int32_t *labels = nullptr;
  int64_t n = 0;
  bool flip = false;
  Ltrb At(int64_t k) const {
    const float *v = ltrb + 4 * k;
    return flip ? Ltrb{1.0f - v[2], v[1], 1.0f - v[0], v[3]} : Ltrb{v[0], v[1], v[2], v[3]};
  }
};

/// How a sample mixes its boxes.
/// Appends sample i's mixed boxes (spec 13) to `out` and ends the sample. `rule`: kKeep (not
/// mixed), kUnion (Mixup, own weight `w`), kCut (CutMix) or kResize (ResizeMix), the last two
/// with the pasted pixel box rows [y0, y1), columns [x0, x1) of an H x W image.
inline void MixSampleBoxes(BoxRule rule, double w, int y0, int y1, int x0, int x1, int H, int W,
                           const BoxSource &own, const BoxSource &partner, double min_visible,
                           MixedBoxes *out) {
  const bool pasted = y1 > y0 && x1 > x0;
  if (rule == BoxRule::kKeep || ((rule == BoxRule::kCut || rule == BoxRule::kResize) &&
                                 !pasted)) {
    for (int64_t k = 0; k < own.n; k++) out->Add(own.At(k), own.labels[k], 1.0f);
    out->EndSample();
    return;
  }
  if (rule == BoxRule::kUnion) {
    for (int64_t k = 0; k < own.n; k++) out->Add(own.At(k), own.labels[k], float(w));
    for (int64_t k = 0; k < partner.n; k++)
      out->Add(partner.At(k), partner.labels[k], float(1.0 - w));
    out->EndSample();
    return;
  }
  const double pl = double(x0) / W, pt = double(y0) / H, pr = double(x1) / W,
               pb = double(y1) / H;
  for (int64_t k = 0; k < own.n; k++) {
    const Ltrb b = own.At(k);
    const double area = BoxArea(b.l, b.t, b.r, b.b);
    if (area == 0.0) continue;  // nothing of it can stay visible
    const double l = b.l, t = b.t, r = b.r, bb = b.b;
    const Overlap i = OverlapWith(b, pl, pt, pr, pb);
    const double visible = 1.0 - i.area / area;
    if (visible <= 0.0 || visible < min_visible) continue;
    double nl = l, nt = t, nr = r, nb = bb;
    if (i.area > 0.0 && pt <= t && pb >= bb) {  // P spans its height: shrink x to the open side
      if (i.r >= r) nr = i.l;
      else if (i.l <= l) nl = i.r;
    } else if (i.area > 0.0 && pl <= l && pr >= r) {  // P spans its width: y likewise
      if (i.b >= bb) nb = i.t;
      else if (i.t <= t) nt = i.b;
    }
    out->Add(Ltrb{float(nl), float(nt), float(nr), float(nb)}, own.labels[k], 1.0f);
  }
  for (int64_t k = 0; k < partner.n; k++) {
    const Ltrb b = partner.At(k);
    if (rule == BoxRule::kResize) {  // the whole partner shrunk into P: each box mapped into it
      const Ltrb m{float(pl + b.l * (pr - pl)), float(pt + b.t * (pb - pt)),
                   float(pl + b.r * (pr - pl)), float(pt + b.b * (pb - pt))};
      if (BoxArea(m.l, m.t, m.r, m.b) > 0.0) out->Add(m, partner.labels[k], 1.0f);
      continue;
    }
    const double area = BoxArea(b.l, b.t, b.r, b.b);
    const Overlap i = OverlapWith(b, pl, pt, pr, pb);
    if (area > 0.0 && i.area > 0.0 && i.area / area >= min_visible)
      out->Add(Ltrb{float(i.l), float(i.t), float(i.r), float(i.b)}, partner.labels[k],
               1.0f);
  }
  out->EndSample();
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_BOXES_H_
