// msda.ClassLabel: a class index parsed strictly from its text (a WebDataset `.cls` payload).
//
// The rule: ASCII decimal digits, optionally surrounded by whitespace, and nothing else, with a
// value in [0, num_classes). Anything else ("-1", "1a", "+3", a 10-digit number, an empty
// payload, bytes that are not ASCII) stops the pipeline with an error that names the sample by
// the source DALI's reader gave it (for WebDataset: "shard.tar:offset:key.cls"), the rule and
// the bytes received. Without it a pipeline that parses digits leniently turns "-1" into 1 and
// "123456789" into a wrong class, silently. CPU only: labels are small and go to the CPU ops.

#include <cstdint>
#include <string>
#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"

namespace msda {

using namespace ::dali;  // NOLINT

namespace {

bool IsSpace(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/// The bytes as a quoted string for an error: printable ASCII as is, the rest as \xNN.
std::string Quote(const uint8_t *p, int64_t n) {
  std::string s = "'";
  const int64_t shown = n < 40 ? n : 40;
  for (int64_t k = 0; k < shown; k++) {
    const uint8_t c = p[k];
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      s += static_cast<char>(c);
    } else {
      static const char *hex = "0123456789abcdef";
      s += c == '\n' ? std::string("\\n") : std::string("\\x") + hex[c >> 4] + hex[c & 15];
    }
  }
  return s + (n > shown ? "'..." : "'");
}

/// The class index in p[0, n), or -1 when the text breaks the rule; *too_big when it is a
/// valid integer >= limit.
int64_t ParseIndex(const uint8_t *p, int64_t n, int64_t limit, bool *too_big) {
  int64_t a = 0, b = n;
  while (a < b && IsSpace(p[a])) a++;
  while (b > a && IsSpace(p[b - 1])) b--;
  *too_big = false;
  if (a == b) return -1;
  int64_t v = 0;
  for (int64_t k = a; k < b; k++) {
    if (p[k] < '0' || p[k] > '9') return -1;
    if (v < limit) v = v * 10 + (p[k] - '0');  // stops growing once past the limit
  }
  if (v >= limit) *too_big = true;
  return v;
}

}  // namespace

class ClassLabel : public StatelessOperator<CPUBackend> {
 public:
  explicit ClassLabel(const OpSpec &spec)
      : StatelessOperator<CPUBackend>(spec), num_classes_(spec.GetArgument<int>("num_classes")),
        what_(spec.GetArgument<std::string>("what")) {
    DALI_ENFORCE(num_classes_ > 0, make_string("`num_classes` must be positive; got ",
                                               num_classes_, "."));
  }

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override {
    const auto &in = ws.Input<CPUBackend>(0);
    DALI_ENFORCE(in.type() == DALI_UINT8,
                 make_string("msda.class_label: the text must be uint8 bytes; got ", in.type(),
                             "."));
    output_desc.resize(1);
    output_desc[0] = {uniform_list_shape(in.num_samples(), TensorShape<1>{1}), DALI_INT32};
    return true;
  }

  void RunImpl(Workspace &ws) override {
    const auto &in = ws.Input<CPUBackend>(0);
    auto &out = ws.Output<CPUBackend>(0);
    for (int i = 0; i < in.num_samples(); i++) {
      const uint8_t *p = in.tensor<uint8_t>(i);
      const int64_t n = volume(in.tensor_shape(i));
      bool too_big = false;
      const int64_t v = ParseIndex(p, n, num_classes_, &too_big);
      if (v < 0 || too_big) {
        const std::string &src = in.GetMeta(i).GetSourceInfo();
        DALI_FAIL(make_string(
            "msda.class_label: ", what_, " of ", src.empty() ? "sample " + std::to_string(i) : src,
            " must be a class index: ASCII digits, optionally surrounded by whitespace, in [0, ",
            num_classes_, ") (`num_classes`); got ", Quote(p, n), "."));
      }
      out.mutable_tensor<int32_t>(i)[0] = static_cast<int32_t>(v);
    }
    out.SetLayout("");
  }

 private:
  int num_classes_;
  std::string what_;
};

}  // namespace msda

DALI_SCHEMA(msda__ClassLabel)
  .DocStr(R"code(Parses a class index from its text, strictly: ASCII decimal digits, optionally
surrounded by whitespace, with a value in ``[0, num_classes)``, and nothing else (no sign, no
other characters, no empty text). Any other text stops the pipeline with an error naming the
sample by its source (for ``fn.readers.webdataset``: ``shard.tar:offset:key.cls``) and the bytes.

Example::

    images, cls = fn.readers.webdataset(paths=shards, ext=["jpg", "cls"])
    labels = fn.msda.class_label(cls, num_classes=1000)   # int32, shape [1]
)code")
  .NumInput(1)
  .NumOutput(1)
  .InputDox(0, "text", "TensorList of uint8", "The text of each sample's label (1-D bytes).")
  .AddArg("num_classes", "Number of classes K: a label must lie in [0, K).", DALI_INT32)
  .AddOptionalArg("what", "What the text is, for the error message.", std::string("`.cls`"));

DALI_REGISTER_OPERATOR(msda__ClassLabel, ::msda::ClassLabel, ::dali::CPU);
