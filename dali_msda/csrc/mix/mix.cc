// msda.Mix: schema, CPU backend and CPU registration.
//
// CPU work decomposition: sample i and its partner j = B - 1 - i are processed together, cut into
// blocks of whole rows (about kTaskElems elements per sample) that DALI's thread pool runs,
// largest first: a task mixes a row block of i and then the same rows of j, which read the same
// two input blocks, so each input is read from memory once. The row loops are cpu_rows.h.

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu_rows.h"
#include "mix.h"

namespace msda {

template <typename Backend>
template <typename Out, typename In>
void Mix<Backend>::MixOnThreadPool(Workspace &ws) {
  static_assert(std::is_same_v<Backend, CPUBackend>, "the CPU backend's work");
  using namespace cpu;  // NOLINT
  auto &tp = ws.GetThreadPool();
  const int n = ws.Input<CPUBackend>(0).num_samples();
  const BatchShape &g = images_.shape;
  const float *tables = plan_.tables.data();
  const uint8_t *bits = plan_.bits.data();
  const SampleParams *params = plan_.params.data();
  const int *mirror = sample_args_.mirror.data();
  // the tasks capture the views by reference (not the per-sample pointer arrays by value, which
  // would copy O(n) data into each of O(n) tasks): RunAll runs inside their scope
  TensorListView<StorageCPU, float> mv;
  if (args_.output_mask) mv = view<float>(ws.Output<CPUBackend>(args_.MaskOutput()));
  for (int i = 0; args_.output_mask && i < n; i++)
    tp.AddWork([&, i](int) { WriteMask(mv.data[i], params[i], tables, bits, g.H, g.W); },
               int64_t(g.H) * g.W);
  if (args_.has_maps) {  // the label maps (spec 11), a task per sample
    TYPE_SWITCH(maps_.type, type2id, T, (uint8_t, int32_t), (
      const auto &maps_in = ws.Input<CPUBackend>(2);
      auto &maps_out = ws.Output<CPUBackend>(args_.MapsOutput());
      for (int i = 0; i < n; i++) {
        const int j = params[i].partner;
        // the pointers by value: the tensor lists' references end with this block, the tasks
        // run at RunAll below
        T *o = maps_out.mutable_tensor<T>(i);
        const T *own = maps_in.tensor<T>(i), *partner = maps_in.tensor<T>(j);
        tp.AddWork([&, i, j, o, own, partner](int) {
          static thread_local std::vector<float> mrow;
          MixSeg<T>(o, own, partner, params[i], tables, bits, g.H, g.W, mirror[i], mirror[j],
                    mrow);
        }, int64_t(g.H) * g.W);
      }
    ), DALI_FAIL("unreachable"));  // NOLINT
  }
  // the images: row blocks of pairs (the rows of the fused path are frame rows of all channels)
  const bool fused = images_.Fused(sample_args_.any_mirror);
  const float *norm = g.normalize ? images_.norm.data() : nullptr;
  const int64_t rows = fused ? g.frames * g.H : g.Rows();
  const int64_t row_elems = fused ? int64_t(g.W) * g.C : g.RowLen();
  const int64_t rows_per_task = std::max<int64_t>(1, kTaskElems / std::max<int64_t>(1, row_elems));
  auto iv = view<const In>(ws.Input<CPUBackend>(0));
  auto ov = view<Out>(ws.Output<CPUBackend>(0));
  for (int i = 0; i < (n + 1) / 2; i++) {
    const int j = n - 1 - i;  // the pair (i, j); i == j for the middle of an odd batch
    for (int64_t q0 = 0; q0 < rows; q0 += rows_per_task) {
      int64_t q1 = std::min(rows, q0 + rows_per_task);
      tp.AddWork([&, i, j, q0, q1](int) {
        static thread_local RowBuffers buf;
        for (int s : {i, j}) {
          const SampleParams &p = params[s];
          if (fused)
            MixRowsFused<Out, In>(ov.data[s], iv.data[s], iv.data[p.partner], mirror[s],
                                  mirror[p.partner], p, tables, bits, g, norm, q0, q1, buf);
          else
            MixRows<Out, In>(ov.data[s], iv.data[s], iv.data[p.partner], p, tables, bits, g,
                             q0, q1);
          if (j == i) break;
        }
      }, (q1 - q0) * row_elems * (i == j ? 1 : 2));
    }
  }
  tp.RunAll();
}

template <>
void Mix<CPUBackend>::RunImpl(Workspace &ws) {
  detail::HostTimer timer("CPU");
  const auto &in = ws.Input<CPUBackend>(0);
  auto &out = ws.Output<CPUBackend>(0);
  const int n = in.num_samples();
  timer.Record("draw", draw_us_);  // the draw ran in SetupImpl
  MakeFMixMasks(ws);
  timer.Step("fmix");
  if (args_.has_maps) {
    MakeClassMixMasks(ws, [&](int j) { return ws.Input<CPUBackend>(2).raw_tensor(j); });
    timer.Step("classmix");
  }
  if (!args_.index_targets) labels_.MakeTargets(plan_.weights, n, args_.label_smoothing);
  SetOutputLayouts(ws);
  auto memcpy_to_output = [](void *dst, const void *src, size_t bytes) {
    std::memcpy(dst, src, bytes);
  };
  if (args_.has_boxes) boxes_.Write<CPUBackend>(ws, args_.BoxesOutput(), memcpy_to_output);
  TYPE_SWITCH(in.type(), type2id, In, (uint8_t, float16, float), (
    TYPE_SWITCH(out.type(), type2id, Out, (uint8_t, float16, float), (
      MixOnThreadPool<Out, In>(ws);
    ), DALI_FAIL(make_string("Unsupported output type ", out.type(), ".")));  // NOLINT
  ), DALI_FAIL(make_string("Unsupported input type ", in.type(), ".")));  // NOLINT
  timer.Step("mix");

  if (args_.index_targets) {
    labels_.WriteIndexTargets<CPUBackend>(ws, 1, plan_.weights, n, memcpy_to_output);
  } else {
    auto tv = view<float>(ws.Output<CPUBackend>(1));
    for (int i = 0; i < n; i++) labels_.Row(i, tv.data[i]);
  }
  if (args_.output_params) {
    auto pv = view<float>(ws.Output<CPUBackend>(args_.ParamsOutput()));
    for (int i = 0; i < n; i++)
      plan_.ParamsRow(i, sample_args_.methods[i], pv.data[i], images_.shape.H, images_.shape.W);
  }
  timer.Done(n, 0, "targets");
}

/// The `method` argument's help, from the method table.
inline std::string MethodArgDoc() {
  std::string names;
  for (int k = 0; k < kNumMethods; k++) {
    const MethodTraits &t = kMethods[k];
    names += std::string(k == 0 ? "" : k + 1 == kNumMethods ? " or " : ", ") + "``\"" + t.name +
             "\"``" + (t.needs_maps ? " (needs ``seg``)" : "");
  }
  return "Mixing method: " + names + ". Required unless ``method_id`` is given.";
}

/// The `method_id` argument's help, from the method table.
inline std::string MethodIdArgDoc() {
  return "Method per sample as an int32 argument input: " + MethodIds(false) +
         R"code(; overrides ``method``. It lets a
pipeline switch methods without being rebuilt (a schedule fed by ``fn.external_source``) or
pick one at random per batch or sample, as timm's ``switch_prob`` does (e.g.
``fn.random.coin_flip(probability=0.5, dtype=types.INT32)``).
In ``"batch"`` mode it must be the same for every sample.)code";
}

}  // namespace msda

