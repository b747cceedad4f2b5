// In-place dense k-qubit gate (k = 1, 2) on a batch of flat state vectors: an XLA FFI
// handler for the CPU, built and registered by kernels/inplace.py.
//
// x: (B, 2**n) complex, m: (Bm, 2**k, 2**k) complex with Bm = 1 (shared) or B, attributes
// n, k and the sorted wires w0 < w1 (wire 0 is the most significant bit of the basis index).
// The result is x with m applied to the wires; the Python side aliases it to x, so the update
// is in place (every group of 2**k amplitudes is read before it is written).
//
// With AVX2 and FMA, one 256-bit register holds 2 complex128 or 4 complex64 amplitudes that
// are neighbours in the innermost (contiguous) group; a complex product is
// addsub(a * Re m, swap(a) * Im m). Otherwise, or when the innermost group is shorter than a
// register, a scalar loop. Blocks of amplitudes are spread over threads with OpenMP.
#include <cstdint>
#include <type_traits>

#include "xla/ffi/api/ffi.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define QJR_SIMD 1
#else
#define QJR_SIMD 0
#endif

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlock = 512;  // amplitudes of the innermost group per task
constexpr int64_t kParallelMin = int64_t{1} << 16;  // smaller states run on one thread

#if QJR_SIMD
template <typename R>
struct Simd;

