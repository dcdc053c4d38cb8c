// msda.Mix: Mixup, CutMix, HMix and GMix over a whole batch, with soft labels.
//
// Argument parsing and validation happen once, here, in SetupImpl; the random draws and the
// per-sample mask parameters (DrawParams) are computed on the host for both backends, which then
// only apply them (mix.cc: DALI thread pool; mix.cu: one kernel per batch). FMix masks are made
// on the host too (BuildFMixMasks: one inverse FFT per mask, spread over host threads).

#ifndef DALI_MSDA_CSRC_MIX_MIX_H_
#define DALI_MSDA_CSRC_MIX_MIX_H_

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "dali/operators/random/rng_base.h"
#include "dali/pipeline/data/views.h"
#include "dali/pipeline/operator/arg_helper.h"
#include "dali/pipeline/operator/operator.h"

#include "boxes.h"
#include "kernel.h"
#include "mask.h"
#include "params.h"

namespace msda {

using namespace ::dali;  // NOLINT

template <typename Backend>
class Mix : public rng::OperatorWithRng<Operator<Backend>> {
  using Base = rng::OperatorWithRng<Operator<Backend>>;

 public:
  explicit Mix(const OpSpec &spec);

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override;
  void RunImpl(Workspace &ws) override;

  /// Fills params_, tables_ and targets_ for the current batch from the op's RNG; the FMix and
  /// ClassMix masks to make (into bits_) are left in fmix_jobs_ and classmix_jobs_.
  void DrawParams(int nsamples);
  /// Writes the FMix masks of fmix_jobs_ into bits_: on DALI's thread pool (CPU backend) or
  /// on `num_threads` threads of its own (GPU backend, whose workspace has no pool to share).
  void BuildFMixMasks(const Workspace &ws);
  /// Writes the ClassMix masks of classmix_jobs_ into bits_ and their samples' weights into
  /// targets and draws (spec 12); `map_of(j)` is sample j's label map in host memory.
  template <typename MapOf>
  void BuildClassMixMasks(const Workspace &ws, const MapOf &map_of);
  /// Runs make(k) for the k < jobs host jobs of a batch (mask making): on DALI's thread pool
  /// (CPU backend) or on `num_threads` threads of the op's own (GPU backend).
  template <typename Make>
  void RunHostJobs(const Workspace &ws, size_t jobs, int64_t cost, const Make &make);
  /// Sample i's target (spec 1) for label weight w, its partner j: a one-hot spec or a soft row.
  void SetTarget(int i, int j, double w);
  void SetOutputLayouts(Workspace &ws) const;
  /// Index of the optional outputs, or -1 when not requested: the map, the three box outputs
  /// (boxes, box_labels, box_weights), the mask, the params.
  int SegOutputIdx() const { return has_seg_ ? 2 : -1; }
  int BoxesOutputIdx() const { return has_boxes_ ? 2 + has_seg_ : -1; }
  int MaskOutputIdx() const { return output_mask_ ? 2 + has_seg_ + 3 * has_boxes_ : -1; }
  int ParamsOutputIdx() const {
    return output_params_ ? 2 + has_seg_ + 3 * has_boxes_ + output_mask_ : -1;
  }
  /// Checks the `boxes` / `box_labels` argument inputs of a batch of n (spec 13).
  void ReadBoxes(const Workspace &ws, int n, bool sequence);
  /// Fills mixed_boxes_ from the batch's draw (after DrawParams).
  void MixBoxes(const Workspace &ws, int n);
  /// Writes mixed_boxes_ into the three box outputs: copy(dst, src, bytes) copies host memory
  /// to an output (memcpy, or an asynchronous copy to the GPU), once per output where the
  /// output is contiguous, else once per sample.
  template <typename Copy>
  void WriteBoxes(Workspace &ws, const Copy &copy) const;
  /// The `params` output row of sample i: (apply, lam, cy, cx), from draws_.
  void ParamsRow(int i, float *row) const;
  /// Target row of sample i into `out` (K floats), from target_specs_ / soft_targets_.
  void TargetRow(int i, float *out) const;
  /// Whether this batch needs the fused path (normalisation, mirror or a layout change).
  bool Fused() const { return normalize_ || any_mirror_ || out_planar_ != in_planar_; }
  /// The shape of this batch as the kernel's launch geometry sees it (the CPU's fused path uses
  /// these fields; the GPU plans its launch from them: PlanLaunch).
  LaunchGeometry Shape(int n) const;

  using Base::spec_;

  // constant configuration
  Method method_;  // from `method`; per sample from `method_id` when that is given
  Mode mode_;
  bool correct_lam_;
  bool output_mask_;
  bool output_params_;
  bool has_seg_ = false;                // a third input: label maps (spec 11)
  bool has_boxes_ = false;              // `boxes` and `box_labels` given (spec 13)
  double min_visible_ = 0.2;            // spec 13: an own / CutMix partner box's kept share
  MixedBoxes mixed_boxes_;              // per batch, from SetupImpl (after the draw)
  double draw_us_ = 0.0;                // host time of the draw in SetupImpl (DALI_MSDA_PROFILE)
  DALIDataType seg_type_ = DALI_NO_TYPE;
  int ignore_index_ = -1;               // ClassMix: the label not counted as a class
  int num_classes_ = 0;  // 0: not given
  float label_smoothing_;
  double decay_power_;
  float scale_min_, scale_max_;  // ResizeMix: tau ~ U(scale_min, scale_max)
  bool resize_linear_ = false;    // ResizeMix: bilinear (`resize_interp`)
  bool exact_box_ = false;        // CutMix / HMix: `box="exact"`
  DALIDataType out_type_ = DALI_NO_TYPE;
  bool normalize_ = false;                 // `mean` or `std` given
  std::vector<float> mean_arg_, std_arg_;  // as given (1 or C values)
  std::string out_layout_arg_;             // "" = the input's

  // per batch, from SetupImpl
  Geometry geom_;
  TensorLayout layout_, out_layout_;
  int64_t frames_ = 1;
  int channels_ = 1;
  bool in_planar_ = false, out_planar_ = false;
  std::vector<float> norm_;  // mean[C], then the float32 reciprocal of std[C]
  std::vector<int> mirror_;  // per sample, 0 or 1
  bool any_mirror_ = false;
  int K_ = 0;
  std::vector<float> alpha_, prob_, ratio_;
  std::vector<Method> methods_;  // per sample
  ArgValue<float, 0> lam_arg_{"lam", spec_};
  ArgValue<float, 1> center_arg_{"center", spec_};
  std::vector<int> class_ids_;        // class-index labels
  std::vector<float> label_vectors_;  // nsamples x K_: the given soft vectors (soft labels)

