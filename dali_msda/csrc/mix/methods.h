// The method table: what each mixing method is, in one place. The argument parser (`method`,
// `method_id`), the schema's help text, the draw, the mask planning and the box rules read it;
// dali_msda/methods.py is its Python twin (tests/test_methods.py checks that they agree, through
// the plugin's schema text). Adding a method is a row here, its mask in params.h (BuildMask) and
// its spec and reference (docs/methods.md, reference.py).

#ifndef DALI_MSDA_CSRC_MIX_METHODS_H_
#define DALI_MSDA_CSRC_MIX_METHODS_H_

#include <array>
#include <cstdint>
#include <string>

namespace msda {

enum class Method : int { kMixup = 0, kCutMix = 1, kHMix = 2, kGMix = 3, kFMix = 4,
                          kResizeMix = 5, kClassMix = 6 };
enum class Mode : int { kBatch = 0, kElem = 1, kPair = 2 };

/// The sample whose draw sample i of n uses (spec 2): sample 0 in batch mode, the first of its
/// pair (i and n - 1 - i) in pair mode, i itself in elem mode.
inline int DrawSource(Mode mode, int i, int n) {
  if (mode == Mode::kBatch) return 0;
  if (mode == Mode::kPair) return i < n - 1 - i ? i : n - 1 - i;
  return i;
}

/// How a method mixes the detection boxes of its two images (spec 13; boxes.h).
enum class BoxRule { kKeep, kUnion, kCut, kResize };

/// What the host makes for a method's mask beyond its SampleParams (mask.h).
enum class MaskData {
  kParams,      // the parameters are the mask (a box, a global weight)
  kGaussTable,  // H + W float Gaussian factors (GMix; TableSize)
  kBits,        // H x W bits, made on the host after the draw (FMix, ClassMix; BitsSize)
};

struct MethodTraits {
  Method id;
  const char *name;       // the `method` argument's value
  MaskData data;          // what the host makes per mask
  bool draws_coin;        // a fair coin after the draw (FMix: round lam H W up or down)
  bool draws_scale;       // a scale tau ~ U(scale_min, scale_max) after the draw (ResizeMix;
                          // in batch mode one per batch, and a centre per sample)
  bool needs_maps;        // its masks come from the partner's label map (`seg`)
  bool shares_mask;       // samples with the same draw share one mask (FMix: in batch mode,
                          // where the noise is the batch's too)
  bool mixes_boxes;       // takes `boxes` (spec 13)
  BoxRule box_rule;       // how, when it does
};

constexpr int kNumMethods = 7;

constexpr std::array<MethodTraits, kNumMethods> MethodTable() {
  // the three enums' names unqualified (a name two of them share is a compile error here)
  using enum Method;
  using enum MaskData;
  using enum BoxRule;
  // clang-format off
  return {{
    // id        name         mask data    coin   scale  maps   share  boxes  box rule
    {kMixup,     "mixup",     kParams,     false, false, false, true,  true,  kUnion},
    {kCutMix,    "cutmix",    kParams,     false, false, false, true,  true,  kCut},
    {kHMix,      "hmix",      kParams,     false, false, false, true,  false, kKeep},
    {kGMix,      "gmix",      kGaussTable, false, false, false, true,  false, kKeep},
    {kFMix,      "fmix",      kBits,       true,  false, false, true,  false, kKeep},
    {kResizeMix, "resizemix", kParams,     false, true,  false, true,  true,  kResize},
    {kClassMix,  "classmix",  kBits,       false, false, true,  false, false, kKeep},
  }};
  // clang-format on
}

inline constexpr std::array<MethodTraits, kNumMethods> kMethods = MethodTable();

constexpr bool MethodTableInOrder() {
  for (int k = 0; k < kNumMethods; k++)
    if (static_cast<int>(kMethods[k].id) != k) return false;
  return true;
}
static_assert(MethodTableInOrder(), "kMethods[k].id must be k: the table is indexed by id");

inline const MethodTraits &Traits(Method m) { return kMethods[static_cast<int>(m)]; }

/// The name `method` takes for a method.
inline const char *MethodName(Method m) { return Traits(m).name; }

/// The method called `name`; false if there is none.
inline bool FindMethod(const std::string &name, Method *m) {
  for (const MethodTraits &t : kMethods) {
    if (name == t.name) {
      *m = t.id;
      return true;
    }
  }
  return false;
}

/// The names of the methods whose traits satisfy `pred`, quoted and listed: "\"mixup\",
/// \"cutmix\" or \"resizemix\"" (`last`: what comes before the last one).
template <typename Pred>
std::string MethodNames(const Pred &pred, const char *last = " or ") {
  std::string names[kNumMethods];
  int count = 0;
  for (const MethodTraits &t : kMethods)
    if (pred(t)) names[count++] = std::string("\"") + t.name + "\"";
  std::string s;
  for (int k = 0; k < count; k++)
    s += (k == 0 ? "" : k + 1 == count ? last : ", ") + names[k];
  return s;
}

/// Every method's name, quoted (`last`: what comes before the last one).
inline std::string AllMethodNames(const char *last = " or ") {
  return MethodNames([](const MethodTraits &) { return true; }, last);
}

/// The ids of `method_id`: "0 (mixup), 1 (cutmix), ... or 6 (classmix)".
inline std::string MethodIds(bool parenthesised = true) {
  std::string s;
  for (int k = 0; k < kNumMethods; k++) {
    s += k == 0 ? "" : k + 1 == kNumMethods ? " or " : ", ";
    s += std::to_string(k) + (parenthesised ? " (" : " ") + kMethods[k].name +
         (parenthesised ? ")" : "");
  }
  return s;
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_METHODS_H_
