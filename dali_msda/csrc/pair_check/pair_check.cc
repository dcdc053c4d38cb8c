// msda.PairCheck: a label map must have its image's height and width (segmentation pipelines).
//
// The segmentation pipelines cut one relative window from an image and its map and resize both
// to the crop; a map of another size (a wrong file, a lower-resolution export) would be stretched
// onto its image silently. This op stops the pipeline instead, naming the map by the source its
// reader gave it, both sizes and the rule. It takes the images' shapes as fn.peek_image_shape
// gives them from the encoded files (CPU, whatever device decodes the images) and passes the
// maps through (a copy: maps are one byte per pixel).

#include <cstring>
#include <string>
#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"

namespace msda {

using namespace ::dali;  // NOLINT

class PairCheck : public StatelessOperator<CPUBackend> {
 public:
  explicit PairCheck(const OpSpec &spec) : StatelessOperator<CPUBackend>(spec) {}

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override {
    const auto &shapes = ws.Input<CPUBackend>(0);
    const auto &maps = ws.Input<CPUBackend>(1);
    const int n = maps.num_samples();
    DALI_ENFORCE(shapes.num_samples() == n,
                 make_string("msda.pair_check: ", shapes.num_samples(), " image shapes but ", n,
                             " maps."));
    DALI_ENFORCE(shapes.type() == DALI_INT64 || shapes.type() == DALI_INT32,
                 make_string("msda.pair_check: the image shapes must be int64 or int32 (as "
                             "fn.peek_image_shape gives them); got ", shapes.type(), "."));
    for (int i = 0; i < n; i++) {
      const auto b = maps.tensor_shape(i);
      const int64_t len = volume(shapes.tensor_shape(i));
      DALI_ENFORCE(len >= 2 && b.size() >= 2,
                   make_string("msda.pair_check: an image shape must hold (H, W, ...) and a map "
                               "be HW or HWC; got ", len, " values and ", b.size(),
                               " dimensions."));
      int64_t a[2];
      for (int d = 0; d < 2; d++)
        a[d] = shapes.type() == DALI_INT64 ? shapes.tensor<int64_t>(i)[d]
                                           : shapes.tensor<int32_t>(i)[d];
      if (a[0] != b[0] || a[1] != b[1]) {
        const std::string &src = maps.GetMeta(i).GetSourceInfo();
        DALI_FAIL(make_string("msda.pair_check: the map ",
                              src.empty() ? "of sample " + std::to_string(i) : src, " is ",
                              b[1], " x ", b[0], " (W x H) but its image is ", a[1], " x ", a[0],
                              ": a map must have its image's size (`python -m "
                              "dali_msda.pipelines.scan --segmentation` lists such pairs)."));
      }
    }
    output_desc.resize(1);
    output_desc[0] = {maps.shape(), maps.type()};
    return true;
  }

  void RunImpl(Workspace &ws) override {
    const auto &maps = ws.Input<CPUBackend>(1);
    auto &out = ws.Output<CPUBackend>(0);
    const int64_t item = maps.type_info().size();
    for (int i = 0; i < maps.num_samples(); i++)
      std::memcpy(out.raw_mutable_tensor(i), maps.raw_tensor(i),
                  volume(maps.tensor_shape(i)) * item);
    out.SetLayout(maps.GetLayout());
  }
};

}  // namespace msda

DALI_SCHEMA(msda__PairCheck)
  .DocStr(R"code(Passes label maps through after checking that each has its image's height and
width; a map of another size stops the pipeline with an error naming the map's source and both
sizes. The image sizes come from ``fn.peek_image_shape`` of the encoded images (on the CPU,
whichever device decodes them).

Example::

    maps = fn.decoders.image(pngs, device="cpu", output_type=types.GRAY)
    maps = fn.msda.pair_check(fn.peek_image_shape(jpegs), maps)
)code")
  .NumInput(2)
  .NumOutput(1)
  .InputDox(0, "shapes", "TensorList of int64 or int32 on the CPU",
            "Each image's (H, W, C), as fn.peek_image_shape gives it.")
  .InputDox(1, "maps", "TensorList on the CPU (HW or HWC)", "Each image's label map.");

DALI_REGISTER_OPERATOR(msda__PairCheck, ::msda::PairCheck, ::dali::CPU);