  bool explicit_noise_ = false;       // `fmix_noise` given (checked in SetupImpl)

  // per batch, from DrawParams
  std::vector<SampleParams> params_;
  std::vector<float> tables_;   // per GMix mask: its H + W Gaussian factors (TableSize)
  std::vector<uint8_t> bits_;   // per FMix / ClassMix mask: its H x W bits (BitsSize, MaskBit)
  struct FMixJob {
    int sample;            // whose noise (explicit) or RNG stream (drawn) makes the mask
    Philox4x32_10 rng;     // positioned after the sample's draw and coin
    int64_t ones;          // FMixOnes
    int64_t table_offset;  // where the H x W bits go in bits_
  };
  std::vector<FMixJob> fmix_jobs_;
  struct ClassMixJob {
    int sample, partner;
    Philox4x32_10 rng;     // positioned after the sample's (or the batch's) draw
    int64_t bits_offset;   // where the H x W bits go in bits_
  };
  std::vector<ClassMixJob> classmix_jobs_;
  std::vector<TargetSpec> target_specs_;  // per sample: a one-hot mix, or a soft row
  std::vector<float> soft_targets_;       // nsamples x K_, for soft-label inputs only
  bool soft_labels_ = false;
  std::vector<Draw> draws_;  // the draw each sample used (after explicit lam / center)
};


// ---- shared implementation (both backends) ----

// Like DALI_ENFORCE, without echoing the condition: the message names argument, rule and value.
#define MSDA_ENFORCE(cond, msg) \
  do {                          \
    if (!(cond)) DALI_FAIL(msg); \
  } while (0)

/// How far from 1 a soft-label row may sum (float32 rows of any K made by a mix or label
/// smoothing sum to 1 within K x 2^-24; a row that is not a distribution is refused).
constexpr double kSoftLabelTolerance = 1e-3;

namespace detail {

/// DALI_MSDA_PROFILE=FILE: every RunImpl appends one line to FILE with its host time in
/// microseconds, step by step (benchmarks/profile_gpu.py reads it); without it, nothing is timed.
struct HostTimer {
  using Clock = std::chrono::steady_clock;
  explicit HostTimer(const char *backend) : backend_(backend) {}
  void Step(const char *name) {
    if (!path_) return;
    const auto now = Clock::now();
    line_ += make_string(" ", name, "=",
                         std::chrono::duration<double, std::micro>(now - last_).count());
    last_ = now;
  }
  /// A step timed elsewhere (the draw, made in SetupImpl).
  void Record(const char *name, double us) {
    if (path_) line_ += make_string(" ", name, "=", us);
  }
  void Done(int n, int64_t upload_bytes, const char *last_step) {
    if (!path_) return;
    Step(last_step);
    if (FILE *f = std::fopen(path_, "a")) {
      std::fprintf(f, "msda.Mix %s samples=%d upload_bytes=%lld total=%.3f%s\n", backend_, n,
                   static_cast<long long>(upload_bytes),
                   std::chrono::duration<double, std::micro>(Clock::now() - t0_).count(),
                   line_.c_str());
      std::fclose(f);
    }
  }

