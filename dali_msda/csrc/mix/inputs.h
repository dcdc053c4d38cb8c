// The inputs of msda.Mix, one small type each, with its checks and its outputs' descriptors:
// the images (ImageBatch), the labels and the targets made from them (Labels), the label maps
// (LabelMaps), the detection boxes (Boxes) and the explicit FMix noise (CheckFMixNoise). Each
// Read checks a batch and fails with a message naming the input, the rule and the value.

#ifndef DALI_MSDA_CSRC_MIX_INPUTS_H_
#define DALI_MSDA_CSRC_MIX_INPUTS_H_

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "dali/pipeline/data/views.h"
#include "dali/pipeline/operator/operator.h"

#include "args.h"
#include "boxes.h"
#include "checks.h"
#include "fmix.h"
#include "mask.h"
#include "params.h"
#include "plan.h"

namespace msda {

/// Writes n rows of `row_bytes` each from host memory `src` into the n samples of `out`:
/// copy(dst, src, bytes) copies host memory to an output (memcpy, or an asynchronous copy to the
/// GPU), once where the output is contiguous, else once per sample.
template <typename TL, typename Copy>
void WriteRows(TL &out, const void *src, int64_t row_bytes, const Copy &copy) {
  const int n = out.num_samples();
  const auto *from = static_cast<const uint8_t *>(src);
  if (n == 0 || row_bytes == 0) return;
  if (out.IsContiguous()) return copy(out.raw_mutable_tensor(0), from, n * row_bytes);
  for (int i = 0; i < n; i++) copy(out.raw_mutable_tensor(i), from + i * row_bytes, row_bytes);
}

// ---- images

/// The batch of images: type, layouts, one shape for every sample (BatchShape) and the fused
/// normalisation's per-channel values.
struct ImageBatch {
  DALIDataType in_type = DALI_NO_TYPE, out_type = DALI_NO_TYPE;
  TensorLayout layout, out_layout;
  bool sequence = false;
  BatchShape shape;          // K is the labels' (Labels::Read)
  TensorShape<> out_sample;  // a sample of `mixed`
  std::vector<float> norm;   // mean[C], then the float32 reciprocal of std[C]

