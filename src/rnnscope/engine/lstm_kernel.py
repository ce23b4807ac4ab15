"""The LSTM layer's two time loops in C++, built on first use: the fused path of engine/lstm.py.

The loops are the same equations as the pure-torch loops of engine/lstm.py (its docstring holds
them), in the same order, with one difference: every step's gate nonlinearities, cell state and
error terms are one pass over the step's rows, where the torch loop needs seven tensor calls
forward and five backward, each paying Python's and the dispatcher's overhead (on small layers that
overhead is most of the time, and it is why oneDNN's fused LSTM beat the torch loop). The matmuls
stay torch's (`addmm_`, one per step, as in the torch loop), and the input projection before the
loop and the weight adjustments after it are the unchanged Python code.

It is compiled once per machine with torch.utils.cpp_extension (g++ and ninja; 25-90 s, one
line on stderr says so) into a cache directory and loaded from there afterwards. Anything that
stops it (no compiler, an error) leaves the torch loop in charge, with one line saying why;
RNNSCOPE_FUSED_LSTM=0 asks for the torch loop. Only CPU float32/float64 tensors take this path.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import filelock
import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

# Set to 0 (or off, false, no) to run the pure-torch loop.
ENV_VAR = "RNNSCOPE_FUSED_LSTM"

_SOURCE = r"""
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <cmath>
#include <optional>
#include <vector>

namespace {

// A step's pass over its rows runs on one thread below this many gate values (ATen's own grain
// size): a second thread costs a wake-up per step, which a busy machine makes long.
constexpr int64_t kGrain = 32768;

template <typename F>
void for_rows(int64_t n, int64_t H, const F& body) {
  at::parallel_for(0, n, std::max<int64_t>(1, kGrain / (4 * H)), body);
}

template <typename T>
inline T sigmoid(T a) { return T(1) / (T(1) + std::exp(-a)); }

// One step forward over rows [r0, r1): A (n, 4H) holds x_t W_ihᵀ (+ h_{t-1} W_hhᵀ) on entry, gates
// i, f, g, o; R (n, 4H), when given, holds h_{t-1} W_hhᵀ and bias (4H) b_ih + b_hh, both added here,
// so that a_t = A + R + bias; A holds the activated gates on exit; C, TC, Hs (n, H) get c_t, tanh(c_t), h_t.
template <typename T, bool kR, bool kBias>
void forward_rows(T* A, const T* R, const T* bias, const T* C_prev, T* C, T* TC, T* Hs, int64_t r0, int64_t r1,
                  int64_t H) {
  for (int64_t r = r0; r < r1; ++r) {
    T* a = A + r * 4 * H;
    const T* rr = kR ? R + r * 4 * H : nullptr;
    const T* cp = C_prev + r * H;
    T* c = C + r * H; T* tc = TC + r * H; T* h = Hs + r * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T ai = a[j], af = a[H + j], ag = a[2 * H + j], ao = a[3 * H + j];
      if (kR) { ai += rr[j]; af += rr[H + j]; ag += rr[2 * H + j]; ao += rr[3 * H + j]; }
      if (kBias) { ai += bias[j]; af += bias[H + j]; ag += bias[2 * H + j]; ao += bias[3 * H + j]; }
      const T i = sigmoid(ai), f = sigmoid(af), g = std::tanh(ag), o = sigmoid(ao);
      const T c_t = f * cp[j] + i * g;  // the cell state
      const T tanh_c = std::tanh(c_t);
      a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
      c[j] = c_t; tc[j] = tanh_c; h[j] = o * tanh_c;  // h_t = o_t ⊙ tanh(c_t)
    }
  }
}

// a_t complete in A (n, 4H): + R and + bias where given (a Trace records a_t before the gates).
template <typename T>
void add_rows(T* A, const T* R, const T* bias, int64_t n, int64_t H) {
  for (int64_t r = 0; r < n; ++r) {
    T* a = A + r * 4 * H;
    const T* rr = R ? R + r * 4 * H : nullptr;
#pragma omp simd
    for (int64_t j = 0; j < 4 * H; ++j) a[j] += (rr ? rr[j] : T(0)) + (bias ? bias[j] : T(0));
  }
}

