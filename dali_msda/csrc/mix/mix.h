// msda.Mix: every mixing method of the method table (methods.h) over a whole batch, with soft
// labels, mixed label maps and boxes.
//
// The op is a coordinator. SetupImpl reads the batch (its arguments, args.h; its inputs, each a
// small type of inputs.h with its checks), draws the batch's plan on the host (plan.h: draws,
// partners, mask parameters, label weights) and sizes the outputs. RunImpl makes the masks that
// the host makes (host_masks.h: FMix, ClassMix), the targets, and applies the plan: mix.cc on
// DALI's thread pool (its row loops: cpu_rows.h), mix.cu in one kernel per batch (kernel.h,
// planned by launch.h). Both backends apply the same plan with the same per-element function
// (mask.h), so their outputs are equal bit for bit.

#ifndef DALI_MSDA_CSRC_MIX_MIX_H_
#define DALI_MSDA_CSRC_MIX_MIX_H_

#include <chrono>
#include <type_traits>
#include <vector>

#include "dali/operators/random/rng_base.h"
#include "dali/pipeline/data/views.h"
#include "dali/pipeline/operator/operator.h"

#include "args.h"
#include "checks.h"
#include "host_masks.h"
#include "inputs.h"
#include "plan.h"

namespace dali::kernels {
class DynamicScratchpad;
}  // namespace dali::kernels

namespace msda {

template <typename Backend>
class Mix : public rng::OperatorWithRng<Operator<Backend>> {
  using Base = rng::OperatorWithRng<Operator<Backend>>;

 public:
  explicit Mix(const OpSpec &spec) : Base(spec), args_(spec), sample_args_(spec) {}

  /// DALI's OperatorWithRng reads dynamic mode's random state from the batch's first sample
  /// before SetupImpl (an assertion, or a read past the end, with an empty batch): an empty
  /// batch is refused here first.
  bool Setup(std::vector<OutputDesc> &output_desc, const Workspace &ws,
             bool validate_metadata) override {
    MSDA_ENFORCE(ws.GetInputShape(0).num_samples() > 0,
                 "`images` is an empty batch (0 samples): a batch to mix has at least one "
                 "sample.");
    return Base::Setup(output_desc, ws, validate_metadata);
  }

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override;
  void RunImpl(Workspace &ws) override;

  /// Runs make(k) for the k < jobs host jobs of a batch (mask making): on DALI's thread pool
  /// (CPU backend) or on `num_threads` threads of the op's own (GPU backend, whose workspace
  /// has no pool to share).
  template <typename Make>
  void RunHostJobs(const Workspace &ws, size_t jobs, int64_t cost, const Make &make) const;
  /// The plan's FMix masks (from `fmix_noise` where given).
  void MakeFMixMasks(const Workspace &ws);
  /// The plan's ClassMix masks and weights; `map_of(j)`: sample j's label map in host memory.
  template <typename MapOf>
  void MakeClassMixMasks(const Workspace &ws, const MapOf &map_of);
  void SetOutputLayouts(Workspace &ws) const;
  /// CPU backend (mix.cc): the mask outputs, label maps and images of the batch mixed by tasks
  /// on DALI's thread pool.
  template <typename Out, typename In>
  void MixOnThreadPool(Workspace &ws);
  /// GPU backend (mix.cu): the batch's kernel launch (planned, its arguments uploaded).
  template <typename Out, typename In>
  void LaunchKernel(Workspace &ws, kernels::DynamicScratchpad &scratch,
                    detail::HostTimer &timer);

  using Base::spec_;