 private:
  const char *backend_;
  const char *path_ = std::getenv("DALI_MSDA_PROFILE");
  Clock::time_point t0_ = Clock::now(), last_ = t0_;
  std::string line_;
};

/// A float as its shortest decimal that reads back as the same float (1.0000001, never a
/// rounded "1"), so that an error shows why a value is refused.
inline std::string Num(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

template <typename T>
auto Shown(const T &v) {
  if constexpr (std::is_floating_point_v<T>)
    return Num(static_cast<float>(v));
  else
    return v;
}

/// A type as NumPy names it (float32, not DALI's "float").
inline std::string TypeStr(DALIDataType t) {
  switch (t) {
    case DALI_FLOAT: return "float32";
    case DALI_FLOAT64: return "float64";
    case DALI_FLOAT16: return "float16";
    default: return make_string(t);
  }
}

/// A shape as users write it in Python: (8, 8, 3).
inline std::string ShapeStr(const TensorShape<> &sh) {
  std::string s = "(";
  for (int d = 0; d < sh.size(); d++) s += (d ? ", " : "") + std::to_string(sh[d]);
  return s + (sh.size() == 1 ? ",)" : ")");
}

inline Method ParseMethod(const std::string &s) {
  if (s == "mixup") return Method::kMixup;
  if (s == "cutmix") return Method::kCutMix;
  if (s == "hmix") return Method::kHMix;
  if (s == "gmix") return Method::kGMix;
  if (s == "fmix") return Method::kFMix;
  if (s == "resizemix") return Method::kResizeMix;
  if (s == "classmix") return Method::kClassMix;
  DALI_FAIL(make_string("`method` must be one of \"mixup\", \"cutmix\", \"hmix\", \"gmix\", "
                        "\"fmix\", \"resizemix\", \"classmix\"; got \"", s, "\"."));
}

/// The name `method` takes for a method (ParseMethod's inverse).
inline const char *MethodName(Method m) {
  static const char *const names[] = {"mixup", "cutmix", "hmix", "gmix", "fmix", "resizemix",
                                      "classmix"};
  return names[static_cast<int>(m)];
}

inline Mode ParseMode(const std::string &s) {
  if (s == "batch") return Mode::kBatch;
  if (s == "elem") return Mode::kElem;
  DALI_FAIL(make_string("`mode` must be \"batch\" or \"elem\"; got \"", s, "\"."));
}

inline bool IsSupportedImageType(DALIDataType t) {
  return t == DALI_UINT8 || t == DALI_FLOAT16 || t == DALI_FLOAT;
}

inline bool IsIntegerType(DALIDataType t) {
  switch (t) {
    case DALI_UINT8: case DALI_UINT16: case DALI_UINT32: case DALI_UINT64:
    case DALI_INT8: case DALI_INT16: case DALI_INT32: case DALI_INT64:
      return true;
    default:
      return false;
  }
}

/// The error for a per-sample argument whose values differ across a batch-mode batch.
template <typename T>
std::string BatchModeMismatch(const char *name, const T &first, const T &value, int i) {
  return make_string("With `mode=\"batch\"` one mask serves the whole batch, so `", name,
                     "` must be the same for every sample; got ", Shown(first),
                     " for sample 0 and ", Shown(value), " for sample ", i,
                     ". Use `mode=\"elem\"` for per-sample values.");
}

/// Reads a per-sample scalar argument (constant or CPU tensor) and checks lo <= v <= hi
/// (`lo_open`: lo < v). In batch mode every sample must carry the same value.
inline void ReadScalarArg(std::vector<float> &out, const char *name, const OpSpec &spec,
                          const ArgumentWorkspace &ws, int n, double lo, bool lo_open, double hi,
                          Mode mode) {
  GetPerSampleArgument(out, name, spec, ws, n);
  for (int i = 0; i < n; i++) {
    float v = out[i];
    bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
    if (!ok) {
      if (lo_open && std::isinf(hi))
        DALI_FAIL(make_string("`", name, "` must be a finite number > ", lo, "; got ", Num(v),
                              " for sample ", i, "."));
      DALI_FAIL(make_string("`", name, "` must be in [", lo, ", ", hi, "]; got ", Num(v),
                            " for sample ", i, "."));
    }
    if (mode == Mode::kBatch && v != out[0]) DALI_FAIL(BatchModeMismatch(name, out[0], v, i));
  }
}

}  // namespace detail

template <typename Backend>
Mix<Backend>::Mix(const OpSpec &spec) : Base(spec) {
  std::string method = spec.GetArgument<std::string>("method");
  MSDA_ENFORCE(!method.empty() || spec.HasTensorArgument("method_id"),
               "`method` is required (\"mixup\", \"cutmix\", \"hmix\", \"gmix\", \"fmix\", "
               "\"resizemix\" or, with label maps, \"classmix\"), unless `method_id` is "
               "given.");
  method_ = method.empty() ? Method::kMixup : detail::ParseMethod(method);
  mode_ = detail::ParseMode(spec.GetArgument<std::string>("mode"));
  correct_lam_ = spec.GetArgument<bool>("correct_lam");
  output_mask_ = spec.GetArgument<bool>("output_mask");
  output_params_ = spec.GetArgument<bool>("output_params");
  has_seg_ = spec.NumRegularInput() > 2;
  for (const char *name : {"boxes", "box_labels"})
    MSDA_ENFORCE(!spec.HasArgument(name) || spec.HasTensorArgument(name),
                 make_string("`", name, "` must be an argument input (a per-sample tensor from "
                             "the pipeline, e.g. fn.readers.coco's), not a constant."));
  has_boxes_ = spec.HasTensorArgument("boxes");
  MSDA_ENFORCE(has_boxes_ == spec.HasTensorArgument("box_labels"),
               make_string("`boxes` and `box_labels` go together (spec 13): got `",
                           has_boxes_ ? "boxes" : "box_labels", "` without `",
                           has_boxes_ ? "box_labels" : "boxes", "`."));
  const float min_visible = spec.GetArgument<float>("min_visible");
  MSDA_ENFORCE(min_visible >= 0.0f && min_visible <= 1.0f,
               make_string("`min_visible` must be in [0, 1]; got ", detail::Num(min_visible),
                           "."));
  min_visible_ = min_visible;
  ignore_index_ = spec.GetArgument<int>("ignore_index");
  if (spec.HasArgument("num_classes")) {
    num_classes_ = spec.GetArgument<int>("num_classes");
    MSDA_ENFORCE(num_classes_ > 0, make_string("`num_classes` must be positive; got ",
                                               num_classes_, "."));
  }
  label_smoothing_ = spec.GetArgument<float>("label_smoothing");
  const float decay = spec.GetArgument<float>("decay_power");
  MSDA_ENFORCE(std::isfinite(decay) && decay > 0.0f,
               make_string("`decay_power` must be a finite number > 0; got ", detail::Num(decay),
                           "."));
  decay_power_ = decay;
  const std::string interp = spec.GetArgument<std::string>("resize_interp");
  MSDA_ENFORCE(interp == "nearest" || interp == "bilinear",
               make_string("`resize_interp` must be \"nearest\" or \"bilinear\"; got \"", interp,
                           "\"."));
  resize_linear_ = interp == "bilinear";
  const std::string box = spec.GetArgument<std::string>("box");
  MSDA_ENFORCE(box == "even" || box == "exact",
               make_string("`box` must be \"even\" or \"exact\"; got \"", box, "\"."));
  exact_box_ = box == "exact";
  scale_min_ = spec.GetArgument<float>("scale_min");
  scale_max_ = spec.GetArgument<float>("scale_max");
  for (auto [name, v] : {std::pair{"scale_min", scale_min_}, std::pair{"scale_max", scale_max_}})
    MSDA_ENFORCE(v > 0.0f && v <= 1.0f,
                 make_string("`", name, "` must be in (0, 1]; got ", detail::Num(v), "."));
  MSDA_ENFORCE(scale_min_ <= scale_max_,
               make_string("`scale_min` must be <= `scale_max`; got ", detail::Num(scale_min_),
                           " > ", detail::Num(scale_max_), "."));
  MSDA_ENFORCE(label_smoothing_ >= 0.0f && label_smoothing_ <= 1.0f,
               make_string("`label_smoothing` must be in [0, 1]; got ",
                           detail::Num(label_smoothing_), "."));
  if (spec.HasArgument("dtype")) {
    out_type_ = spec.GetArgument<DALIDataType>("dtype");
    MSDA_ENFORCE(detail::IsSupportedImageType(out_type_),
                 make_string("`dtype` must be one of uint8, float16, float32; got ",
                             detail::TypeStr(out_type_), "."));
  }
  // fused normalisation: checked against the channel count in SetupImpl
  for (auto [name, values] : {std::pair{"mean", &mean_arg_}, std::pair{"std", &std_arg_}}) {
    if (!spec.HasArgument(name)) continue;
    normalize_ = true;
    *values = spec.template GetRepeatedArgument<float>(name);
    for (size_t c = 0; c < values->size(); c++) {
      float v = (*values)[c];
      bool ok = std::string(name) == "std" ? std::isfinite(v) && v > 0.0f : std::isfinite(v);
      MSDA_ENFORCE(ok, make_string("`", name, "` must be ",
                                   std::string(name) == "std" ? "finite and > 0" : "finite",
                                   "; got ", detail::Num(v), " for channel ", c, "."));
    }
  }
  out_layout_arg_ = spec.GetArgument<std::string>("output_layout");
}

template <typename Backend>
bool Mix<Backend>::SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) {
  const auto &shape = ws.GetInputShape(0);
  const int n = shape.num_samples();
  const int ndim = shape.sample_dim();

  // ---- images: dtype, layout, one shape for the whole batch
  DALIDataType in_type = ws.GetInputDataType(0);
  MSDA_ENFORCE(detail::IsSupportedImageType(in_type),
               make_string("`images` must be uint8, float16 or float32; got ",
                           detail::TypeStr(in_type), "."));
  TensorLayout layout = ws.GetInputLayout(0);
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
    MSDA_ENFORCE(shape[i] == shape[0],
                 make_string("`images` must all have the same shape; sample 0 has shape ",
                             detail::ShapeStr(shape[0]), " but sample ", i, " has ",
                             detail::ShapeStr(shape[i]), "."));
  }
  layout_ = layout;
  const bool sequence = layout.find('F') >= 0;
  if (out_layout_arg_.empty()) {
    out_layout_ = layout;
  } else {
    out_layout_ = TensorLayout(out_layout_arg_);
    const bool ok = sequence ? (out_layout_ == "FHWC" || out_layout_ == "FCHW")
                             : (out_layout_ == "HWC" || out_layout_ == "CHW");
    MSDA_ENFORCE(ok, make_string("`output_layout` must be ",
                                 sequence ? "\"FHWC\" or \"FCHW\" for sequences"
                                          : "\"HWC\" or \"CHW\" for images",
                                 " (input layout \"", layout, "\"); got \"", out_layout_arg_,
                                 "\"."));
  }
  in_planar_ = layout.find('C') < layout.find('H');
  out_planar_ = out_layout_.find('C') < out_layout_.find('H');
  geom_ = Geometry{};
  TensorShape<> out_sample_shape;
  if (n > 0) {
    auto sh = shape[0];
    int h_dim = layout.find('H'), w_dim = layout.find('W'), c_dim = layout.find('C');
    geom_.H = sh[h_dim];
    geom_.W = sh[w_dim];
    int64_t channels = sh[c_dim], frames = sequence ? sh[layout.find('F')] : 1;
    bool channel_last = c_dim == ndim - 1;
    geom_.inner = channel_last ? channels : 1;
    geom_.outer = channel_last ? frames : frames * channels;
    MSDA_ENFORCE(geom_.H > 0 && geom_.W > 0 && channels > 0 && frames > 0,
                 make_string("`images` must not be empty; got shape ", detail::ShapeStr(sh),
                             "."));
    MSDA_ENFORCE(int64_t(geom_.W) * channels <= (int64_t(1) << 30) && channels <= (1 << 16),
                 make_string("`images` rows must hold at most 2^30 elements (W x C) and at most "
                             "65536 channels; got shape ", detail::ShapeStr(sh), "."));
    frames_ = frames;
    channels_ = static_cast<int>(channels);
    out_sample_shape = sh;
    for (int d = 0; d < ndim; d++) out_sample_shape[d] = sh[layout.find(out_layout_[d])];
  }