// One step back over rows [r0, r1): dh (n, H) is ∂L/∂h_t, dc (n, H) carries ∂L/∂c_{t+1} ⊙ f_{t+1}
// in and ∂L/∂c_t ⊙ f_t out; D (n, 4H) gets the error terms δ_i, δ_f, δ_g, δ_o; DC_rec ∂L/∂c_t.
template <typename T>
void backward_rows(const T* G, const T* C_prev, const T* TC, const T* DH, T* DC, T* D, T* DC_rec,
                   int64_t r0, int64_t r1, int64_t H) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* gates = G + r * 4 * H;
    const T* cp = C_prev + r * H; const T* tc = TC + r * H; const T* dh = DH + r * H;
    T* dc = DC + r * H; T* d = D + r * 4 * H;
    T* dc_rec = DC_rec ? DC_rec + r * H : nullptr;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
      // the cell-state error: from h_t through tanh, and from c_{t+1} through the forget gate
      const T dc_t = dc[j] + dh[j] * o * (T(1) - tc[j] * tc[j]);
      d[j] = dc_t * g * i * (T(1) - i);              // δ_i = ∂L/∂c_t ⊙ g_t ⊙ σ'(a_i)
      d[H + j] = dc_t * cp[j] * f * (T(1) - f);      // δ_f = ∂L/∂c_t ⊙ c_{t-1} ⊙ σ'(a_f)
      d[2 * H + j] = dc_t * i * (T(1) - g * g);      // δ_g = ∂L/∂c_t ⊙ i_t ⊙ tanh'(a_g)
      d[3 * H + j] = dh[j] * tc[j] * o * (T(1) - o); // δ_o = ∂L/∂h_t ⊙ tanh(c_t) ⊙ σ'(a_o)
      if (dc_rec) dc_rec[j] = dc_t;
      dc[j] = dc_t * f;  // back through the forget gate: ∂L/∂c_{t-1} gets ∂L/∂c_t ⊙ f_t
    }
  }
}

// Below this many multiply-adds a step's matmul runs as the register-tiled loops below, on this
// thread: torch's addmm costs about a microsecond of dispatch and checks, more than a (1, 16) × (16, 64)
// product itself, and on a busy machine its threads wait for a core at every step.
constexpr int64_t kSmallMatmul = 1 << 18;

// out[0:kRows, 0:kCols] += a[0:kRows, 0:M] · b[0:M, 0:kCols] (row strides lda, ldb, ldo): the
// kRows × kCols block of out stays in registers for the whole sum over M, which runs in order.
template <typename T, int kRows, int kCols>
inline void tile_add(const T* __restrict a, const T* __restrict b, T* __restrict out, int64_t M, int64_t lda,
                     int64_t ldb, int64_t ldo) {
  T acc[kRows][kCols];
  for (int r = 0; r < kRows; ++r)
#pragma omp simd
    for (int k = 0; k < kCols; ++k) acc[r][k] = out[r * ldo + k];
  for (int64_t m = 0; m < M; ++m) {
    const T* b_m = b + m * ldb;
    for (int r = 0; r < kRows; ++r) {
      const T a_rm = a[r * lda + m];
#pragma omp simd
      for (int k = 0; k < kCols; ++k) acc[r][k] += a_rm * b_m[k];
    }
  }
  for (int r = 0; r < kRows; ++r)
#pragma omp simd
    for (int k = 0; k < kCols; ++k) out[r * ldo + k] = acc[r][k];
}

// The rows [r0, r0 + kRows) of out: column tiles of two vector registers, then one, then the rest.
template <typename T, int kRows>
inline void rows_add(const T* a, const T* b, T* out, int64_t M, int64_t K) {
  constexpr int kWide = 128 / sizeof(T);  // two 512-bit registers (four 256-bit ones)
  int64_t k = 0;
  for (; k + kWide <= K; k += kWide) tile_add<T, kRows, kWide>(a, b + k, out + k, M, M, K, K);
  for (; k + kWide / 2 <= K; k += kWide / 2) tile_add<T, kRows, kWide / 2>(a, b + k, out + k, M, M, K, K);
  for (; k + 8 <= K; k += 8) tile_add<T, kRows, 8>(a, b + k, out + k, M, M, K, K);
  for (; k < K; ++k) tile_add<T, kRows, 1>(a, b + k, out + k, M, M, K, K);
}

