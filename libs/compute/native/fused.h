// Fused fp32 kernels of a Llama-family decoder step, forward and backward:
// RMSNorm, SwiGLU, rotary embedding (with the move of heads in front of
// tokens), the scaled and masked softmax of attention, log-softmax with a
// target gather, and the AdamW update. Each is one pass (or two) over its
// rows, split across the pool when the work is large enough to pay for it.
// All arrays are row-major; outputs never alias inputs.
#ifndef CREAM_COMPUTE_FUSED_H_
#define CREAM_COMPUTE_FUSED_H_

#include <cstddef>
#include <cstdint>

#include "gemm.h"
#include "thread-pool.h"

namespace cream {

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, rows of d values.
void RmsNormForward(const float* x, const float* w, float* out, size_t rows, size_t d, float eps, ThreadPool& pool);
// dx of RmsNormForward given dy.
void RmsNormGradX(const float* x, const float* w, const float* dy, float* dx, size_t rows, size_t d, float eps,
                  ThreadPool& pool);
// dw[j] = sum over rows of dy * x / rms.
void RmsNormGradW(const float* x, const float* dy, float* dw, size_t rows, size_t d, float eps, ThreadPool& pool);
// h = x + y and out = RmsNormForward(h): a residual add and the norm after it, in one pass.
void AddRmsNorm(const float* x, const float* y, const float* w, float* h, float* out, size_t rows, size_t d, float eps,
                ThreadPool& pool);
// RmsNormGradX's dx plus addend (nullptr: none) unless dx is nullptr, and
// RmsNormGradW's dw, in one pass over x and dy (AddRmsNorm's gradient, addend
// the gradient of h from later layers).
void RmsNormGrad(const float* x, const float* w, const float* dy, const float* addend, float* dx, float* dw,
                 size_t rows, size_t d, float eps, ThreadPool& pool);

// out = silu(gate) * up over n values.
void SwiGlu(const float* gate, const float* up, float* out, size_t n, ThreadPool& pool);
// dgate = dy * up * silu'(gate).
void SwiGluGradGate(const float* gate, const float* up, const float* dy, float* dgate, size_t n, ThreadPool& pool);
// dup = dy * silu(gate).
void SwiGluGradUp(const float* gate, const float* dy, float* dup, size_t n, ThreadPool& pool);

// Rotate-half rotary embedding. Forward: x [b, t, h, dh] -> out [b, h, t, dh],
// (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) with c, s [b, t, dh / 2]. With
// `backward`, x is the gradient [b, h, t, dh] and out [b, t, h, dh] is it
// rotated back (the transpose of the forward map).
void RotaryHeads(const float* x, const float* cos, const float* sin, float* out, size_t b, size_t t, size_t h,
                 size_t dh, bool backward, ThreadPool& pool);

// out[b, h, i, :] = softmax(scores[b, h, i, :] * scale + mask[b, i, :]) over
// s keys; mask may be null.
void MaskedSoftmax(const float* scores, const float* mask, float* out, size_t b, size_t h, size_t t, size_t s,
                   float scale, ThreadPool& pool);
// Attention of one query token per sequence over its cached keys and values
// (a decoding step): q [b, hq, dh], keys and values [b, hkv, s, dh] (query
// head h reads kv head h / (hq / hkv)), mask [b, s] added to the scaled
// scores (nullptr: none); out [b, hq * dh]. Slots masked with -1e8 or less
// are skipped: their probability is 0, as in MaskedSoftmax.
void DecodeAttention(const float* q, const float* keys, const float* values, const float* mask, float* out, size_t b,
                     size_t hq, size_t hkv, size_t s, size_t dh, float scale, ThreadPool& pool);
// A transpose that keeps the last axis: x [dims[0], dims[1], dims[2], chunk]
// to out with the leading axes in order perm (a permutation of 0, 1, 2), one
// memcpy of `chunk` floats per output row.
void PermuteChunks(const float* x, float* out, const size_t dims[3], const size_t perm[3], size_t chunk,
                   ThreadPool& pool);
// out = a + b elementwise, n values.
void AddSame(const float* a, const float* b, float* out, size_t n, ThreadPool& pool);
// out [rows, width] = 0, then out[indices[i]] += updates[i] for each row i of
// updates [m, width], in i's order (a gather's gradient: repeated indices add
// up). Indices must lie in [0, rows) (the caller checks). Split across the pool
// by rows of out, each part scanning every index: the same sums on any thread count.
void ScatterAddRows(const int32_t* indices, const float* updates, float* out, size_t m, size_t rows, size_t width,
                    ThreadPool& pool);
// dscores = scale * p * (dy - sum(dy * p)) per row of s, from the softmax output p.
void MaskedSoftmaxGrad(const float* probs, const float* dy, float* dx, size_t rows, size_t s, float scale,
                       ThreadPool& pool);

// out[r] = logits[r, target[r]] - logsumexp(logits[r]); rows of v values.
void LogSoftmaxGather(const float* logits, const int32_t* targets, float* out, size_t rows, size_t v,
                      ThreadPool& pool);
// dlogits[r] = dy[r] * (onehot(target[r]) - softmax(logits[r])).
void LogSoftmaxGatherGrad(const float* logits, const int32_t* targets, const float* dy, float* dlogits, size_t rows,
                          size_t v, ThreadPool& pool);

// One AdamW update (PyTorch's order: decay, moments, bias-corrected step).
struct AdamWStep {
  float beta1, beta2, epsilon;
  float decay_factor;           // 1 - lr * weight_decay
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float gradient_scale = 1.0f;  // g is used as g * gradient_scale (gradient clipping)
};
void AdamWUpdate(const float* p, const float* m, const float* v, const float* g, float* p_out, float* m_out,
                 float* v_out, size_t n, const AdamWStep& step, ThreadPool& pool);

// sum of x[i]^2 over n values (a gradient's share of the global norm): SumSquaresList of one span.
double SumSquares(const float* x, size_t n, ThreadPool& pool);
// sum(x^2) over every value of `count` spans (spans[i] holding sizes[i]
// floats), as one vector: chunks of 4096 summed in float lanes, the chunk sums
// added in double in list order, whatever the thread count. One pass of the
// pool for all of them (a global gradient norm over many weights).
double SumSquaresList(const float* const* spans, const size_t* sizes, size_t count, ThreadPool& pool);

// One Llama decoder layer for one new token per sequence (a decoding step),
// start to end in one call: RMSNorm, q/k/v products (and biases, and q/k
// head norms, when given), rotary at each
// sequence's position, the new key and value written into the cache at that
// slot, attention over slots 0..slot, the output product and residual,
// RMSNorm, the SwiGLU MLP and residual. The same arithmetic, in the same
// order, as the layer's separate kernels (RmsNormForward, GemmPacked,
// RotaryHeads, DecodeAttention, SwiGlu). Weights are PackPanels copies.
struct DecodeLayerArgs {
  const float* x = nullptr;            // [b, d]
  float* out = nullptr;                // [b, d]
  const float* input_norm = nullptr;   // [d]
  const float* post_norm = nullptr;    // [d]
  const float* cos_table = nullptr;    // [positions, dh / 2]
  const float* sin_table = nullptr;    // [positions, dh / 2]
  float* keys = nullptr;               // [b, hkv, s, dh], written at each row's slot
  float* values = nullptr;             // [b, hkv, s, dh]
  const float* wq = nullptr;           // packed [hq * dh, d]
  const float* wk = nullptr;           // packed [hkv * dh, d]
  const float* wv = nullptr;           // packed [hkv * dh, d]
  const float* wo = nullptr;           // packed [d, hq * dh]
  const float* w1 = nullptr;           // packed [inter, d] (gate)
  const float* w3 = nullptr;           // packed [inter, d] (up)
  const float* w2 = nullptr;           // packed [d, inter] (down)
  // PrefillLayer: wq .. w2 above are the plain weights, these their packed copies.
  const float* packed_wq = nullptr;
  const float* packed_wk = nullptr;
  const float* packed_wv = nullptr;
  const float* packed_wo = nullptr;
  const float* packed_w1 = nullptr;
  const float* packed_w3 = nullptr;
  const float* packed_w2 = nullptr;
  // Optional (nullptr: none): q/k/v biases added to the products (Qwen2;
  // Llama and Qwen3 with attention_bias), an o_proj bias added before the
  // residual, and an RMSNorm of each query and key head before the rotation
  // (Qwen3's q_norm and k_norm, both or neither).
  const float* bq = nullptr;           // [hq * dh]
  const float* bk = nullptr;           // [hkv * dh]
  const float* bv = nullptr;           // [hkv * dh]
  const float* bo = nullptr;           // [d]
  const float* q_norm = nullptr;       // [dh]
  const float* k_norm = nullptr;       // [dh]
  const int32_t* slots = nullptr;      // [b]: cache slot = rotary position of the new token
  size_t b = 0, d = 0, hq = 0, hkv = 0, dh = 0, inter = 0, s = 0;
  size_t t = 1;  // tokens per sequence: 1 for DecodeLayer
  float eps = 1e-6f;
};
void DecodeLayer(const DecodeLayerArgs& args, Isa isa, ThreadPool& pool);
// The same layer for t tokens per sequence (prefill, scoring; t = args.t):
// token i of sequence b at slot and position slots[b] + i, attending slots
// 0 .. slots[b] + i. x and out are [b * t, d]; the weights come plain [out, in]
// and packed: products of up to 512 rows read the packed copies
// (GemmPacked), larger ones the plain weights (Gemm). The same kernels in the same
// order as the layer's separate ops (RmsNormForward, Gemm, RotaryHeads,
// Attention, SwiGlu, AddSame). Its activations stay allocated per thread
// between calls, up to 64 MiB (a larger pass frees them at its end).
void PrefillLayer(const DecodeLayerArgs& args, Isa isa, ThreadPool& pool);

// A merged q/k/v projection qkv [b, t, (hq + 2 hkv) dh] to q and k rotated
// (RotaryHeads' arithmetic, cos and sin [b, t, dh / 2]) and v, each heads first
// [b, h, t, dh]; backward, dq, dk and dv (q and k rotated back) to dqkv.
void QkvHeads(float* qkv, float* q, float* k, float* v, const float* cos, const float* sin, size_t b, size_t t,
              size_t hq, size_t hkv, size_t dh, bool backward, ThreadPool& pool);
// A merged gate/up projection [rows, 2 inter] (gate first) to silu(gate) * up
// [rows, inter] (SwiGlu's arithmetic), and its gradient d_gate_up [rows, 2 inter].
void SwiGluMerged(const float* gate_up, float* out, size_t rows, size_t inter, ThreadPool& pool);
void SwiGluMergedGrad(const float* gate_up, const float* dy, float* d_gate_up, size_t rows, size_t inter,
                      ThreadPool& pool);

// Attention over whole sequences (training, prefill, scoring), one (sequence,
// query head) at a time so that its scores stay in cache: q [b, hq, t, dh],
// keys and values [b, hkv, s, dh], mask [b, t, s] added to the scaled scores
// (nullptr: none); out [b, t, hq * dh] (tokens first). For the gradient
// (both nullptr in a pass with no gradient) either probs [b, hq, t, s], each
// row whole (zeros at keys it does not attend), or lse [b, hq, t], each
// query's log-sum-exp of its scaled, masked scores: the gradient then
// computes the probabilities again, and nothing [t, s] is kept between the
// passes. The products are register-tiled AVX-512 or AVX2 ones for heads up
// to 128 wide, else the GEMM's.
struct AttentionShape {
  size_t b = 0, hq = 0, hkv = 0, t = 0, s = 0, dh = 0;
  float scale = 1.0f;
  // Without a mask: nullptr attends every key; else query t of sequence b
  // attends slots 0 .. past[b] + t (causal, the queries at slots past[b]..).
  const int32_t* past = nullptr;
  // With past, no mask: query t of sequence b attends slots starts[b t + t]
  // .. past[b] + t only (sequences packed in a row, each a segment of its
  // own); whole 16-key chunks before a block's first attended key are
  // skipped. nullptr: from slot 0.
  const int32_t* starts = nullptr;
  // Set: q, keys and values are one merged projection qkv [b, t, (hq + 2 hkv)
  // dh] tokens first (s == t), q and k rotated while they are read (QkvHeads'
  // arithmetic, cos and sin [b, t, dh / 2]); the gradient's dq, dk and dv are
  // one dqkv of the same layout, q and k rotated back. No heads-first copies
  // are written.
  const float* cos = nullptr;
  const float* sin = nullptr;
};
void Attention(const float* q, const float* keys, const float* values, const float* mask, float* out, float* probs,
               float* lse, const AttentionShape& shape, Isa isa, ThreadPool& pool);
// Its gradient from dy [b, t, hq * dh] and the forward pass's kept probs, or
// (probs nullptr) its lse with the same mask and shape (past, starts): dq
// [b, hq, t, dh], dk and dv [b, hkv, s, dh] (summed over the query heads that
// share a kv head).
void AttentionGrad(const float* dy, const float* q, const float* keys, const float* values, const float* probs,
                   const float* mask, const float* lse, float* dq, float* dk, float* dv, const AttentionShape& shape,
                   Isa isa, ThreadPool& pool);

}  // namespace cream

#endif  // CREAM_COMPUTE_FUSED_H_