  // ---- fused normalisation and mirror
  if (normalize_ && n > 0) {
    for (auto [name, values] : {std::pair{"mean", &mean_arg_}, std::pair{"std", &std_arg_}}) {
      MSDA_ENFORCE(values->size() <= 1 || static_cast<int>(values->size()) == channels_,
                   make_string("`", name, "` must have 1 value or one per channel (C = ",
                               channels_, "); got ", values->size(), " values."));
    }
    norm_.resize(2 * channels_);
    for (int c = 0; c < channels_; c++) {
      float mean = mean_arg_.empty() ? 0.0f : mean_arg_[mean_arg_.size() == 1 ? 0 : c];
      float std = std_arg_.empty() ? 1.0f : std_arg_[std_arg_.size() == 1 ? 0 : c];
      norm_[c] = mean;
      norm_[channels_ + c] = 1.0f / std;
    }
  }
  mirror_.assign(n, 0);
  any_mirror_ = false;
  if (spec_.HasArgument("mirror") || spec_.HasTensorArgument("mirror")) {
    MSDA_ENFORCE(!sequence, make_string("`mirror` is not supported for sequences (layout \"",
                                        layout, "\"): flip the frames before the op."));
    if (n > 0) ::dali::GetPerSampleArgument(mirror_, "mirror", spec_, ws, n);
    for (int i = 0; i < n; i++) {
      MSDA_ENFORCE(mirror_[i] == 0 || mirror_[i] == 1,
                   make_string("`mirror` must be 0 or 1; got ", mirror_[i], " for sample ", i,
                               "."));
      any_mirror_ |= mirror_[i] != 0;
    }
  }

