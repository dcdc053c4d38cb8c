// Checks and their messages for msda.Mix: MSDA_ENFORCE, the formatting of values in errors
// (floats as their shortest decimal, types as NumPy names them, shapes as Python writes them),
// the batch-mode rule for per-sample arguments, and the host timer of DALI_MSDA_PROFILE.

#ifndef DALI_MSDA_CSRC_MIX_CHECKS_H_
#define DALI_MSDA_CSRC_MIX_CHECKS_H_

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "dali/pipeline/operator/arg_helper.h"
#include "dali/pipeline/operator/operator.h"

#include "methods.h"

namespace msda {

using namespace ::dali;  // NOLINT

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

/// A value as an error shows it (floats by Num).
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

/// The error for a per-sample argument whose value for sample i differs from that of sample
/// `src`, whose draw it shares (DrawSource: batch or pair mode).
template <typename T>
std::string ModeMismatch(Mode mode, const char *name, int src, const T &first, const T &value,
                         int i) {
  if (mode == Mode::kPair)
    return make_string("With `mode=\"pair\"` samples i and n - 1 - i share one draw, so `", name,
                       "` must be the same for both; got ", Shown(first), " for sample ", src,
                       " and ", Shown(value), " for sample ", i,
                       ". Use `mode=\"elem\"` for per-sample values.");
  return make_string("With `mode=\"batch\"` one mask serves the whole batch, so `", name,
                     "` must be the same for every sample; got ", Shown(first),
                     " for sample ", src, " and ", Shown(value), " for sample ", i,
                     ". Use `mode=\"elem\"` for per-sample values.");
}

/// Reads a per-sample scalar argument (constant or CPU tensor) and checks lo <= v <= hi
/// (`lo_open`: lo < v). In batch mode every sample must carry the same value, in pair mode both
/// samples of a pair.
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
    const int src = DrawSource(mode, i, n);
    if (v != out[src]) DALI_FAIL(ModeMismatch(mode, name, src, out[src], v, i));
  }
}

}  // namespace detail

}  // namespace msda

#endif  // DALI_MSDA_CSRC_MIX_CHECKS_H_