// out (n, K) += a (n, M) · b (M, K), all contiguous rows; four rows at a time share each load of b
template <typename T>
void small_matmul_add(const T* a, const T* b, T* out, int64_t n, int64_t M, int64_t K) {
  int64_t r = 0;
  for (; r + 4 <= n; r += 4) rows_add<T, 4>(a + r * M, b, out + r * K, M, K);
  for (; r < n; ++r) rows_add<T, 1>(a + r * M, b, out + r * K, M, K);
}

// y (n, N) = x (n, K) · Wᵀ through oneDNN (torch's mkldnn linear), for the steps whose caller asked
// for it (engine/onednn.py says when, and why)
std::optional<c10::OperatorHandle> onednn_linear() {
  static const std::optional<c10::OperatorHandle> op = c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
  return op;
}

at::Tensor linear(const c10::OperatorHandle& op, const at::Tensor& x, const at::Tensor& W) {
  return op.typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::string_view,
                             c10::List<std::optional<c10::Scalar>>, std::optional<c10::string_view>)>()
      .call(x, W, std::nullopt, "none", c10::List<std::optional<c10::Scalar>>(), std::nullopt);
}

// oneDNN for the steps' matmuls: asked for, float32, and present in this torch
bool use_onednn(bool onednn, const at::Tensor& t) {
  return onednn && t.scalar_type() == at::kFloat && onednn_linear().has_value();
}

// The first row of every step; checks that the steps' rows (non-increasing, the first step's B) fill
// the N rows of every (N, ·) tensor and that the states are (B, H): a replayed torch.jit.trace
// carries the traced length's sizes, and a mismatch must be an error, not a read past the end.
std::vector<int64_t> offsets_of(at::IntArrayRef sizes, int64_t H, const at::Tensor& state,
                                std::initializer_list<const at::Tensor*> rows) {
  TORCH_CHECK(!sizes.empty() && sizes[0] == state.size(0), "rnnscope lstm kernel: step sizes ", sizes,
              " do not start at the batch ", state.size(0));
  std::vector<int64_t> offsets(sizes.size(), 0);
  for (size_t t = 1; t < sizes.size(); ++t) {
    TORCH_CHECK(sizes[t] <= sizes[t - 1] && sizes[t] > 0, "rnnscope lstm kernel: step sizes must not grow");
    offsets[t] = offsets[t - 1] + sizes[t - 1];
  }
  const int64_t N = offsets.back() + sizes.back();
  TORCH_CHECK(state.dim() == 2 && state.size(1) == H, "rnnscope lstm kernel: a state is not (B, H)");
  for (const at::Tensor* t : rows) {
    TORCH_CHECK(t->dim() == 2 && t->size(0) == N && (t->size(1) == H || t->size(1) == 4 * H),
                "rnnscope lstm kernel: a tensor of ", t->sizes(), " where the steps hold ", N, " rows of H = ", H);
  }
  return offsets;
}