  // ---- per-sample arguments
  if (n > 0) {
    detail::ReadScalarArg(alpha_, "alpha", spec_, ws, n, 0.0, true, INFINITY, mode_);
    detail::ReadScalarArg(prob_, "prob", spec_, ws, n, 0.0, false, 1.0, mode_);
    detail::ReadScalarArg(ratio_, "hmix_ratio", spec_, ws, n, 0.0, false, 1.0, mode_);
  }
  methods_.assign(n, method_);
  if (spec_.HasTensorArgument("method_id")) {
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
      int id = ids.tensor<int32_t>(i)[0];
      MSDA_ENFORCE(id >= 0 && id <= 6,
                   make_string("`method_id` must be 0 (mixup), 1 (cutmix), 2 (hmix), 3 (gmix), "
                               "4 (fmix), 5 (resizemix) or 6 (classmix); got ", id, " for sample ",
                               i, "."));
      methods_[i] = static_cast<Method>(id);
      MSDA_ENFORCE(mode_ != Mode::kBatch || methods_[i] == methods_[0],
                   detail::BatchModeMismatch("method_id", int(methods_[0]), id, i));
    }
  }
  if (lam_arg_.HasExplicitValue()) {
    lam_arg_.Acquire(spec_, ws, n, TensorShape<0>{});
    for (int i = 0; i < n; i++) {
      float v = lam_arg_[i].data[0];
      MSDA_ENFORCE(v >= 0.0f && v <= 1.0f,
                   make_string("`lam` must be in [0, 1]; got ", detail::Num(v), " for sample ",
                               i, "."));
    }
    for (int i = 1; i < n && mode_ == Mode::kBatch; i++) {
      const float v = lam_arg_[i].data[0], v0 = lam_arg_[0].data[0];
      MSDA_ENFORCE(v == v0, detail::BatchModeMismatch("lam", v0, v, i));
    }
  }
  if (center_arg_.HasExplicitValue()) {
    center_arg_.Acquire(spec_, ws, n, TensorShape<1>{2});
    for (int i = 0; i < n; i++) {
      const float *c = center_arg_[i].data;
      MSDA_ENFORCE(c[0] >= 0.0f && c[0] < 1.0f && c[1] >= 0.0f && c[1] < 1.0f,
                   make_string("`center` (relative y, x) must lie in [0, 1); got (", c[0], ", ",
                               c[1], ") for sample ", i, "."));
    }
    for (int i = 1; i < n && mode_ == Mode::kBatch; i++) {
      const float *c = center_arg_[i].data, *c0 = center_arg_[0].data;
      MSDA_ENFORCE(c[0] == c0[0] && c[1] == c0[1],
                   detail::BatchModeMismatch("center", make_string("(", c0[0], ", ", c0[1], ")"),
                                             make_string("(", c[0], ", ", c[1], ")"), i));
    }
  }

  // ---- FMix noise given explicitly: H x (W / 2 + 1) x 2 float32 values per sample
  explicit_noise_ = spec_.HasTensorArgument("fmix_noise");
  if (explicit_noise_) {
    const auto &noise = ws.ArgumentInput("fmix_noise");
    const int64_t size = FMixNoiseSize(geom_.H, geom_.W);
    const std::string want = make_string("(", geom_.H, ", ", geom_.W / 2 + 1, ", 2)");
    MSDA_ENFORCE(noise.type() == DALI_FLOAT,
                 make_string("`fmix_noise` must be float32; got ", detail::TypeStr(noise.type()),
                             "."));
    MSDA_ENFORCE(noise.num_samples() == n,
                 make_string("`fmix_noise` must have one tensor per sample; got ",
                             noise.num_samples(), " for ", n, " samples."));
    for (int i = 0; i < n; i++) {
      const auto sh = noise.tensor_shape(i);
      const bool ok = sh.size() == 3 ? sh[0] == geom_.H && sh[1] == geom_.W / 2 + 1 && sh[2] == 2
                                     : sh.size() == 1 && sh[0] == size;
      MSDA_ENFORCE(ok, make_string("`fmix_noise` must have shape ", want, " (H, W // 2 + 1, 2) "
                                   "or (", size, ",) for images of H = ", geom_.H, ", W = ",
                                   geom_.W, "; got ", detail::ShapeStr(sh), " for sample ", i,
                                   "."));
      const float *v = noise.tensor<float>(i), *v0 = noise.tensor<float>(0);
      for (int64_t k = 0; k < size; k++) {
        MSDA_ENFORCE(std::isfinite(v[k]),
                     make_string("`fmix_noise` must be finite; got ", v[k], " at index ", k,
                                 " of sample ", i, "."));
        MSDA_ENFORCE(mode_ != Mode::kBatch || v[k] == v0[k],
                     detail::BatchModeMismatch("fmix_noise", v0[k], v[k], i) +
                         make_string(" (first difference at index ", k, ")"));
      }
    }
  }

  // ---- labels (CPU): class ids or soft vectors, as one-hot / soft rows of length K
  const auto &labels = ws.Input<CPUBackend>(1);
  MSDA_ENFORCE(labels.num_samples() == n,
               make_string("`labels` must have one entry per image; got ", labels.num_samples(),
                           " labels for ", n, " images."));
  DALIDataType label_type = labels.type();
  const auto &lshape = labels.shape();
  if (detail::IsIntegerType(label_type)) {
    MSDA_ENFORCE(num_classes_ > 0,
                 make_string("`num_classes` is required when `labels` are class indices (got "
                             "labels of type ", detail::TypeStr(label_type), ")."));
    K_ = num_classes_;
    soft_labels_ = false;
    class_ids_.resize(n);
    TYPE_SWITCH(label_type, type2id, L,
                (uint8_t, uint16_t, uint32_t, uint64_t, int8_t, int16_t, int32_t, int64_t), (
      for (int i = 0; i < n; i++) {
        MSDA_ENFORCE(volume(lshape[i]) == 1,
                     make_string("Class-index `labels` must hold one value per sample; sample ",
                                 i, " has shape ", detail::ShapeStr(lshape[i]), "."));
        L y = labels.tensor<L>(i)[0];
        const int64_t yi = static_cast<int64_t>(y);  // unsigned ids beyond 2^63 wrap below 0
        MSDA_ENFORCE(yi >= 0 && yi < K_,
                     make_string("`labels` must be class indices in [0, ", K_,
                                 ") (`num_classes`); got ", +y, " for sample ", i, "."));
        class_ids_[i] = static_cast<int>(yi);
      }
    ), DALI_FAIL("unreachable"));  // NOLINT
  } else if (label_type == DALI_FLOAT) {
    MSDA_ENFORCE(lshape.sample_dim() == 1,
                 make_string("Soft `labels` must be vectors (1-D, float32); got ",
                             lshape.sample_dim(), "-D labels."));
    K_ = n > 0 ? lshape[0][0] : (num_classes_ > 0 ? num_classes_ : 0);
    if (num_classes_ > 0) {
      MSDA_ENFORCE(n == 0 || K_ == num_classes_,
                   make_string("Soft `labels` must have length `num_classes` = ", num_classes_,
                               "; got length ", K_, " for sample 0."));
    }
    MSDA_ENFORCE(n == 0 || K_ > 0, "Soft `labels` must not be empty vectors.");
    soft_labels_ = true;
    label_vectors_.resize(int64_t(n) * K_);
    for (int i = 0; i < n; i++) {
      MSDA_ENFORCE(lshape[i][0] == K_,
                   make_string("Soft `labels` must all have the same length; sample 0 has ", K_,
                               " entries but sample ", i, " has ", lshape[i][0], "."));
      const float *v = labels.tensor<float>(i);
      double sum = 0.0;
      for (int k = 0; k < K_; k++) {
        MSDA_ENFORCE(std::isfinite(v[k]) && v[k] >= 0.0f,
                     make_string("Soft `labels` must be finite and >= 0 (probabilities); got ",
                                 v[k], " at index ", k, " of sample ", i, "."));
        sum += v[k];
      }
      MSDA_ENFORCE(std::abs(sum - 1.0) <= kSoftLabelTolerance,
                   make_string("Soft `labels` must sum to 1 (within ", kSoftLabelTolerance,
                               "); sample ", i, " sums to ", sum, "."));
      std::copy(v, v + K_, label_vectors_.begin() + int64_t(i) * K_);
    }
  } else {
    DALI_FAIL(make_string("`labels` must be integer class indices or float32 soft-label vectors; "
                          "got type ", detail::TypeStr(label_type), "."));
  }

  for (int i = 0; i < n && !has_seg_; i++)
    MSDA_ENFORCE(methods_[i] != Method::kClassMix,
                 make_string("`method` \"classmix\" makes its masks from label maps: give them as "
                             "the third input (`seg`); sample ", i, " has none."));
  // ---- label maps (spec 11): integer, H x W (x 1), one per image, images only
  if (has_seg_) {
    seg_type_ = ws.GetInputDataType(2);
    MSDA_ENFORCE(seg_type_ == DALI_UINT8 || seg_type_ == DALI_INT32,
                 make_string("`seg` (label maps) must be uint8 or int32; got ",
                             detail::TypeStr(seg_type_), "."));
    MSDA_ENFORCE(!sequence, make_string("`seg` (label maps) is not supported for sequences "
                                        "(layout \"", layout, "\"): mix the frames as images."));
    const auto &seg_shape = ws.GetInputShape(2);
    MSDA_ENFORCE(seg_shape.num_samples() == n,
                 make_string("`seg` must have one map per image; got ", seg_shape.num_samples(),
                             " maps for ", n, " images."));
    for (int i = 0; i < n; i++) {
      const auto sh = seg_shape[i];
      const bool ok = (sh.size() == 2 || (sh.size() == 3 && sh[2] == 1)) && sh[0] == geom_.H &&
                      sh[1] == geom_.W;
      MSDA_ENFORCE(ok, make_string("`seg` maps must have shape (H, W) or (H, W, 1) of their "
                                   "images, (", geom_.H, ", ", geom_.W, "); got ",
                                   detail::ShapeStr(sh), " for sample ", i, "."));
    }
  }

  if (has_boxes_) ReadBoxes(ws, n, sequence);

  // the draw is made here (not in RunImpl) so that the box counts it decides size the outputs
  const auto draw_start = std::chrono::steady_clock::now();
  DrawParams(n);
  if (has_boxes_) MixBoxes(ws, n);
  draw_us_ = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                        draw_start).count();

  output_desc.resize(2 + has_seg_ + 3 * has_boxes_ + output_mask_ + output_params_);
  if (has_seg_) output_desc[SegOutputIdx()] = {ws.GetInputShape(2), seg_type_};
  if (has_boxes_) {
    TensorListShape<2> box_shape(n);
    TensorListShape<1> count_shape(n);
    for (int i = 0; i < n; i++) {
      box_shape.set_tensor_shape(i, TensorShape<2>{mixed_boxes_.Count(i), 4});
      count_shape.set_tensor_shape(i, TensorShape<1>{mixed_boxes_.Count(i)});
    }
    output_desc[BoxesOutputIdx()] = {box_shape, DALI_FLOAT};
    output_desc[BoxesOutputIdx() + 1] = {count_shape, DALI_INT32};
    output_desc[BoxesOutputIdx() + 2] = {count_shape, DALI_FLOAT};
  }
  output_desc[0] = {out_layout_ == layout ? shape : uniform_list_shape(n, out_sample_shape),
                    out_type_ == DALI_NO_TYPE ? in_type : out_type_};
  output_desc[1] = {uniform_list_shape(n, TensorShape<1>{K_}), DALI_FLOAT};
  if (output_mask_)
    output_desc[MaskOutputIdx()] = {uniform_list_shape(n, TensorShape<2>{geom_.H, geom_.W}),
                                    DALI_FLOAT};
  if (output_params_)
    output_desc[ParamsOutputIdx()] = {uniform_list_shape(n, TensorShape<1>{4}), DALI_FLOAT};
  return true;
}