  /// Checks input 0 and `output_layout`; fills the shape (not yet K) and `norm`.
  void Read(const Workspace &ws, const MixArgs &args);
  /// Whether the batch needs the fused path (normalisation, mirror or a layout change).
  bool Fused(bool any_mirror) const {
    return shape.normalize || any_mirror || shape.out_planar != shape.in_planar;
  }
  OutputDesc Desc(const Workspace &ws) const {
    const auto &in = ws.GetInputShape(0);
    return {out_layout == layout ? in : uniform_list_shape(shape.n, out_sample), out_type};
  }
};

inline void ImageBatch::Read(const Workspace &ws, const MixArgs &args) {
  const auto &in = ws.GetInputShape(0);
  const int n = in.num_samples();
  const int ndim = in.sample_dim();
  in_type = ws.GetInputDataType(0);
  MSDA_ENFORCE(detail::IsSupportedImageType(in_type),
               make_string("`images` must be uint8, float16 or float32; got ",
                           detail::TypeStr(in_type), "."));
  out_type = args.out_type == DALI_NO_TYPE ? in_type : args.out_type;
  layout = ws.GetInputLayout(0);
  if (layout.empty()) {
    MSDA_ENFORCE(ndim == 3 || ndim == 4,
                 make_string("`images` without a layout must have 3 dimensions (taken as HWC) or "
                             "4 (taken as FHWC); got ", ndim, " dimensions."));
    layout = ndim == 3 ? "HWC" : "FHWC";
  }
  MSDA_ENFORCE(layout == "HWC" || layout == "CHW" || layout == "FHWC" || layout == "FCHW",
               make_string("`images` layout must be one of HWC, CHW, FHWC, FCHW; got \"", layout,
                           "\"."));
  MSDA_ENFORCE(layout.ndim() == ndim,
               make_string("`images` layout \"", layout, "\" has ", layout.ndim(),
                           " dimensions but the images have ", ndim, "."));
  for (int i = 1; i < n; i++) {
    MSDA_ENFORCE(in[i] == in[0],
                 make_string("`images` must all have the same shape; sample 0 has shape ",
                             detail::ShapeStr(in[0]), " but sample ", i, " has ",
                             detail::ShapeStr(in[i]), "."));
  }
  sequence = layout.find('F') >= 0;
  if (args.out_layout.empty()) {
    out_layout = layout;
  } else {
    out_layout = TensorLayout(args.out_layout);
    const bool ok = sequence ? (out_layout == "FHWC" || out_layout == "FCHW")
                             : (out_layout == "HWC" || out_layout == "CHW");
    MSDA_ENFORCE(ok, make_string("`output_layout` must be ",
                                 sequence ? "\"FHWC\" or \"FCHW\" for sequences"
                                          : "\"HWC\" or \"CHW\" for images",
                                 " (input layout \"", layout, "\"); got \"", args.out_layout,
                                 "\"."));
  }
  shape = BatchShape{};
  shape.n = n;
  shape.in_planar = layout.find('C') < layout.find('H');
  shape.out_planar = out_layout.find('C') < out_layout.find('H');
  shape.normalize = args.normalize;
  out_sample = TensorShape<>{};
  if (n == 0) return;
  const auto sh = in[0];
  shape.H = sh[layout.find('H')];
  shape.W = sh[layout.find('W')];
  const int64_t channels = sh[layout.find('C')];
  shape.frames = sequence ? sh[layout.find('F')] : 1;
  MSDA_ENFORCE(shape.H > 0 && shape.W > 0 && channels > 0 && shape.frames > 0,
               make_string("`images` must not be empty; got shape ", detail::ShapeStr(sh), "."));
  MSDA_ENFORCE(int64_t(shape.W) * channels <= (int64_t(1) << 30) && channels <= (1 << 16),
               make_string("`images` rows must hold at most 2^30 elements (W x C) and at most "
                           "65536 channels; got shape ", detail::ShapeStr(sh), "."));
  shape.C = static_cast<int>(channels);
  out_sample = sh;
  for (int d = 0; d < ndim; d++) out_sample[d] = sh[layout.find(out_layout[d])];
  // fused normalisation (spec 7): one value, or one per channel
  if (!args.normalize) return;
  const int C = shape.C;
  for (auto [name, values] : {std::pair{"mean", &args.mean}, std::pair{"std", &args.std}}) {
    MSDA_ENFORCE(values->size() <= 1 || static_cast<int>(values->size()) == C,
                 make_string("`", name, "` must have 1 value or one per channel (C = ", C,
                             "); got ", values->size(), " values."));
  }
  norm.resize(2 * C);
  for (int c = 0; c < C; c++) {
    const std::vector<float> &mean = args.mean, &std = args.std;
    norm[c] = mean.empty() ? 0.0f : mean[mean.size() == 1 ? 0 : c];
    norm[C + c] = 1.0f / (std.empty() ? 1.0f : std[std.size() == 1 ? 0 : c]);
  }
}

// ---- FMix noise given as an argument input

/// Checks `fmix_noise` where given: H x (W / 2 + 1) x 2 finite float32 values per sample, one
/// noise for the batch in batch mode. Returns whether it is given; `noise_max`: the largest
/// magnitude of the noise FMix will use (of the given noise, else of the drawn noise).
inline bool CheckFMixNoise(const OpSpec &spec, const Workspace &ws, int n, int H, int W,
                           Mode mode, double *noise_max) {
  *noise_max = kFMixDrawnNoiseMax;
  if (!spec.HasTensorArgument("fmix_noise")) return false;
  *noise_max = 0.0;
  const auto &noise = ws.ArgumentInput("fmix_noise");
  const int64_t size = FMixNoiseSize(H, W);
  const std::string want = make_string("(", H, ", ", W / 2 + 1, ", 2)");
  MSDA_ENFORCE(noise.type() == DALI_FLOAT,
               make_string("`fmix_noise` must be float32; got ", detail::TypeStr(noise.type()),
                           "."));
  MSDA_ENFORCE(noise.num_samples() == n,
               make_string("`fmix_noise` must have one tensor per sample; got ",
                           noise.num_samples(), " for ", n, " samples."));
  for (int i = 0; i < n; i++) {
    const auto sh = noise.tensor_shape(i);
    const bool ok = sh.size() == 3 ? sh[0] == H && sh[1] == W / 2 + 1 && sh[2] == 2
                                   : sh.size() == 1 && sh[0] == size;
    MSDA_ENFORCE(ok, make_string("`fmix_noise` must have shape ", want, " (H, W // 2 + 1, 2) "
                                 "or (", size, ",) for images of H = ", H, ", W = ", W,
                                 "; got ", detail::ShapeStr(sh), " for sample ", i, "."));
    const int src = DrawSource(mode, i, n);
    const float *v = noise.tensor<float>(i), *v0 = noise.tensor<float>(src);
    for (int64_t k = 0; k < size; k++) {
      MSDA_ENFORCE(std::isfinite(v[k]),
                   make_string("`fmix_noise` must be finite; got ", v[k], " at index ", k,
                               " of sample ", i, "."));
      MSDA_ENFORCE(v[k] == v0[k],
                   detail::ModeMismatch(mode, "fmix_noise", src, v0[k], v[k], i) +
                       make_string(" (first difference at index ", k, ")"));
      *noise_max = std::max(*noise_max, std::fabs(double(v[k])));
    }
  }
  return true;
}

/// Refuses a `decay_power` whose FMix masks of H x W could not be computed in float64 (their
/// transforms would overflow: FMixImageBounded) where a sample of the batch uses FMix, before
/// anything is drawn.
inline void CheckFMixDecay(const std::vector<Method> &methods, int H, int W, double decay_power,
                           double noise_max) {
  if (int64_t(H) * W == 0 ||
      std::find(methods.begin(), methods.end(), Method::kFMix) == methods.end())
    return;
  if (FMixImageBounded(H, W, decay_power, noise_max)) return;
  // the limit as the float32 argument it would be given, rounded down: that value is accepted
  const double limit = FMixMaxDecayPower(H, W, noise_max);
  float shown = float(limit);
  if (double(shown) > limit) shown = std::nextafter(shown, 0.0f);
  DALI_FAIL(make_string("`decay_power` ", detail::Num(float(decay_power)), " is too large for "
                        "FMix masks of H = ", H, ", W = ", W, ": the spectrum's weights, up to "
                        "max(H, W) ** decay_power, times the noise (magnitudes up to ",
                        detail::Num(float(noise_max)), ") overflow float64; at this size "
                        "`decay_power` must be at most ", detail::Num(shown), "."));
}

// ---- labels and targets

/// The labels of a batch (class indices or soft vectors, input 1, on the CPU) and the targets
/// made from them (spec 1): a one-hot mix per sample (TargetSpec, expanded where it is written)
/// or, for soft labels, a row of K floats.
struct Labels {
  int K = 0;
  bool soft = false;
  bool binary = false;                // multi-hot vectors: smoothed towards 1 / 2 (SoftTarget)
  std::vector<int> class_ids;         // class-index labels
  std::vector<float> vectors;         // n x K: the given soft vectors (soft labels)
  std::vector<TargetSpec> targets;    // per sample (MakeTargets)
  std::vector<float> soft_targets;    // n x K, for soft labels only (MakeTargets)