// gates (N, 4H): the input projection of every step on entry (its bias in `bias` or already added),
// the activated gates on exit.
void forward_loop(at::Tensor gates, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& W_hh_t,
                  at::IntArrayRef sizes, at::Tensor c, at::Tensor tanh_c, at::Tensor h,
                  const std::optional<at::Tensor>& a_record, const std::optional<at::Tensor>& bias, bool onednn) {
  const int64_t H = h0.size(1);
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&gates, &h0, &c0, &c, &tanh_c, &h})
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == gates.scalar_type(), "forward_loop: contiguous, one dtype");
  const auto offsets = offsets_of(sizes, H, c0, {&gates, &c, &tanh_c, &h});
  TORCH_CHECK(h0.sizes() == c0.sizes() && gates.size(1) == 4 * H && W_hh_t.size(0) == H && W_hh_t.size(1) == 4 * H,
              "rnnscope lstm kernel: W_hh or the gates do not fit H = ", H);
  if (a_record) TORCH_CHECK(a_record->sizes() == gates.sizes() && a_record->is_contiguous() &&
                            a_record->scalar_type() == gates.scalar_type(), "rnnscope lstm kernel: a_record");
  if (bias) TORCH_CHECK(bias->dim() == 1 && bias->size(0) == 4 * H && bias->is_contiguous() &&
                        bias->scalar_type() == gates.scalar_type(), "rnnscope lstm kernel: bias is not (4H,)");
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnscope_lstm_forward", [&] {
    scalar_t* A = gates.data_ptr<scalar_t>();
    scalar_t* C = c.data_ptr<scalar_t>(); scalar_t* TC = tanh_c.data_ptr<scalar_t>(); scalar_t* Hs = h.data_ptr<scalar_t>();
    const scalar_t* b = bias ? bias->data_ptr<scalar_t>() : nullptr;
    const int64_t macs = sizes[0] * H * 4 * H;
    const bool small = macs <= kSmallMatmul, dnnl = !small && use_onednn(onednn, gates);
    const at::Tensor W_t = small ? W_hh_t.contiguous() : W_hh_t;  // (H, 4H)
    const scalar_t* W = small ? W_t.data_ptr<scalar_t>() : nullptr;
    const at::Tensor W_rows = dnnl ? W_hh_t.t().contiguous() : at::Tensor();  // (4H, H) for oneDNN
    for (size_t t = 0; t < sizes.size(); ++t) {
      const int64_t n = sizes[t], off = offsets[t];
      at::Tensor recurrent;  // (n, 4H) h_{t-1} W_hhᵀ, when oneDNN computed it apart
      if (small) {  // + h_{t-1} W_hhᵀ, all gates
        small_matmul_add<scalar_t>(t == 0 ? h0.data_ptr<scalar_t>() : Hs + offsets[t - 1] * H, W, A + off * 4 * H,
                                   n, H, 4 * H);
      } else if (dnnl) {
        recurrent = linear(*onednn_linear(), t == 0 ? h0 : h.narrow(0, offsets[t - 1], n), W_rows);
      } else {
        gates.narrow(0, off, n).addmm_(t == 0 ? h0 : h.narrow(0, offsets[t - 1], n), W_t);
      }
      const scalar_t* R = recurrent.defined() ? recurrent.data_ptr<scalar_t>() : nullptr;
      const scalar_t* step_bias = b;
      if (a_record) {  // the Trace gets a_t whole: fold the addends in first
        add_rows<scalar_t>(A + off * 4 * H, R, b, n, H);
        a_record->narrow(0, off, n).copy_(gates.narrow(0, off, n));
        R = nullptr; step_bias = nullptr;
      }
      const scalar_t* C_prev = t == 0 ? c0.data_ptr<scalar_t>() : C + offsets[t - 1] * H;
      for_rows(n, H, [&](int64_t r0, int64_t r1) {
        scalar_t* a = A + off * 4 * H;
        scalar_t *c_t = C + off * H, *tc_t = TC + off * H, *h_t = Hs + off * H;
        if (R && step_bias) forward_rows<scalar_t, true, true>(a, R, step_bias, C_prev, c_t, tc_t, h_t, r0, r1, H);
        else if (R) forward_rows<scalar_t, true, false>(a, R, nullptr, C_prev, c_t, tc_t, h_t, r0, r1, H);
        else if (step_bias) forward_rows<scalar_t, false, true>(a, nullptr, step_bias, C_prev, c_t, tc_t, h_t, r0, r1, H);
        else forward_rows<scalar_t, false, false>(a, nullptr, nullptr, C_prev, c_t, tc_t, h_t, r0, r1, H);
      });
    }
  });
}