template <typename Backend>
void Mix<Backend>::DrawParams(int n) {
  const int H = geom_.H, W = geom_.W;
  params_.resize(n);
  draws_.resize(n);
  target_specs_.resize(n);
  soft_targets_.resize(soft_labels_ ? int64_t(n) * K_ : 0);
  tables_.clear();  // grown mask by mask: only masks that are made take room (and upload time)
  bits_.clear();
  classmix_jobs_.clear();
  fmix_jobs_.clear();
  if (n == 0) return;
  const bool explicit_lam = lam_arg_.HasExplicitValue();
  const bool explicit_center = center_arg_.HasExplicitValue();

  // FMix draws a coin after the draw and then its noise, from the same stream; ResizeMix its
  // scale tau, kept in `lam` (spec 10)
  auto draw = [&](Philox4x32_10 &rng, int i) {
    Draw d = DrawOne(rng, alpha_[i], prob_[i], H, W);
    if (methods_[i] == Method::kFMix) d.round_up = Uniform01(rng) > 0.5;
    if (methods_[i] == Method::kResizeMix)
      d.lam = static_cast<float>(scale_min_ + (double(scale_max_) - scale_min_) * Uniform01(rng));
    return d;
  };
  Draw batch_draw{};
  Philox4x32_10 batch_rng = this->GetSampleRNG(0);
  if (mode_ == Mode::kBatch)  // one lam, one centre, one decision for the batch
    batch_draw = draw(batch_rng, 0);
  // ResizeMix in batch mode: one tau per batch, a centre per sample (the official code), drawn
  // in sample order from the batch's stream after its draw
  Philox4x32_10 centre_rng = batch_rng;
  // The mask of the previous applied sample: reused when a sample has the same draw (batch mode),
  // so that GMix tables are computed once per batch there rather than once per sample.
  const Draw *prev_draw = nullptr;
  SampleParams prev_params{};
  double prev_w = 1.0;
  float prev_ratio = 0.0f;
  Method prev_method = Method::kMixup;
  for (int i = 0; i < n; i++) {
    Draw &d = draws_[i];
    d = batch_draw;
    Philox4x32_10 rng = batch_rng;
    if (mode_ == Mode::kElem) {
      rng = this->GetSampleRNG(i);
      d = draw(rng, i);
    } else if (methods_[i] == Method::kResizeMix) {
      d.cy = UniformInt(centre_rng, H);
      d.cx = UniformInt(centre_rng, W);
    }
    if (explicit_lam) d.lam = lam_arg_[i].data[0];
    if (explicit_center) {
      d.cy = CenterFromRelative(center_arg_[i].data[0], H);
      d.cx = CenterFromRelative(center_arg_[i].data[1], W);
    }
    const int j = n - 1 - i;  // partner: the batch reversed; the middle of an odd batch is alone
    double w = 1.0;
    SampleParams &p = params_[i];
    // an FMix mask depends on noise beyond the draw: shared only in batch mode (one per batch);
    // a ClassMix mask on the partner's map: never shared
    const bool same_noise = methods_[i] != Method::kClassMix &&
                            (methods_[i] != Method::kFMix || mode_ == Mode::kBatch);
    if (d.apply && j != i && prev_draw && prev_draw->lam == d.lam && prev_draw->cy == d.cy &&
        prev_draw->cx == d.cx && prev_draw->round_up == d.round_up && prev_ratio == ratio_[i] &&
        prev_method == methods_[i] && same_noise) {
      p = prev_params;  // same draw as the previous mixed sample: same mask
      p.partner = j;
      w = prev_w;
    } else {
      const int64_t offset = tables_.size(), bits_offset = bits_.size();
      const bool mixes = d.apply && j != i;
      tables_.resize(offset + (mixes ? TableSize(methods_[i], H, W) : 0));
      bits_.resize(bits_offset + (mixes ? BitsSize(methods_[i], H, W) : 0));
      const MaskOptions options{ratio_[i], correct_lam_, resize_linear_, exact_box_};
      p = PlanSample(methods_[i], d, i, n, options, H, W, tables_.data() + offset, offset,
                     bits_offset, &w);
      if (p.kind == kMaskBits && methods_[i] == Method::kFMix)
        fmix_jobs_.push_back({i, rng, FMixOnes(d.lam, d.round_up, H, W), bits_offset});
      if (p.kind == kMaskBits && methods_[i] == Method::kClassMix)
        classmix_jobs_.push_back({i, j, mode_ == Mode::kBatch ? batch_rng : rng, bits_offset});
      if (p.partner != i) {
        prev_draw = &d;
        prev_params = p;
        prev_w = w;
        prev_ratio = ratio_[i];
        prev_method = methods_[i];
      }
    }
    SetTarget(i, j, w);  // ClassMix's weight is known once its mask is made: set again then
  }
}