  /// Checks input 1; `index`: the targets are to be given as indices (`targets="index"`),
  /// which needs class-index labels; `multi_label`: float vectors are multi-hot (each entry in
  /// [0, 1], any sum), not distributions.
  void Read(const Workspace &ws, int n, int num_classes, bool index, bool multi_label);
  /// The targets of every sample i of n, mixed with its partner n - 1 - i by its own label's
  /// weight (BatchPlan::weights), label-smoothed by `eps`.
  void MakeTargets(const std::vector<double> &weights, int n, double eps);
  /// Target row of sample i into `out` (K floats).
  void Row(int i, float *out) const;
  /// Writes the index targets (`targets="index"`) of the n samples into outputs `first` (the
  /// (own, partner) classes, int32) and `first + 1` (the own class's weight, float32), by
  /// copy(dst, src, bytes) (WriteRows).
  template <typename Backend, typename Copy>
  void WriteIndexTargets(Workspace &ws, int first, const std::vector<double> &weights, int n,
                         const Copy &copy) const {
    std::vector<int32_t> labels(2 * n);
    std::vector<float> own_weights(n);
    for (int i = 0; i < n; i++) {
      labels[2 * i] = class_ids[i];
      labels[2 * i + 1] = class_ids[n - 1 - i];
      own_weights[i] = static_cast<float>(weights[i]);
    }
    WriteRows(ws.Output<Backend>(first), labels.data(), 2 * sizeof(int32_t), copy);
    WriteRows(ws.Output<Backend>(first + 1), own_weights.data(), sizeof(float), copy);
  }
};

inline void Labels::Read(const Workspace &ws, int n, int num_classes, bool index,
                         bool multi_label) {
  const auto &labels = ws.Input<CPUBackend>(1);
  MSDA_ENFORCE(labels.num_samples() == n,
               make_string("`labels` must have one entry per image; got ", labels.num_samples(),
                           " labels for ", n, " images."));
  const DALIDataType type = labels.type();
  const auto &lshape = labels.shape();
  binary = multi_label;
  if (detail::IsIntegerType(type)) {
    MSDA_ENFORCE(!multi_label,
                 make_string("`multi_label=True` takes multi-hot float32 label vectors (K entries "
                             "in [0, 1] a sample); got class-index labels of type ",
                             detail::TypeStr(type), ", one class a sample (leave multi_label "
                             "False for them)."));
    MSDA_ENFORCE(num_classes > 0,
                 make_string("`num_classes` is required when `labels` are class indices (got "
                             "labels of type ", detail::TypeStr(type), ")."));
    K = num_classes;
    soft = false;
    class_ids.resize(n);
    TYPE_SWITCH(type, type2id, L,
                (uint8_t, uint16_t, uint32_t, uint64_t, int8_t, int16_t, int32_t, int64_t), (
      for (int i = 0; i < n; i++) {
        MSDA_ENFORCE(volume(lshape[i]) == 1,
                     make_string("Class-index `labels` must hold one value per sample; sample ",
                                 i, " has shape ", detail::ShapeStr(lshape[i]), "."));
        L y = labels.tensor<L>(i)[0];
        const int64_t yi = static_cast<int64_t>(y);  // unsigned ids beyond 2^63 wrap below 0
        MSDA_ENFORCE(yi >= 0 && yi < K,
                     make_string("`labels` must be class indices in [0, ", K,
                                 ") (`num_classes`); got ", +y, " for sample ", i, "."));
        class_ids[i] = static_cast<int>(yi);
      }
    ), DALI_FAIL("unreachable"));  // NOLINT
  } else if (type == DALI_FLOAT) {
    MSDA_ENFORCE(!index, "`targets=\"index\"` gives each sample's own and partner class index: "
                         "it needs class-index `labels` (integers), not soft-label vectors.");
    MSDA_ENFORCE(lshape.sample_dim() == 1,
                 make_string("Soft `labels` must be vectors (1-D, float32); got ",
                             lshape.sample_dim(), "-D labels",
                             lshape.sample_dim() == 0
                                 ? " (class indices are integers: int32 or int64, say)." : "."));
    K = n > 0 ? lshape[0][0] : (num_classes > 0 ? num_classes : 0);
    if (num_classes > 0) {
      MSDA_ENFORCE(n == 0 || K == num_classes,
                   make_string("Soft `labels` must have length `num_classes` = ", num_classes,
                               "; got length ", K, " for sample 0."));
    }
    MSDA_ENFORCE(n == 0 || K > 0, "Soft `labels` must not be empty vectors.");
    soft = true;
    vectors.resize(int64_t(n) * K);
    for (int i = 0; i < n; i++) {
      MSDA_ENFORCE(lshape[i][0] == K,
                   make_string("Soft `labels` must all have the same length; sample 0 has ", K,
                               " entries but sample ", i, " has ", lshape[i][0], "."));
      const float *v = labels.tensor<float>(i);
      double sum = 0.0;
      for (int k = 0; k < K; k++) {
        if (multi_label)
          MSDA_ENFORCE(v[k] >= 0.0f && v[k] <= 1.0f,  // false for NaN too
                       make_string("Multi-label `labels` (`multi_label=True`) must be in [0, 1] "
                                   "(multi-hot, or one probability per class); got ",
                                   detail::Num(v[k]), " at index ", k, " of sample ", i, "."));
        MSDA_ENFORCE(std::isfinite(v[k]) && v[k] >= 0.0f,
                     make_string("Soft `labels` must be finite and >= 0 (probabilities); got ",
                                 v[k], " at index ", k, " of sample ", i, "."));
        sum += v[k];
      }
      MSDA_ENFORCE(multi_label || std::abs(sum - 1.0) <= kSoftLabelTolerance,
                   make_string("Soft `labels` must sum to 1 (within ", kSoftLabelTolerance,
                               "); sample ", i, " sums to ", sum, ". Multi-hot labels (several "
                               "classes a sample, for a binary cross-entropy) take "
                               "`multi_label=True`."));
      std::copy(v, v + K, vectors.begin() + int64_t(i) * K);
    }
  } else {
    DALI_FAIL(make_string("`labels` must be integer class indices or float32 soft-label vectors; "
                          "got type ", detail::TypeStr(type), "."));
  }
}

inline void Labels::MakeTargets(const std::vector<double> &weights, int n, double eps) {
  targets.resize(n);
  soft_targets.resize(soft ? int64_t(n) * K : 0);
  for (int i = 0; i < n; i++) {
    const int j = n - 1 - i;
    if (soft) {
      SoftTarget(weights[i], &vectors[int64_t(i) * K], &vectors[int64_t(j) * K], K, eps,
                 &soft_targets[int64_t(i) * K], binary);
      targets[i] = TargetSpec{};
      targets[i].soft_row = i;
    } else {
      targets[i] = OneHotTarget(weights[i], class_ids[i], class_ids[j], eps, K);
    }
  }
}

inline void Labels::Row(int i, float *out) const {
  const TargetSpec &t = targets[i];
  if (t.soft_row >= 0) {
    std::copy_n(&soft_targets[int64_t(t.soft_row) * K], K, out);
    return;
  }
  std::fill_n(out, K, t.fill);
  out[t.yb] = t.vb;
  out[t.ya] = t.va;
}

// ---- label maps (spec 11)

/// The label maps (input 2, where given): uint8 or int32, H x W (x 1), one per image, images
/// only; mixed into an output of their shape, type and layout.
struct LabelMaps {
  DALIDataType type = DALI_NO_TYPE;