// dh (N, H): the output errors on entry, ∂L/∂h_t on exit; dc (B, H): ∂L/∂c_T on entry, ∂L/∂c_0 on exit.
void backward_loop(const at::Tensor& gates, const at::Tensor& c0, const at::Tensor& c, const at::Tensor& tanh_c,
                   const at::Tensor& W_hh, at::IntArrayRef sizes, at::Tensor dh, at::Tensor dc,
                   at::Tensor delta, const std::optional<at::Tensor>& dc_record, bool onednn) {
  const int64_t H = c0.size(1);
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&gates, &c0, &c, &tanh_c, &dh, &dc, &delta})
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == gates.scalar_type(), "backward_loop: contiguous, one dtype");
  const auto offsets = offsets_of(sizes, H, dc, {&gates, &c, &tanh_c, &dh, &delta});
  TORCH_CHECK(c0.sizes() == dc.sizes() && gates.size(1) == 4 * H && delta.size(1) == 4 * H && W_hh.size(0) == 4 * H &&
              W_hh.size(1) == H, "rnnscope lstm kernel: W_hh or the gates do not fit H = ", H);
  if (dc_record) TORCH_CHECK(dc_record->sizes() == dh.sizes() && dc_record->is_contiguous() &&
                             dc_record->scalar_type() == gates.scalar_type(), "rnnscope lstm kernel: dc_record");
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnscope_lstm_backward", [&] {
    const scalar_t* G = gates.data_ptr<scalar_t>();
    const scalar_t* C = c.data_ptr<scalar_t>(); const scalar_t* TC = tanh_c.data_ptr<scalar_t>();
    scalar_t* DH = dh.data_ptr<scalar_t>(); scalar_t* DC = dc.data_ptr<scalar_t>(); scalar_t* D = delta.data_ptr<scalar_t>();
    scalar_t* DC_rec = dc_record ? dc_record->data_ptr<scalar_t>() : nullptr;
    const int64_t macs = sizes[0] * H * 4 * H;
    const bool small = macs <= kSmallMatmul, dnnl = !small && use_onednn(onednn, gates);
    const at::Tensor W_c = small ? W_hh.contiguous() : W_hh;  // (4H, H)
    const scalar_t* W = small ? W_c.data_ptr<scalar_t>() : nullptr;
    const at::Tensor W_cols = dnnl ? W_hh.t().contiguous() : at::Tensor();  // (H, 4H) for oneDNN
    for (int64_t t = static_cast<int64_t>(sizes.size()) - 1; t >= 0; --t) {
      const int64_t n = sizes[t], off = offsets[t];
      const scalar_t* C_prev = t == 0 ? c0.data_ptr<scalar_t>() : C + offsets[t - 1] * H;
      for_rows(n, H, [&](int64_t r0, int64_t r1) {
        backward_rows<scalar_t>(G + off * 4 * H, C_prev, TC + off * H, DH + off * H, DC, D + off * 4 * H,
                                DC_rec ? DC_rec + off * H : nullptr, r0, r1, H);
      });
      if (t == 0) continue;
      // the error terms of all gates back through W_hh, onto ∂L/∂h_{t-1} (the running rows)
      if (small) {
        small_matmul_add<scalar_t>(D + off * 4 * H, W, DH + offsets[t - 1] * H, n, 4 * H, H);
      } else if (dnnl) {
        dh.narrow(0, offsets[t - 1], n).add_(linear(*onednn_linear(), delta.narrow(0, off, n), W_cols));
      } else {
        dh.narrow(0, offsets[t - 1], n).addmm_(delta.narrow(0, off, n), W_c);
      }
    }
  });
}

}  // namespace