template <typename Backend>
void Mix<Backend>::ReadBoxes(const Workspace &ws, int n, bool sequence) {
  MSDA_ENFORCE(!sequence, make_string("`boxes` are not supported for sequences (layout \"",
                                      layout_, "\")."));
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
    const Method m = methods_[i];
    MSDA_ENFORCE(m == Method::kMixup || m == Method::kCutMix || m == Method::kResizeMix,
                 make_string("`boxes` are mixed by \"mixup\", \"cutmix\" and \"resizemix\" "
                             "only (spec 13); sample ", i, " has method \"",
                             detail::MethodName(m), "\"."));
  }
}

template <typename Backend>
void Mix<Backend>::MixBoxes(const Workspace &ws, int n) {
  const auto &boxes = ws.ArgumentInput("boxes");
  const auto &labels = ws.ArgumentInput("box_labels");
  auto source = [&](int i) {
    return BoxSource{boxes.tensor<float>(i), labels.tensor<int32_t>(i),
                     boxes.tensor_shape(i)[0], mirror_[i] != 0};
  };
  mixed_boxes_.Clear();
  for (int i = 0; i < n; i++) {
    const SampleParams &p = params_[i];
    BoxRule rule = BoxRule::kKeep;
    if (p.partner != i)
      rule = methods_[i] == Method::kMixup ? BoxRule::kUnion
             : methods_[i] == Method::kCutMix ? BoxRule::kCut : BoxRule::kResize;
    MixSampleBoxes(rule, draws_[i].lam, p.y0, p.y1, p.x0, p.x1, geom_.H, geom_.W, source(i),
                   source(p.partner), min_visible_, &mixed_boxes_);
  }
}

template <typename Backend>
template <typename Copy>
void Mix<Backend>::WriteBoxes(Workspace &ws, const Copy &copy) const {
  const MixedBoxes &mb = mixed_boxes_;
  const void *sources[3] = {mb.boxes.data(), mb.labels.data(), mb.weights.data()};
  const int64_t row_bytes[3] = {sizeof(Ltrb), sizeof(int32_t), sizeof(float)};
  for (int o = 0; o < 3; o++) {
    auto &out = ws.Output<Backend>(BoxesOutputIdx() + o);
    const int n = out.num_samples();
    const auto *src = static_cast<const uint8_t *>(sources[o]);
    int first = 0;  // the first sample with boxes: where the contiguous buffer is known to start
    while (first < n && mb.Count(first) == 0) first++;
    if (first == n) continue;
    if (out.IsContiguous()) {
      auto *base = static_cast<uint8_t *>(out.raw_mutable_tensor(first)) -
                   mb.offsets[first] * row_bytes[o];
      copy(base, src, mb.offsets[n] * row_bytes[o]);
      continue;
    }
    for (int i = first; i < n; i++)
      if (mb.Count(i) > 0)
        copy(out.raw_mutable_tensor(i), src + mb.offsets[i] * row_bytes[o],
             mb.Count(i) * row_bytes[o]);
  }
}

template <typename Backend>
void Mix<Backend>::SetTarget(int i, int j, double w) {
  if (soft_labels_) {
    SoftTarget(w, &label_vectors_[int64_t(i) * K_], &label_vectors_[int64_t(j) * K_], K_,
               label_smoothing_, &soft_targets_[int64_t(i) * K_]);
    target_specs_[i] = TargetSpec{};
    target_specs_[i].soft_row = i;
  } else {
    target_specs_[i] = OneHotTarget(w, class_ids_[i], class_ids_[j], label_smoothing_, K_);
  }
}