template <>
struct Simd<double> {
  using V = __m256d;
  static constexpr int kLanes = 2;  // complex numbers per register
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V splat(double a) { return _mm256_set1_pd(a); }
  static V swap(V a) { return _mm256_permute_pd(a, 0b0101); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V addsub(V a, V b) { return _mm256_addsub_pd(a, b); }
};

template <>
struct Simd<float> {
  using V = __m256;
  static constexpr int kLanes = 4;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V splat(float a) { return _mm256_set1_ps(a); }
  static V swap(V a) { return _mm256_permute_ps(a, 0b10110001); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V addsub(V a, V b) { return _mm256_addsub_ps(a, b); }
};
#endif

// One group: the 2**k amplitudes at p + off[r] (r the matrix index), scalar arithmetic.
template <typename R, int D>
inline void group_scalar(R* y, const R* mr, const R* mi, const int64_t* off, int64_t p) {
  R ar[D], ai[D];
  for (int c = 0; c < D; ++c) {
    ar[c] = y[2 * (p + off[c])];
    ai[c] = y[2 * (p + off[c]) + 1];
  }
  for (int r = 0; r < D; ++r) {
    R sr = 0, si = 0;
    for (int c = 0; c < D; ++c) {
      sr += mr[r * D + c] * ar[c] - mi[r * D + c] * ai[c];
      si += mr[r * D + c] * ai[c] + mi[r * D + c] * ar[c];
    }
    y[2 * (p + off[r])] = sr;
    y[2 * (p + off[r]) + 1] = si;
  }
}

template <typename R, int K>
void apply_batch(R* y, const R* m, int64_t batch, int64_t m_batch, int64_t n,
                 const int64_t* wires) {
  constexpr int D = 1 << K;
  // The state as (g0, 2, g1, 2, ..., gK): groups of the wires between the gate's wires.
  int64_t g[K + 1], bit_stride[K], group_stride[K];
  int64_t prev = -1;
  for (int j = 0; j < K; ++j) {
    g[j] = int64_t{1} << (wires[j] - prev - 1);
    prev = wires[j];
  }
  g[K] = int64_t{1} << (n - prev - 1);
  int64_t s = g[K];
  for (int j = K - 1; j >= 0; --j) {
    bit_stride[j] = s;
    s *= 2;
    group_stride[j] = s;
    s *= g[j];
  }
  int64_t off[D];
  for (int r = 0; r < D; ++r) {
    off[r] = 0;
    for (int j = 0; j < K; ++j)
      if ((r >> (K - 1 - j)) & 1) off[r] += bit_stride[j];
  }
  const int64_t inner = g[K];
  int64_t outer = 1;
  for (int j = 0; j < K; ++j) outer *= g[j];
  const int64_t block = inner < kBlock ? inner : kBlock;
  const int64_t blocks = inner / block;
  const int64_t size = int64_t{1} << n;

  for (int64_t b = 0; b < batch; ++b) {
    const R* mb = m + 2 * D * D * (m_batch == 1 ? 0 : b);
    R mr[D * D], mi[D * D];
    for (int i = 0; i < D * D; ++i) {
      mr[i] = mb[2 * i];
      mi[i] = mb[2 * i + 1];
    }
    R* yb = y + 2 * size * b;
#if QJR_SIMD
    using S = Simd<R>;
    const bool vector = block % S::kLanes == 0;
#endif
#pragma omp parallel for schedule(static) if (size >= kParallelMin)
    for (int64_t task = 0; task < outer * blocks; ++task) {
      const int64_t o = task / blocks;
      const int64_t start = (task % blocks) * block;
      int64_t rest = o, base = 0;
      for (int j = K - 1; j >= 0; --j) {
        base += (rest % g[j]) * group_stride[j];
        rest /= g[j];
      }
#if QJR_SIMD
      if (vector) {
        typename S::V vr[D * D], vi[D * D];
        for (int i = 0; i < D * D; ++i) {
          vr[i] = S::splat(mr[i]);
          vi[i] = S::splat(mi[i]);
        }
        for (int64_t t = start; t < start + block; t += S::kLanes) {
          const int64_t p = base + t;
          typename S::V a[D], as[D];
          for (int c = 0; c < D; ++c) {
            a[c] = S::load(yb + 2 * (p + off[c]));
            as[c] = S::swap(a[c]);
          }
          for (int r = 0; r < D; ++r) {
            typename S::V re = S::mul(a[0], vr[r * D]);
            typename S::V im = S::mul(as[0], vi[r * D]);
            for (int c = 1; c < D; ++c) {
              re = S::fma(a[c], vr[r * D + c], re);
              im = S::fma(as[c], vi[r * D + c], im);
            }
            S::store(yb + 2 * (p + off[r]), S::addsub(re, im));
          }
        }
        continue;
      }
#endif
      for (int64_t t = start; t < start + block; ++t) group_scalar<R, D>(yb, mr, mi, off, base + t);
    }
  }
}

template <ffi::DataType T>
ffi::Error apply(ffi::Buffer<T> x, ffi::Buffer<T> m, ffi::ResultBuffer<T> y, int64_t n,
                 int64_t k, int64_t w0, int64_t w1) {
  using R = std::conditional_t<T == ffi::C128, double, float>;
  auto xd = x.dimensions();
  auto md = m.dimensions();
  if (xd.size() != 2 || xd[1] != (int64_t{1} << n) || md.size() != 3 ||
      (md[0] != 1 && md[0] != xd[0]) || md[1] != (int64_t{1} << k) || md[2] != md[1])
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "qjaxrob_inplace_gate: bad shapes");
  if (!((k == 1 && 0 <= w0 && w0 < n) || (k == 2 && 0 <= w0 && w0 < w1 && w1 < n)))
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "qjaxrob_inplace_gate: bad k or wires");
  R* out = reinterpret_cast<R*>(y->typed_data());
  const R* in = reinterpret_cast<const R*>(x.typed_data());
  if (out != in) {  // not aliased (XLA kept x alive): start from a copy
    const int64_t count = 2 * xd[0] * xd[1];
    for (int64_t i = 0; i < count; ++i) out[i] = in[i];
  }
  const R* mp = reinterpret_cast<const R*>(m.typed_data());
  const int64_t wires[2] = {w0, w1};
  if (k == 1)
    apply_batch<R, 1>(out, mp, xd[0], md[0], n, wires);
  else
    apply_batch<R, 2>(out, mp, xd[0], md[0], n, wires);
  return ffi::Error::Success();
}

}  // namespace

#define QJR_BIND(T)                                 \
  ffi::Ffi::Bind()                                  \
      .Arg<ffi::Buffer<T>>()                        \
      .Arg<ffi::Buffer<T>>()                        \
      .Ret<ffi::Buffer<T>>()                        \
      .Attr<int64_t>("n")                           \
      .Attr<int64_t>("k")                           \
      .Attr<int64_t>("w0")                          \
      .Attr<int64_t>("w1")

XLA_FFI_DEFINE_HANDLER_SYMBOL(QjrInplaceGateC128, apply<ffi::C128>, QJR_BIND(ffi::C128));
XLA_FFI_DEFINE_HANDLER_SYMBOL(QjrInplaceGateC64, apply<ffi::C64>, QJR_BIND(ffi::C64));
