// The arguments of msda.Mix: MixArgs holds those that are constant for the op's lifetime (read
// and checked once, in the constructor), SampleArgs those given per sample (acquired and checked
// per batch). The inputs (images, labels, maps, boxes, FMix noise) are inputs.h.

#ifndef DALI_MSDA_CSRC_MIX_ARGS_H_
#define DALI_MSDA_CSRC_MIX_ARGS_H_

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "dali/pipeline/operator/arg_helper.h"
#include "dali/pipeline/operator/operator.h"

#include "checks.h"
#include "methods.h"
#include "params.h"

namespace msda {

/// The op's constant arguments, checked as they are read.
struct MixArgs {
  Method method = Method::kMixup;  // from `method`; per sample from `method_id` when given
  Mode mode = Mode::kBatch;
  bool correct_lam = true;
  bool output_mask = false;
  bool output_params = false;
  bool has_maps = false;           // a third input: label maps (spec 11)
  bool has_boxes = false;          // `boxes` and `box_labels` given (spec 13)
  double min_visible = 0.2;        // spec 13: an own / CutMix partner box's kept share
  int ignore_index = -1;           // ClassMix: the label not counted as a class
  int num_classes = 0;             // 0: not given
  float label_smoothing = 0.0f;
  bool index_targets = false;      // `targets="index"`: (own, partner) labels and a weight
  bool multi_label = false;        // float labels are multi-hot (entries in [0, 1]), not rows
                                   // summing to 1
  double decay_power = 3.0;        // FMix
  float scale_min = 0.1f, scale_max = 0.8f;  // ResizeMix: tau ~ U(scale_min, scale_max)
  bool resize_linear = false;      // ResizeMix: bilinear (`resize_interp`)
  bool exact_box = false;          // CutMix / HMix: `box="exact"`
  BoxRanges cutmix_ranges;         // CutMix: `cutmix_minmax` or `cutmix_area` (spec 4b)
  DALIDataType out_type = DALI_NO_TYPE;  // `dtype`; none: the images' type
  bool normalize = false;                // `mean` or `std` given
  std::vector<float> mean, std;          // as given (1 or C values; checked against C per batch)
  std::string out_layout;                // "" = the input's

  explicit MixArgs(const OpSpec &spec);
  void ReadBoxRanges(const OpSpec &spec);

  /// How masks are made beyond the draw, for a sample of HMix ratio `hmix_ratio`.
  MaskOptions Options(float hmix_ratio) const {
    return MaskOptions{hmix_ratio, correct_lam, resize_linear, exact_box};
  }

  /// The outputs: (mixed, targets), or (mixed, labels, weights) with index targets; then the
  /// map, the three box outputs (boxes, box_labels, box_weights), the mask, the params, each
  /// where requested (the index is -1 where not).
  int NumOutputs() const {
    return Extras() + has_maps + 3 * has_boxes + output_mask + output_params;
  }
  int MapsOutput() const { return has_maps ? Extras() : -1; }
  int BoxesOutput() const { return has_boxes ? Extras() + has_maps : -1; }
  int MaskOutput() const { return output_mask ? Extras() + has_maps + 3 * has_boxes : -1; }
  int ParamsOutput() const {
    return output_params ? Extras() + has_maps + 3 * has_boxes + output_mask : -1;
  }
  /// Where the optional outputs start: after the images and the targets (one output, or two).
  int Extras() const { return 2 + index_targets; }
  /// How many outputs the op has for `spec` (the schema's OutputFn).
  static int CountOutputs(const OpSpec &spec) {
    return 2 + (spec.GetArgument<std::string>("targets") == "index") +
           (spec.NumRegularInput() > 2) + 3 * spec.HasTensorArgument("boxes") +
           spec.GetArgument<bool>("output_mask") + spec.GetArgument<bool>("output_params");
  }
};

/// The per-sample arguments of a batch of n, checked (ranges, and in batch mode one value for
/// the batch): Acquire reads them; `lam` and `center` only where given.
struct SampleArgs {
  std::vector<float> alpha, prob, hmix_ratio;
  std::vector<Method> methods;
  std::vector<int> mirror;  // 0 or 1
  bool any_mirror = false;
  ArgValue<float, 0> lam;
  ArgValue<float, 1> center;