TORCH_LIBRARY(rnnscope_lstm_kernel, m) {
  m.def("forward_loop(Tensor(a!) gates, Tensor h0, Tensor c0, Tensor W_hh_t, int[] sizes, Tensor(b!) c, "
        "Tensor(c!) tanh_c, Tensor(d!) h, Tensor(e!)? a_record, Tensor? bias, bool onednn) -> ()", &forward_loop);
  m.def("backward_loop(Tensor gates, Tensor c0, Tensor c, Tensor tanh_c, Tensor W_hh, int[] sizes, "
        "Tensor(a!) dh, Tensor(b!) dc, Tensor(c!) delta, Tensor(d!)? dc_record, bool onednn) -> ()", &backward_loop);
}
"""

# -O3 with the fast-math licence to vectorize exp and tanh (glibc's libmvec), compile only: the
# link step gets no -ffast-math, so loading the library leaves the process's float flags alone.
# The vector width is the one torch's own kernels picked on this CPU (the cache directory's name
# holds it, so a home directory shared by different machines keeps one build per kind of CPU).
_ISA_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma", "-mprefer-vector-width=512"],
    "AVX2": ["-mavx2", "-mfma"],
}
_ISA = torch.backends.cpu.get_cpu_capability()
_CFLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", *_ISA_FLAGS.get(_ISA, [])]
_LDFLAGS = ["-lmvec"]
_NAME = "rnnscope_lstm_kernel"

_lock = threading.Lock()
_state: dict[str, object] = {}  # "ops": the loaded operators, or "error": why there are none


def cache_dir() -> Path:
    """Where the compiled kernel lives: one directory per source, torch and Python version."""
    digest = hashlib.sha256("\0".join([_SOURCE, *_CFLAGS, *_LDFLAGS]).encode()).hexdigest()[:12]
    tag = f"torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}-{_ISA.lower()}-{digest}".replace("+", "_")
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "rnnscope" / "lstm_kernel" / tag


def wanted() -> bool:
    """False when RNNSCOPE_FUSED_LSTM asks for the pure-torch loop."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "off", "false", "no")


def _build():
    """Compile (or load the cached build of) the kernel; returns torch.ops.rnnscope_lstm_kernel."""
    directory = cache_dir()
    library = directory / f"{_NAME}.so"
    if not library.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # one build per machine: a second process waits here for the first one's library
        with filelock.FileLock(str(directory / "build.lock"), timeout=900):
            if not library.exists():
                _compile(directory)
    torch.ops.load_library(str(library))
    return torch.ops.rnnscope_lstm_kernel


def _compile(directory: Path) -> None:
    """Build the library into `directory`, saying so on one line of stderr (with the seconds it took)."""
    from torch.utils.cpp_extension import load_inline  # imports setuptools: only when building

    start = time.perf_counter()
    print(f"rnnscope: compiling the fused LSTM loop once into {directory} (half a minute to a minute) ...",
          end="", file=sys.stderr, flush=True)
    try:
        load_inline(_NAME, _SOURCE, is_python_module=False, build_directory=str(directory),
                    extra_cflags=_CFLAGS, extra_ldflags=_LDFLAGS)
    finally:
        print(f" {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def _first_error_line(error: Exception) -> str:
    """The line of a failed build's message that says what went wrong (the compiler's first error)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    compiler = [line for line in lines if "error:" in line]
    return (compiler or lines or [type(error).__name__])[0][:300]


def kernel(example: torch.Tensor):
    """The compiled loops (torch.ops.rnnscope_lstm_kernel) for tensors like `example`, or None:
    wrong device or dtype, RNNSCOPE_FUSED_LSTM=0, a TorchDispatchMode active, or no build possible
    (said once, on stderr)."""
    if example.device.type != "cpu" or example.dtype not in (torch.float32, torch.float64) or not wanted():
        return None
    if is_in_torch_dispatch_mode():  # a mode that sees (FlopCounterMode) or fakes every aten op: the torch loop
        return None
    if "ops" not in _state and "error" not in _state:
        with _lock:  # one thread builds, the others wait for it
            if "ops" not in _state and "error" not in _state:
                try:
                    _state["ops"] = _build()
                except Exception as error:  # no compiler, no ninja, a failed build: the torch loop runs
                    reason = _first_error_line(error)
                    _state["error"] = reason
                    print(f"rnnscope: the fused LSTM loop is not available ({reason}); using the pure-torch loop "
                          f"(set {ENV_VAR}=0 to skip trying)", file=sys.stderr, flush=True)
    return _state.get("ops")