  void Read(const Workspace &ws, const ImageBatch &images) {
    const int n = images.shape.n, H = images.shape.H, W = images.shape.W;
    type = ws.GetInputDataType(2);
    MSDA_ENFORCE(type == DALI_UINT8 || type == DALI_INT32,
                 make_string("`seg` (label maps) must be uint8 or int32; got ",
                             detail::TypeStr(type), "."));
    MSDA_ENFORCE(!images.sequence,
                 make_string("`seg` (label maps) is not supported for sequences (layout \"",
                             images.layout, "\"): mix the frames as images."));
    const auto &shape = ws.GetInputShape(2);
    MSDA_ENFORCE(shape.num_samples() == n,
                 make_string("`seg` must have one map per image; got ", shape.num_samples(),
                             " maps for ", n, " images."));
    for (int i = 0; i < n; i++) {
      const auto sh = shape[i];
      const bool ok = (sh.size() == 2 || (sh.size() == 3 && sh[2] == 1)) && sh[0] == H &&
                      sh[1] == W;
      MSDA_ENFORCE(ok, make_string("`seg` maps must have shape (H, W) or (H, W, 1) of their "
                                   "images, (", H, ", ", W, "); got ", detail::ShapeStr(sh),
                                   " for sample ", i, "."));
    }
  }
  OutputDesc Desc(const Workspace &ws) const { return {ws.GetInputShape(2), type}; }
  int LabelBytes() const { return type == DALI_UINT8 ? 1 : 4; }
};

/// Refuses a map-made method (ClassMix) in a batch without label maps.
inline void CheckMapsGiven(const std::vector<Method> &methods, bool has_maps) {
  for (int i = 0; i < static_cast<int>(methods.size()) && !has_maps; i++)
    MSDA_ENFORCE(!Traits(methods[i]).needs_maps,
                 make_string("`method` \"", MethodName(methods[i]), "\" makes its masks from "
                             "label maps: give them as the third input (`seg`); sample ", i,
                             " has none."));
}

// ---- detection boxes (spec 13)

/// The `boxes` and `box_labels` argument inputs of a batch, and the boxes mixed by its draw
/// (MixedBoxes), which size and fill the three box outputs.
struct Boxes {
  MixedBoxes mixed;