template <typename Backend>
template <typename Make>
void Mix<Backend>::RunHostJobs(const Workspace &ws, size_t jobs, int64_t cost, const Make &make) {
  if constexpr (std::is_same_v<Backend, CPUBackend>) {
    auto &tp = ws.GetThreadPool();
    for (size_t k = 0; k < jobs; k++) tp.AddWork([&, k](int) { make(k); }, cost);
    tp.RunAll();
  } else {
    ParallelJobs(static_cast<int64_t>(jobs), this->num_threads_, make);
  }
}

template <typename Backend>
void Mix<Backend>::BuildFMixMasks(const Workspace &ws) {
  if (fmix_jobs_.empty()) return;
  const int H = geom_.H, W = geom_.W;
  const TensorList<CPUBackend> *noise = explicit_noise_ ? &ws.ArgumentInput("fmix_noise") : nullptr;
  auto make = [&, H, W](size_t k) {
    static thread_local std::vector<double> values;
    const FMixJob &job = fmix_jobs_[k];
    const int64_t size = FMixNoiseSize(H, W);
    values.resize(size);
    if (noise) {
      const float *v = noise->tensor<float>(job.sample);
      std::copy(v, v + size, values.begin());
    } else {
      Philox4x32_10 rng = job.rng;
      StandardNormals(rng, size, values.data());
    }
    FMixMask(values.data(), H, W, decay_power_, job.ones, bits_.data() + job.table_offset);
  };
  RunHostJobs(ws, fmix_jobs_.size(), int64_t(H) * W, make);
}

template <typename Backend>
template <typename MapOf>
void Mix<Backend>::BuildClassMixMasks(const Workspace &ws, const MapOf &map_of) {
  if (classmix_jobs_.empty()) return;
  const int H = geom_.H, W = geom_.W;
  const int64_t hw = int64_t(H) * W;
  auto make = [&](size_t k) {
    const ClassMixJob &job = classmix_jobs_[k];
    const int flip = mirror_[job.partner];
    auto run = [&](const auto *map) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(map)>>;
      static thread_local std::vector<T> classes;
      // the present labels, sorted, the ignore label left out: a table of the 256 values for
      // uint8 maps, a sort of a copy for int32 ones
      if constexpr (sizeof(T) == 1) {
        bool seen[256] = {};
        for (int64_t k = 0; k < hw; k++) seen[map[k]] = true;
        classes.clear();
        for (int v = 0; v < 256; v++)
          if (seen[v]) classes.push_back(static_cast<T>(v));
      } else {
        classes.assign(map, map + hw);
        std::sort(classes.begin(), classes.end());
        classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
      }
      // (an ignore label the map's type cannot hold, e.g. -1 for uint8, leaves nothing out)
      if (ignore_index_ >= int64_t(std::numeric_limits<T>::min()) &&
          ignore_index_ <= int64_t(std::numeric_limits<T>::max()))
        classes.erase(std::remove(classes.begin(), classes.end(), static_cast<T>(ignore_index_)),
                      classes.end());
      const int n_classes = static_cast<int>(classes.size());
      const int k_sel = (n_classes + 1) / 2;  // ceil(n / 2): the official int((n + n % 2) / 2)
      Philox4x32_10 rng = job.rng;
      for (int t = 0; t < k_sel; t++)  // a partial Fisher-Yates shuffle picks them
        std::swap(classes[t], classes[t + UniformInt(rng, n_classes - t)]);
      std::sort(classes.begin(), classes.begin() + k_sel);
      bool picked[256] = {};  // uint8 maps: membership by table
      if constexpr (sizeof(T) == 1)
        for (int t = 0; t < k_sel; t++) picked[classes[t]] = true;
      uint8_t *bits = bits_.data() + job.bits_offset;
      std::fill(bits, bits + BitsSize(Method::kClassMix, H, W), uint8_t(0));
      int64_t ones = 0;
      for (int r = 0; r < H; r++) {
        const T *row = map + int64_t(r) * W;
        for (int c = 0; c < W; c++) {
          const T v = row[flip ? W - 1 - c : c];
          bool pasted;
          if constexpr (sizeof(T) == 1)
            pasted = picked[v];
          else
            pasted = std::binary_search(classes.begin(), classes.begin() + k_sel, v);
          if (!pasted) {
            SetMaskBit(bits, int64_t(r) * W + c);
            ones++;
          }
        }
      }
      const double w = double(ones) / double(hw);  // the mask mean, exactly
      draws_[job.sample].lam = static_cast<float>(w);
      draws_[job.sample].cy = draws_[job.sample].cx = 0;
      SetTarget(job.sample, job.partner, w);
    };
    if (seg_type_ == DALI_UINT8)
      run(static_cast<const uint8_t *>(map_of(job.partner)));
    else
      run(static_cast<const int32_t *>(map_of(job.partner)));
  };
  RunHostJobs(ws, classmix_jobs_.size(), hw, make);
}

template <typename Backend>
void Mix<Backend>::TargetRow(int i, float *out) const {
  const TargetSpec &t = target_specs_[i];
  if (t.soft_row >= 0) {
    std::copy_n(&soft_targets_[int64_t(t.soft_row) * K_], K_, out);
    return;
  }
  std::fill_n(out, K_, t.fill);
  out[t.yb] = t.vb;
  out[t.ya] = t.va;
}

template <typename Backend>
void Mix<Backend>::SetOutputLayouts(Workspace &ws) const {
  ws.template Output<Backend>(0).SetLayout(out_layout_);
  if (output_mask_) ws.template Output<Backend>(MaskOutputIdx()).SetLayout("HW");
  if (has_seg_)
    ws.template Output<Backend>(SegOutputIdx()).SetLayout(
        ws.template Input<Backend>(2).GetLayout());
}

template <typename Backend>
LaunchGeometry Mix<Backend>::Shape(int n) const {
  return ShapeGeometry(n, frames_, geom_.H, geom_.W, channels_, in_planar_, out_planar_,
                       normalize_, K_);
}

template <typename Backend>
void Mix<Backend>::ParamsRow(int i, float *row) const {
  const Draw &d = draws_[i];
  row[0] = d.apply ? 1.0f : 0.0f;
  row[1] = d.lam;
  row[2] = static_cast<float>(d.cy);
  row[3] = static_cast<float>(d.cx);
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_MIX_H_