// clang-format off
DALI_SCHEMA(msda__Mix)
  .DocStr(R"code(Mixes a batch of images with Mixup, CutMix, HMix, GMix, FMix, ResizeMix or
ClassMix and returns soft labels (and, given label maps, the mixed maps).

Every method is a choice of mask: each sample ``i`` is blended with its partner ``j = B - 1 - i``
(the batch reversed) as ``out_i = M_i * x_i + (1 - M_i) * x_j``, where the mask ``M_i`` (H x W,
one for all channels and frames) is the weight of the sample's own image, and its target is
``mean(M_i) * onehot(y_i) + (1 - mean(M_i)) * onehot(y_j)`` (label-smoothed). With an odd batch
the middle sample is its own partner and passes through unchanged.

- ``mixup``: ``M = lam`` everywhere, ``lam ~ Beta(alpha, alpha)``.
- ``cutmix``: ``M = 0`` in a box of side ratio ``sqrt(1 - lam)`` around a uniform centre (clipped to
  the image), 1 elsewhere; the label weight is the realised area (``correct_lam``).
- ``hmix``: a CutMix box of side ratio ``sqrt(hmix_ratio * (1 - lam))`` and a global blend outside
  it, scaled so that ``mean(M) = lam``.
- ``gmix``: ``M`` is a Gaussian blob (peak 1 at a uniform centre) of the sample's own image when
  ``lam < 0.5``, or of the partner otherwise.
- ``fmix``: ``M`` is binary: the ``ceil`` or ``floor`` (a fair coin) of ``lam * H * W`` pixels with
  the largest values of low-frequency Fourier noise (spectrum weights ``1 / f ** decay_power``)
  are 1; the label weight is the realised mean of ``M``. Masks are made on the host.
- ``classmix`` (needs ``seg``): ``M = 0`` where the partner's label map holds one of
  ``ceil(n / 2)`` of its ``n`` labels (drawn uniformly; ``ignore_index`` not counted), 1
  elsewhere; the label weight is the mask's mean.
- ``resizemix``: the whole partner, resized (nearest neighbour) to ``floor(H tau) x floor(W tau)``
  with ``tau ~ U(scale_min, scale_max)``, is pasted at a uniform centre, shifted to lie inside the
  image; ``M`` is 0 there and 1 elsewhere. ``lam`` (drawn or given; ``params``) is ``tau``; in
  ``"batch"`` mode one ``tau`` per batch and a centre per sample, as the official code.

The outputs are ``(mixed, targets)`` (``(mixed, labels, weights)`` with ``targets="index"``),
then the mixed label maps when ``seg`` is given, then
``boxes``, ``box_labels`` and ``box_weights`` when ``boxes`` are given, then
``mask`` with ``output_mask=True``, then ``params`` with ``output_params=True``:
``mixed`` has the layout and shape of ``images`` and type ``dtype``; ``targets`` are float32
vectors of length K; ``mask`` is the float32 H x W mask each sample got (layout "HW").

Example::

    images, labels = fn.readers.file(file_root=root, random_shuffle=True, name="Reader")
    images = fn.decoders.image(images, device="mixed")
    images = fn.resize(images, size=(224, 224))
    mixed, targets = fn.msda.mix(images, labels, method="hmix", alpha=1.0, num_classes=1000)
)code")
  .NumInput(2, 3)
  .InputDox(0, "images", "TensorList of uint8, float16 or float32",
            "A batch of images (HWC, CHW) or sequences (FHWC, FCHW) of one shape. A missing "
            "layout means HWC (3-D) or FHWC (4-D).")
  .InputDox(1, "labels", "TensorList on the CPU",
            "Integer class indices, one per sample (then ``num_classes`` is required), or float32 "
            "soft-label vectors of length K (e.g. from an earlier mix), mixed as vectors: "
            "probabilities (finite, >= 0, each row summing to 1 within 1e-3), or with "
            "``multi_label=True`` multi-hot vectors (each entry in [0, 1]).")
  .InputDevice(1, ::dali::InputDevice::CPU)
  .InputDox(2, "seg", "TensorList of uint8 or int32, optional",
            "Label maps, one per image (H x W or H x W x 1, the image's size; on the images' "
            "device), mixed by each sample's mask into an output right after ``targets``: the "
            "own label where the mask is >= 0.5, the partner's elsewhere, each map flipped with "
            "its image, a ResizeMix partner's resized into the box (nearest). Images only.")
  .AllowSequences()
  .OutputFn([](const ::dali::OpSpec &spec) { return ::msda::MixArgs::CountOutputs(spec); })
  .AddOptionalArg("method", ::msda::MethodArgDoc(), std::string())
  .AddOptionalArg("method_id", ::msda::MethodIdArgDoc(), DALI_INT32, nullptr, true)
  .AddOptionalArg("alpha", "Parameter of the Beta(alpha, alpha) distribution of ``lam``; > 0.",
                  1.0f, true)
  .AddOptionalArg("prob", "Probability that mixing is applied (per batch, or per sample in "
                  "``\"elem\"`` mode); in [0, 1].", 1.0f, true)
  .AddOptionalArg("hmix_ratio", "HMix: the share r of ``1 - lam`` given to the box (side ratio "
                  "``sqrt(r * (1 - lam))``); 0 is Mixup, 1 is CutMix with area correction. In "
                  "[0, 1].", 0.5f, true)
  .AddOptionalArg("box", R"code(CutMix and HMix: how a box of side ``cut = floor(H sqrt(1 - lam))``
is cut around its centre ``cy``: ``"even"`` (default) takes rows ``[cy - cut // 2, cy + cut // 2)``,
an even side, as the CutMix authors' and the HMix/GMix authors' code (and timm's ``rand_bbox`` up
to 1.0.28) do; ``"exact"`` takes ``[cy - cut // 2, cy + (cut + 1) // 2)``, a side of exactly
``cut``, as timm's ``rand_bbox`` from 1.0.29 does. Columns
likewise; both are clipped to the image.)code", std::string("even"))
  .AddOptionalArg("cutmix_minmax", R"code(CutMix: draw the box's sides instead of cutting it from
``lam`` (timm's ``cutmix_minmax``, spec 4b): ``(min, max)``, ``0 < min < max <= 1``; each side
uniform over the integers ``[floor(size min), floor(size max))``, the box placed uniformly where
it fits (timm >= 1.0.29: the edge included); the label weight is the area left. One box per
batch in ``"batch"`` mode.)code",
                  DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("cutmix_area", R"code(CutMix: draw the box from an area and an aspect range
(UniMatch's / FixMatch-seg's semi-supervised segmentation box, spec 4b): ``(min, max)`` share of
the image, ``0 < min <= max <= 1`` (UniMatch: 0.02, 0.4); its aspect from ``cutmix_aspect``, the
aspect and the top-left corner drawn again until the box fits. Its probability is ``prob``
(UniMatch: 0.5).)code", DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("cutmix_aspect", R"code(With ``cutmix_area``: the box's aspect h / w range
``(min, max)``, ``0 < min <= max``; default ``(0.3, 1 / 0.3)``.)code", DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("ignore_index", R"code(ClassMix: a label of the maps that is not a class (not
counted among the classes present, never selected; e.g. 255); -1: none.)code", -1)
  .AddOptionalArg("resize_interp", R"code(ResizeMix: how the partner is resized, ``"nearest"`` (the
official code's ``F.interpolate`` default) or ``"bilinear"`` (``align_corners=False``; the value
is rounded to the input type, as resizing an image of that type gives).)code",
                  std::string("nearest"))
  .AddOptionalArg("scale_min", "ResizeMix: the smallest scale ``tau`` of the pasted partner; in "
                  "(0, 1].", 0.1f)
  .AddOptionalArg("scale_max", "ResizeMix: the largest scale ``tau``; in (0, 1], >= "
                  "``scale_min``.", 0.8f)
  .AddOptionalArg("decay_power", "FMix: the decay power d of the spectrum weights ``1 / max(f, 1 / "
                  "max(H, W)) ** d`` (larger: smoother masks); > 0.", 3.0f)
  .AddOptionalArg("fmix_noise", R"code(FMix: the Fourier noise per sample as an argument input,
replacing the drawn one: float32 of shape ``(H, W // 2 + 1, 2)`` (real and imaginary part of each
bin of the real-FFT grid; flat ``(H * (W // 2 + 1) * 2,)`` is accepted too), as
``dali_msda.reference.fmix_low_freq`` takes it. For tests and reproductions; finite. In
``"batch"`` mode it must be the same for every sample, in ``"pair"`` mode for both of a
pair.)code", DALI_FLOAT_VEC, nullptr, true)
  .AddOptionalArg("mode", R"code(``"batch"`` (one ``lam``, centre and apply decision for the whole
batch, as timm and the official code), ``"elem"`` (each sample draws its own) or ``"pair"``
(timm's: samples ``i`` and ``B - 1 - i`` share one draw and one mask, each showing the other
where the mask is 0). In batch mode the per-sample arguments ``lam``, ``center``, ``alpha``,
``prob``, ``hmix_ratio``, ``method_id`` and ``fmix_noise`` must be equal across the batch, in pair
mode within each pair.)code",
                  std::string("batch"))
  .AddOptionalArg("correct_lam", "CutMix: label weight from the realised (clipped) box area "
                  "rather than the sampled ``lam``.", true)
  .AddOptionalArg("label_smoothing", "Label smoothing eps: a one-hot row becomes ``1 - eps + "
                  "eps / K`` at its class and ``eps / K`` elsewhere; in [0, 1].", 0.0f)
  .AddOptionalArg("targets", R"code(The form of the targets: ``"dense"`` (default), a float32 row
of K per sample (the label-smoothed mix of the two one-hot or soft labels), or ``"index"``, two
outputs in its place: ``labels``, int32 ``(own class, partner class)`` per sample, and
``weights``, the float32 weight of the own class (the mask mean; 1 for a sample left unmixed).
The loss then mixes two cross-entropies, ``w * CE(own) + (1 - w) * CE(partner)``
(``dali_msda.pytorch.mixed_cross_entropy``), which equals the cross-entropy with the dense
targets without building K floats a sample. Needs class-index ``labels``; label smoothing goes
to the loss then.)code", std::string("dense"))
  .AddOptionalArg("multi_label", R"code(Float32 ``labels`` are multi-hot vectors (several classes
a sample, each entry in [0, 1], any sum: the targets of a binary cross-entropy) rather than
probability rows that sum to 1; mixed as vectors like soft labels, ``w * s(v_own) + (1 - w) *
s(v_partner)``, each entry a binary label smoothed towards 1/2: ``s(v) = (1 - eps) v + eps / 2``
(timm's ``Mixup(multi_label=True)``). Class-index labels are refused with it.)code",
                  false)
  .AddOptionalArg("num_classes", "Number of classes K; required with class-index labels.",
                  DALI_INT32, nullptr)
  .AddOptionalTypeArg("dtype", "Type of the mixed images (uint8, float16 or float32); default: "
                      "the type of ``images``. Conversion to uint8 rounds to nearest and "
                      "saturates.")
  .AddOptionalArg("lam", "Explicit ``lam`` per sample in [0, 1], replacing the draw.",
                  DALI_FLOAT, nullptr, true)
  .AddOptionalArg("center", "Explicit mask centre per sample, relative ``(y, x)`` in [0, 1), "
                  "replacing the draw.", DALI_FLOAT_VEC, nullptr, true)
  .AddOptionalArg("mean", R"code(Fused normalisation, as ``crop_mirror_normalize`` does it: the
mean subtracted from each mixed value, one value or one per channel. Giving ``mean`` or ``std``
turns normalisation on: each output value is ``(v - mean[c]) * (1 / std[c])`` (float32, the
reciprocal rounded to float32), where ``v`` is the float32 mix of the raw input values (the
normalised mix, since normalisation is affine). Default 0.)code", DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("std", R"code(Fused normalisation: the standard deviation each mixed value is
divided by (multiplied by its float32 reciprocal), one value or one per channel; finite and > 0.
Default 1.)code", DALI_FLOAT_VEC, nullptr)
  .AddOptionalArg("output_layout", R"code(Layout of ``mixed``: ``"HWC"`` or ``"CHW"`` for images
(``"FHWC"`` or ``"FCHW"`` for sequences); the transposition is fused into the mix. Default: the
layout of ``images``.)code", std::string())
  .AddOptionalArg("mirror", R"code(Horizontal flip per sample (int 0 or 1; a constant or an argument
input, e.g. ``fn.random.coin_flip()``), applied to each image *before* it is mixed, as
``crop_mirror_normalize`` followed by the mix would: sample ``i`` is flipped by its own value and
its partner by the partner's value. The mask (``output_mask``) and the centre (``output_params``)
are in the coordinates of the output, so ``mixed = M * flip_i(x_i) + (1 - M) * flip_j(x_j)``.
Images only (not sequences).)code", 0, true)
  .AddOptionalArg("boxes", R"code(Detection boxes per image as an argument input: float32
``(N, 4)``, relative ``(l, t, r, b)`` in [0, 1] (DALI's "ltrb", as ``fn.readers.coco(ltrb=True,
ratio=True)`` gives them; N may be 0), with ``box_labels``. Mixed by the image's draw (spec 13) into
three outputs after the map: ``boxes`` (float32 ``(N', 4)``), ``box_labels`` (int32 ``(N',)``) and
``box_weights`` (float32 ``(N',)``). Mixup: both images' boxes, weighted ``lam`` and ``1 - lam``;
CutMix: the own boxes clipped to what the paste leaves visible and the partner's clipped to the
pasted box, kept where at least ``min_visible`` of their area shows; ResizeMix: the own boxes as
for CutMix, the partner's scaled into the pasted box; weights 1. Each image's boxes are flipped
with it (``mirror``). Other methods refuse boxes. Images only.)code", DALI_FLOAT_VEC, nullptr,
                  true)
  .AddOptionalArg("box_labels", "The class of each box as an argument input: int32 ``(N,)`` or "
                  "``(N, 1)``, N the sample's box count; required with ``boxes``.",
                  DALI_INT_VEC, nullptr, true)
  .AddOptionalArg("min_visible", "CutMix and ResizeMix boxes: the smallest share of a box's "
                  "area that must stay visible for it to be kept, in [0, 1] (YOLOX's "
                  "``box_candidates`` area threshold, 0.2).", 0.2f)
  .AddOptionalArg("output_mask", "Also return the mask of each sample (float32, H x W, the "
                  "weight of the sample's own image, in output coordinates).", false)
  .AddOptionalArg("output_params", R"code(Also return, per sample, the float32 vector
``(applied, lam, cy, cx)``: whether mixing was drawn to apply (1 or 0), the ``lam`` and the pixel
centre it used (drawn or explicit). It comes after ``mask`` when both are requested.)code", false)
  .AddRandomSeedArg()
  .AddRandomStateArg();  // dynamic mode (ndd.msda.mix) passes an RNG state per call
// clang-format on

DALI_REGISTER_OPERATOR(msda__Mix, ::msda::Mix<::dali::CPUBackend>, ::dali::CPU);