  /// Checks the boxes of a batch of n (relative ltrb in [0, 1], a label a box) and that every
  /// sample's method mixes boxes.
  void Read(const Workspace &ws, const ImageBatch &images, const std::vector<Method> &methods);
  /// The boxes of every sample mixed by the batch's plan (each image's flipped with it).
  void Mix(const Workspace &ws, const BatchPlan &plan, const SampleArgs &sample_args,
           const BatchShape &shape, double min_visible);
  /// The descriptors of the three box outputs (boxes, box_labels, box_weights) from `first`.
  void Descs(std::vector<OutputDesc> &desc, int first, int n) const;
  /// Writes the mixed boxes into the three outputs from `first`: copy(dst, src, bytes) copies
  /// host memory to an output (memcpy, or an asynchronous copy to the GPU), once per output
  /// where the output is contiguous, else once per sample.
  template <typename Backend, typename Copy>
  void Write(Workspace &ws, int first, const Copy &copy) const;
};

inline void Boxes::Read(const Workspace &ws, const ImageBatch &images,
                        const std::vector<Method> &methods) {
  const int n = images.shape.n;
  MSDA_ENFORCE(!images.sequence, make_string("`boxes` are not supported for sequences (layout \"",
                                             images.layout, "\")."));
  const auto &boxes = ws.ArgumentInput("boxes");
  const auto &labels = ws.ArgumentInput("box_labels");
  MSDA_ENFORCE(boxes.type() == DALI_FLOAT,
               make_string("`boxes` must be float32; got ", detail::TypeStr(boxes.type()), "."));
  MSDA_ENFORCE(labels.type() == DALI_INT32,
               make_string("`box_labels` must be int32; got ", detail::TypeStr(labels.type()),
                           "."));
  for (auto [name, count] : {std::pair{"boxes", boxes.num_samples()},
                             std::pair{"box_labels", labels.num_samples()}})
    MSDA_ENFORCE(count == n, make_string("`", name, "` must have one tensor per image; got ",
                                         count, " for ", n, " images."));
  for (int i = 0; i < n; i++) {
    const auto sh = boxes.tensor_shape(i);
    MSDA_ENFORCE(sh.size() == 2 && sh[1] == 4,
                 make_string("`boxes` must have shape (N, 4) (relative l, t, r, b) per sample; "
                             "got ", detail::ShapeStr(sh), " for sample ", i, "."));
    const auto lsh = labels.tensor_shape(i);
    const bool lok = (lsh.size() == 1 && lsh[0] == sh[0]) ||
                     (lsh.size() == 2 && lsh[0] == sh[0] && lsh[1] == 1);
    MSDA_ENFORCE(lok, make_string("`box_labels` must have one label per box, shape (", sh[0],
                                  ",) or (", sh[0], ", 1) for the ", sh[0], " boxes of sample ",
                                  i, "; got ", detail::ShapeStr(lsh), "."));
    const float *v = boxes.tensor<float>(i);
    for (int64_t k = 0; k < sh[0]; k++) {
      const float *b = v + 4 * k;
      for (int c = 0; c < 4; c++)
        MSDA_ENFORCE(b[c] >= 0.0f && b[c] <= 1.0f,  // false for NaN too
                     make_string("`boxes` coordinates must be relative, in [0, 1]; got ",
                                 detail::Num(b[c]), " as ", "ltrb"[c], " of box ", k,
                                 " of sample ", i, "."));
      MSDA_ENFORCE(b[0] <= b[2] && b[1] <= b[3],
                   make_string("`boxes` must have l <= r and t <= b (ltrb); got (",
                               detail::Num(b[0]), ", ", detail::Num(b[1]), ", ",
                               detail::Num(b[2]), ", ", detail::Num(b[3]), ") as box ", k,
                               " of sample ", i, "."));
    }
  }
  for (int i = 0; i < n; i++) {
    MSDA_ENFORCE(Traits(methods[i]).mixes_boxes,
                 make_string("`boxes` are mixed by ",
                             MethodNames([](const MethodTraits &t) { return t.mixes_boxes; },
                                         " and "),
                             " only (spec 13); sample ", i, " has method \"",
                             MethodName(methods[i]), "\"."));
  }
}

inline void Boxes::Mix(const Workspace &ws, const BatchPlan &plan, const SampleArgs &sample_args,
                       const BatchShape &shape, double min_visible) {
  const auto &boxes = ws.ArgumentInput("boxes");
  const auto &labels = ws.ArgumentInput("box_labels");
  auto source = [&](int i) {
    return BoxSource{boxes.tensor<float>(i), labels.tensor<int32_t>(i),
                     boxes.tensor_shape(i)[0], sample_args.mirror[i] != 0};
  };
  mixed.Clear();
  for (int i = 0; i < shape.n; i++) {
    const SampleParams &p = plan.params[i];
    const BoxRule rule = p.partner != i ? Traits(sample_args.methods[i]).box_rule
                                        : BoxRule::kKeep;
    MixSampleBoxes(rule, plan.draws[i].lam, p.y0, p.y1, p.x0, p.x1, shape.H, shape.W,
                   source(i), source(p.partner), min_visible, &mixed);
  }
}

inline void Boxes::Descs(std::vector<OutputDesc> &desc, int first, int n) const {
  TensorListShape<2> box_shape(n);
  TensorListShape<1> count_shape(n);
  for (int i = 0; i < n; i++) {
    box_shape.set_tensor_shape(i, TensorShape<2>{mixed.Count(i), 4});
    count_shape.set_tensor_shape(i, TensorShape<1>{mixed.Count(i)});
  }
  desc[first] = {box_shape, DALI_FLOAT};
  desc[first + 1] = {count_shape, DALI_INT32};
  desc[first + 2] = {count_shape, DALI_FLOAT};
}

template <typename Backend, typename Copy>
void Boxes::Write(Workspace &ws, int first_output, const Copy &copy) const {
  const void *sources[3] = {mixed.boxes.data(), mixed.labels.data(), mixed.weights.data()};
  const int64_t row_bytes[3] = {sizeof(Ltrb), sizeof(int32_t), sizeof(float)};
  for (int o = 0; o < 3; o++) {
    auto &out = ws.Output<Backend>(first_output + o);
    const int n = out.num_samples();
    const auto *src = static_cast<const uint8_t *>(sources[o]);
    int first = 0;  // the first sample with boxes: where the contiguous buffer is known to start
    while (first < n && mixed.Count(first) == 0) first++;
    if (first == n) continue;
    if (out.IsContiguous()) {
      auto *base = static_cast<uint8_t *>(out.raw_mutable_tensor(first)) -
                   mixed.offsets[first] * row_bytes[o];
      copy(base, src, mixed.offsets[n] * row_bytes[o]);
      continue;
    }
    for (int i = first; i < n; i++)
      if (mixed.Count(i) > 0)
        copy(out.raw_mutable_tensor(i), src + mixed.offsets[i] * row_bytes[o],
             mixed.Count(i) * row_bytes[o]);
  }
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_INPUTS_H_