  explicit SampleArgs(const OpSpec &spec) : lam("lam", spec), center("center", spec) {}

  /// `mirror` (checked: images only); `layout`: the images', for the message.
  void AcquireMirror(const OpSpec &spec, const Workspace &ws, int n, bool sequence,
                     const TensorLayout &layout);
  /// alpha, prob, hmix_ratio, method_id, lam, center.
  void Acquire(const OpSpec &spec, const Workspace &ws, int n, const MixArgs &args);
};

// ---- implementation

inline Mode ParseMode(const std::string &s) {
  if (s == "batch") return Mode::kBatch;
  if (s == "elem") return Mode::kElem;
  if (s == "pair") return Mode::kPair;
  DALI_FAIL(make_string("`mode` must be \"batch\", \"elem\" or \"pair\"; got \"", s, "\"."));
}

inline MixArgs::MixArgs(const OpSpec &spec) {
  const std::string name = spec.GetArgument<std::string>("method");
  auto by_maps = [](bool maps) {
    return [maps](const MethodTraits &t) { return t.needs_maps == maps; };
  };
  MSDA_ENFORCE(!name.empty() || spec.HasTensorArgument("method_id"),
               "`method` is required (" + MethodNames(by_maps(false), ", ") +
                   " or, with label maps, " + MethodNames(by_maps(true)) +
                   "), unless `method_id` is given.");
  MSDA_ENFORCE(name.empty() || FindMethod(name, &method),
               make_string("`method` must be one of ", AllMethodNames(", "), "; got \"", name,
                           "\"."));
  mode = ParseMode(spec.GetArgument<std::string>("mode"));
  correct_lam = spec.GetArgument<bool>("correct_lam");
  output_mask = spec.GetArgument<bool>("output_mask");
  output_params = spec.GetArgument<bool>("output_params");
  has_maps = spec.NumRegularInput() > 2;
  for (const char *arg : {"boxes", "box_labels"})
    MSDA_ENFORCE(!spec.HasArgument(arg) || spec.HasTensorArgument(arg),
                 make_string("`", arg, "` must be an argument input (a per-sample tensor from "
                             "the pipeline, e.g. fn.readers.coco's), not a constant."));
  has_boxes = spec.HasTensorArgument("boxes");
  MSDA_ENFORCE(has_boxes == spec.HasTensorArgument("box_labels"),
               make_string("`boxes` and `box_labels` go together (spec 13): got `",
                           has_boxes ? "boxes" : "box_labels", "` without `",
                           has_boxes ? "box_labels" : "boxes", "`."));
  const float visible = spec.GetArgument<float>("min_visible");
  MSDA_ENFORCE(visible >= 0.0f && visible <= 1.0f,
               make_string("`min_visible` must be in [0, 1]; got ", detail::Num(visible), "."));
  min_visible = visible;
  ignore_index = spec.GetArgument<int>("ignore_index");
  if (spec.HasArgument("num_classes")) {
    num_classes = spec.GetArgument<int>("num_classes");
    MSDA_ENFORCE(num_classes > 0, make_string("`num_classes` must be positive; got ",
                                              num_classes, "."));
  }
  label_smoothing = spec.GetArgument<float>("label_smoothing");
  const float decay = spec.GetArgument<float>("decay_power");
  MSDA_ENFORCE(std::isfinite(decay) && decay > 0.0f,
               make_string("`decay_power` must be a finite number > 0; got ", detail::Num(decay),
                           "."));
  decay_power = decay;
  const std::string interp = spec.GetArgument<std::string>("resize_interp");
  MSDA_ENFORCE(interp == "nearest" || interp == "bilinear",
               make_string("`resize_interp` must be \"nearest\" or \"bilinear\"; got \"", interp,
                           "\"."));
  resize_linear = interp == "bilinear";
  const std::string box = spec.GetArgument<std::string>("box");
  MSDA_ENFORCE(box == "even" || box == "exact",
               make_string("`box` must be \"even\" or \"exact\"; got \"", box, "\"."));
  exact_box = box == "exact";
  scale_min = spec.GetArgument<float>("scale_min");
  scale_max = spec.GetArgument<float>("scale_max");
  for (auto [arg, v] : {std::pair{"scale_min", scale_min}, std::pair{"scale_max", scale_max}})
    MSDA_ENFORCE(v > 0.0f && v <= 1.0f,
                 make_string("`", arg, "` must be in (0, 1]; got ", detail::Num(v), "."));
  MSDA_ENFORCE(scale_min <= scale_max,
               make_string("`scale_min` must be <= `scale_max`; got ", detail::Num(scale_min),
                           " > ", detail::Num(scale_max), "."));
  MSDA_ENFORCE(label_smoothing >= 0.0f && label_smoothing <= 1.0f,
               make_string("`label_smoothing` must be in [0, 1]; got ",
                           detail::Num(label_smoothing), "."));
  const std::string targets = spec.GetArgument<std::string>("targets");
  MSDA_ENFORCE(targets == "dense" || targets == "index",
               make_string("`targets` must be \"dense\" or \"index\"; got \"", targets, "\"."));
  index_targets = targets == "index";
  multi_label = spec.GetArgument<bool>("multi_label");
  MSDA_ENFORCE(!index_targets || label_smoothing == 0.0f,
               make_string("`label_smoothing` smooths dense targets; with `targets=\"index\"` "
                           "give it to the loss (dali_msda.pytorch.mixed_cross_entropy's "
                           "`label_smoothing`); got ", detail::Num(label_smoothing), "."));
  if (spec.HasArgument("dtype")) {
    out_type = spec.GetArgument<DALIDataType>("dtype");
    MSDA_ENFORCE(detail::IsSupportedImageType(out_type),
                 make_string("`dtype` must be one of uint8, float16, float32; got ",
                             detail::TypeStr(out_type), "."));
  }
  // fused normalisation: checked against the channel count per batch (ImageBatch)
  for (auto [arg, values] : {std::pair{"mean", &mean}, std::pair{"std", &std}}) {
    if (!spec.HasArgument(arg)) continue;
    normalize = true;
    *values = spec.template GetRepeatedArgument<float>(arg);
    const bool is_std = std::string(arg) == "std";
    for (size_t c = 0; c < values->size(); c++) {
      const float v = (*values)[c];
      MSDA_ENFORCE(is_std ? std::isfinite(v) && v > 0.0f : std::isfinite(v),
                   make_string("`", arg, "` must be ", is_std ? "finite and > 0" : "finite",
                               "; got ", detail::Num(v), " for channel ", c, "."));
    }
  }
  out_layout = spec.GetArgument<std::string>("output_layout");
  ReadBoxRanges(spec);
}

inline void MixArgs::ReadBoxRanges(const OpSpec &spec) {
  auto pair = [&](const char *name) {
    const std::vector<float> v = spec.template GetRepeatedArgument<float>(name);
    MSDA_ENFORCE(v.size() == 2 && std::isfinite(v[0]) && std::isfinite(v[1]),
                 make_string("`", name, "` must be two finite numbers (min, max); got ",
                             v.size(), " values."));
    return std::pair<double, double>{v[0], v[1]};
  };
  const bool minmax = spec.HasArgument("cutmix_minmax"), area = spec.HasArgument("cutmix_area");
  MSDA_ENFORCE(!(minmax && area), "`cutmix_minmax` (timm's box sides) and `cutmix_area` "
                                  "(UniMatch's box) are two ways to draw CutMix's box: give one.");
  MSDA_ENFORCE(!spec.HasArgument("cutmix_aspect") || area,
               "`cutmix_aspect` goes with `cutmix_area` (UniMatch's box, spec 4b).");
  BoxRanges &r = cutmix_ranges;
  if (minmax) {
    auto [lo, hi] = pair("cutmix_minmax");
    MSDA_ENFORCE(lo > 0.0 && lo < hi && hi <= 1.0,
                 make_string("`cutmix_minmax` must satisfy 0 < min < max <= 1; got (",
                             detail::Num(lo), ", ", detail::Num(hi), ")."));
    r.kind = BoxRanges::kMinMax;
    r.lo = lo;
    r.hi = hi;
  }
  if (area) {
    auto [lo, hi] = pair("cutmix_area");
    MSDA_ENFORCE(lo > 0.0 && lo <= hi && hi <= 1.0,
                 make_string("`cutmix_area` must satisfy 0 < min <= max <= 1; got (",
                             detail::Num(lo), ", ", detail::Num(hi), ")."));
    r.kind = BoxRanges::kArea;
    r.lo = lo;
    r.hi = hi;
    if (spec.HasArgument("cutmix_aspect")) {
      auto [alo, ahi] = pair("cutmix_aspect");
      MSDA_ENFORCE(alo > 0.0 && alo <= ahi,
                   make_string("`cutmix_aspect` (h / w) must satisfy 0 < min <= max; got (",
                               detail::Num(alo), ", ", detail::Num(ahi), ")."));
      r.aspect_lo = alo;
      r.aspect_hi = ahi;
    }
  }
}

/// CutMix's ranged box (spec 4b) for images of H x W: refused with a given `center`, and where
/// no box of the ranges fits.
inline void CheckBoxRanges(const BoxRanges &r, bool explicit_center, int H, int W) {
  if (r.kind == BoxRanges::kNone || H == 0) return;
  MSDA_ENFORCE(!explicit_center,
               "`center` places a box cut from lam; with `cutmix_minmax` or `cutmix_area` the "
               "box's place is drawn (spec 4b): leave `center` out.");
  if (r.kind == BoxRanges::kMinMax) {
    for (auto [side, size] : {std::pair{"H", H}, std::pair{"W", W}}) {
      const int lo = static_cast<int>(size * r.lo), hi = static_cast<int>(size * r.hi);
      MSDA_ENFORCE(lo < hi, make_string("`cutmix_minmax` (", detail::Num(r.lo), ", ",
                                        detail::Num(r.hi), ") holds no whole side for ", side,
                                        " = ", size, ": floor(", side, " min) = ", lo,
                                        " must be below floor(", side, " max) = ", hi, "."));
    }
    return;
  }
  const double a = r.hi * H / W, b = H / (r.hi * W);  // the aspects where the largest area fits
  const double from = std::max(r.aspect_lo, a), to = std::min(r.aspect_hi, b);
  MSDA_ENFORCE(from < to || (from == to && r.aspect_lo == r.aspect_hi),
               make_string("`cutmix_area` up to ", detail::Num(r.hi), " with `cutmix_aspect` (",
                           detail::Num(r.aspect_lo), ", ", detail::Num(r.aspect_hi),
                           ") holds boxes that never fit a ", H, " x ", W, " image (the largest "
                           "area fits for aspects in [", detail::Num(a), ", ", detail::Num(b),
                           "] only)."));
}

inline void SampleArgs::AcquireMirror(const OpSpec &spec, const Workspace &ws, int n,
                                      bool sequence, const TensorLayout &layout) {
  mirror.assign(n, 0);
  any_mirror = false;
  if (!spec.HasArgument("mirror") && !spec.HasTensorArgument("mirror")) return;
  MSDA_ENFORCE(!sequence, make_string("`mirror` is not supported for sequences (layout \"",
                                      layout, "\"): flip the frames before the op."));
  if (n > 0) ::dali::GetPerSampleArgument(mirror, "mirror", spec, ws, n);
  for (int i = 0; i < n; i++) {
    MSDA_ENFORCE(mirror[i] == 0 || mirror[i] == 1,
                 make_string("`mirror` must be 0 or 1; got ", mirror[i], " for sample ", i,
                             "."));
    any_mirror |= mirror[i] != 0;
  }
}

inline void SampleArgs::Acquire(const OpSpec &spec, const Workspace &ws, int n,
                                const MixArgs &args) {
  const Mode mode = args.mode;
  if (n > 0) {
    detail::ReadScalarArg(alpha, "alpha", spec, ws, n, 0.0, true, INFINITY, mode);
    detail::ReadScalarArg(prob, "prob", spec, ws, n, 0.0, false, 1.0, mode);
    detail::ReadScalarArg(hmix_ratio, "hmix_ratio", spec, ws, n, 0.0, false, 1.0, mode);
  }
  methods.assign(n, args.method);
  if (spec.HasTensorArgument("method_id")) {
    const auto &ids = ws.ArgumentInput("method_id");
    MSDA_ENFORCE(ids.type() == DALI_INT32,
                 make_string("`method_id` must be int32; got ", detail::TypeStr(ids.type()), "."));
    MSDA_ENFORCE(ids.num_samples() == n,
                 make_string("`method_id` must have one value per sample; got ",
                             ids.num_samples(), " for ", n, " samples."));
    for (int i = 0; i < n; i++) {
      MSDA_ENFORCE(volume(ids.tensor_shape(i)) == 1,
                   make_string("`method_id` must be a scalar per sample; sample ", i,
                               " has shape ", detail::ShapeStr(ids.tensor_shape(i)), "."));
      const int id = ids.tensor<int32_t>(i)[0];
      MSDA_ENFORCE(id >= 0 && id < kNumMethods,
                   make_string("`method_id` must be ", MethodIds(), "; got ", id, " for sample ",
                               i, "."));
      methods[i] = static_cast<Method>(id);
      const int src = DrawSource(mode, i, n);  // <= i: its method is read already
      MSDA_ENFORCE(methods[i] == methods[src],
                   detail::ModeMismatch(mode, "method_id", src, int(methods[src]),
                                        int(methods[i]), i));
    }
  }
  if (lam.HasExplicitValue()) {
    lam.Acquire(spec, ws, n, TensorShape<0>{});
    for (int i = 0; i < n; i++) {
      const float v = lam[i].data[0];
      MSDA_ENFORCE(v >= 0.0f && v <= 1.0f,
                   make_string("`lam` must be in [0, 1]; got ", detail::Num(v), " for sample ",
                               i, "."));
    }
    for (int i = 0; i < n; i++) {
      const int src = DrawSource(mode, i, n);
      const float v = lam[i].data[0], v0 = lam[src].data[0];
      MSDA_ENFORCE(v == v0, detail::ModeMismatch(mode, "lam", src, v0, v, i));
    }
  }
  if (center.HasExplicitValue()) {
    center.Acquire(spec, ws, n, TensorShape<1>{2});
    for (int i = 0; i < n; i++) {
      const float *c = center[i].data;
      MSDA_ENFORCE(c[0] >= 0.0f && c[0] < 1.0f && c[1] >= 0.0f && c[1] < 1.0f,
                   make_string("`center` (relative y, x) must lie in [0, 1); got (", c[0], ", ",
                               c[1], ") for sample ", i, "."));
    }
    for (int i = 0; i < n; i++) {
      const int src = DrawSource(mode, i, n);
      const float *c = center[i].data, *c0 = center[src].data;
      MSDA_ENFORCE(c[0] == c0[0] && c[1] == c0[1],
                   detail::ModeMismatch(mode, "center", src,
                                        make_string("(", c0[0], ", ", c0[1], ")"),
                                        make_string("(", c[0], ", ", c[1], ")"), i));
    }
  }
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_ARGS_H_