  const MixArgs args_;    // constant
  SampleArgs sample_args_;  // per batch, from here on
  ImageBatch images_;
  Labels labels_;
  LabelMaps maps_;
  Boxes boxes_;
  bool explicit_noise_ = false;  // `fmix_noise` given (checked)
  BatchPlan plan_;
  double draw_us_ = 0.0;  // host time of the draw in SetupImpl (DALI_MSDA_PROFILE)
};

template <typename Backend>
bool Mix<Backend>::SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) {
  const int n = ws.GetInputShape(0).num_samples();
  images_.Read(ws, args_);
  sample_args_.AcquireMirror(spec_, ws, n, images_.sequence, images_.layout);
  sample_args_.Acquire(spec_, ws, n, args_);
  BatchShape &shape = images_.shape;
  CheckBoxRanges(args_.cutmix_ranges, sample_args_.center.HasExplicitValue(), shape.H, shape.W);
  double noise_max = 0.0;
  explicit_noise_ = CheckFMixNoise(spec_, ws, n, shape.H, shape.W, args_.mode, &noise_max);
  CheckFMixDecay(sample_args_.methods, shape.H, shape.W, args_.decay_power, noise_max);
  labels_.Read(ws, n, args_.num_classes, args_.index_targets, args_.multi_label);
  shape.K = args_.index_targets ? 0 : labels_.K;  // index targets: no rows for the kernel
  CheckMapsGiven(sample_args_.methods, args_.has_maps);
  if (args_.has_maps) maps_.Read(ws, images_);
  if (args_.has_boxes) boxes_.Read(ws, images_, sample_args_.methods);

  // the draw is made here (not in RunImpl) so that the box counts it decides size the outputs
  const auto draw_start = std::chrono::steady_clock::now();
  DrawBatch(args_, sample_args_, n, shape.H, shape.W,
            [&](int i) { return this->GetSampleRNG(i); }, plan_);
  if (args_.has_boxes) boxes_.Mix(ws, plan_, sample_args_, shape, args_.min_visible);
  draw_us_ = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() -
                                                        draw_start).count();

  output_desc.resize(args_.NumOutputs());
  output_desc[0] = images_.Desc(ws);
  if (args_.index_targets) {  // (own, partner) labels, the own label's weight
    output_desc[1] = {uniform_list_shape(n, TensorShape<1>{2}), DALI_INT32};
    output_desc[2] = {uniform_list_shape(n, TensorShape<0>{}), DALI_FLOAT};
  } else {
    output_desc[1] = {uniform_list_shape(n, TensorShape<1>{labels_.K}), DALI_FLOAT};
  }
  if (args_.has_maps) output_desc[args_.MapsOutput()] = maps_.Desc(ws);
  if (args_.has_boxes) boxes_.Descs(output_desc, args_.BoxesOutput(), n);
  if (args_.output_mask)
    output_desc[args_.MaskOutput()] = {
        uniform_list_shape(n, TensorShape<2>{shape.H, shape.W}), DALI_FLOAT};
  if (args_.output_params)
    output_desc[args_.ParamsOutput()] = {uniform_list_shape(n, TensorShape<1>{4}), DALI_FLOAT};
  return true;
}

template <typename Backend>
template <typename Make>
void Mix<Backend>::RunHostJobs(const Workspace &ws, size_t jobs, int64_t cost,
                               const Make &make) const {
  if constexpr (std::is_same_v<Backend, CPUBackend>) {
    auto &tp = ws.GetThreadPool();
    for (size_t k = 0; k < jobs; k++) tp.AddWork([&, k](int) { make(k); }, cost);
    tp.RunAll();
  } else {
    ParallelJobs(static_cast<int64_t>(jobs), this->num_threads_, make);
  }
}

template <typename Backend>
void Mix<Backend>::MakeFMixMasks(const Workspace &ws) {
  const TensorList<CPUBackend> *noise =
      explicit_noise_ ? &ws.ArgumentInput("fmix_noise") : nullptr;
  msda::MakeFMixMasks(
      plan_, images_.shape.H, images_.shape.W, args_.decay_power,
      [&](int i) { return noise ? noise->tensor<float>(i) : nullptr; },
      [&](size_t jobs, int64_t cost, const auto &make) { RunHostJobs(ws, jobs, cost, make); });
}

template <typename Backend>
template <typename MapOf>
void Mix<Backend>::MakeClassMixMasks(const Workspace &ws, const MapOf &map_of) {
  auto run = [&](size_t jobs, int64_t cost, const auto &make) {
    RunHostJobs(ws, jobs, cost, make);
  };
  const int H = images_.shape.H, W = images_.shape.W;
  const int *mirror = sample_args_.mirror.data();
  if (maps_.type == DALI_UINT8)
    msda::MakeClassMixMasks<uint8_t>(plan_, H, W, args_.ignore_index, mirror, map_of, run);
  else
    msda::MakeClassMixMasks<int32_t>(plan_, H, W, args_.ignore_index, mirror, map_of, run);
}

template <typename Backend>
void Mix<Backend>::SetOutputLayouts(Workspace &ws) const {
  ws.template Output<Backend>(0).SetLayout(images_.out_layout);
  if (args_.output_mask) ws.template Output<Backend>(args_.MaskOutput()).SetLayout("HW");
  if (args_.has_maps)
    ws.template Output<Backend>(args_.MapsOutput()).SetLayout(
        ws.template Input<Backend>(2).GetLayout());
}

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_MIX_H_
