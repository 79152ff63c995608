// Standalone check of the native GEMM under sanitizers (see
// scripts/check-native-sanitizers.sh): random shapes, exact-size heap buffers
// so any overread or overwrite trips AddressSanitizer, every kernel, against a
// float64 reference; then the packed few-row product, the whole-sequence
// attention (with a mask and probabilities, and causal from each row's past
// without) and its gradient, the decoding and prefill layers, the merged
// q/k/v and gate/up kernels on exact-size buffers
// (their values are checked by the TypeScript tests), and the thread pool's
// task shares (each task handed out once, own share first). Not part of the
// addon build.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <random>
#include <thread>
#include "fused.h"
#include "gemm.h"
using namespace cream;
int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  ThreadPool pool(2);
  int bad = 0, runs = 0;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2Fma, Isa::kGeneric}) {
    if (!IsaSupported(isa)) continue;  // this CPU cannot run that kernel
    const int dims[] = {1, 2, 3, 5, 12, 13, 17, 31, 32, 33, 65, 100, 257, 300};
    for (int trial = 0; trial < 174; ++trial) {
      size_t m = dims[rng() % 14], n = dims[rng() % 14], k = dims[rng() % 14];
      size_t ba = 1 + rng() % 3, bb = (rng() % 2) ? 1 : ba; if (rng() % 3 == 0) std::swap(ba, bb);
      bool ta = rng() % 2, tb = rng() % 2;
      if (trial >= 150) {
        // Single tall products: op(B) packed once and shared by the threads,
        // with ragged last column and depth blocks.
        // The last two: A^T . B far deeper than wide, split across the threads by
        // depth (the wider one as C^T = B^T . A, transposed after).
        const size_t tall[6][3] = {{300, 100, 300}, {257, 65, 257}, {1100, 1030, 70}, {600, 33, 513}, {40, 30, 1100},
                                   {30, 70, 1100}};
        m = tall[trial % 6][0]; n = tall[trial % 6][1]; k = tall[trial % 6][2];
        ba = bb = 1; ta = (trial / 6) % 2; tb = (trial / 12) % 2;  // every shape with each transpose pair
      }
      size_t bt = std::max(ba, bb);
      // Exact-size heap buffers so any overread or overwrite trips ASan.
      float* a = (float*)malloc(sizeof(float) * ba * m * k);
      float* b = (float*)malloc(sizeof(float) * bb * k * n);
      float* c = (float*)malloc(sizeof(float) * bt * m * n);
      float* bias = (float*)malloc(sizeof(float) * n);
      for (size_t i = 0; i < ba * m * k; ++i) a[i] = u(rng);
      for (size_t i = 0; i < bb * k * n; ++i) b[i] = u(rng);
      for (size_t i = 0; i < n; ++i) bias[i] = u(rng);
      GemmProblem p; p.a = a; p.b = b; p.c = c; p.batch_a = ba; p.batch_b = bb; p.m = m; p.n = n; p.k = k; p.trans_a = ta; p.trans_b = tb;
      bool use_bias = rng() % 2; if (use_bias) { p.bias = bias; p.bias_len = n; p.activation = Activation::kRelu; }
      Gemm(p, isa, pool);
      double err = 0, scale = 0;
      for (size_t t = 0; t < bt; ++t) for (size_t i = 0; i < m; ++i) for (size_t j = 0; j < n; ++j) {
        double s = 0;
        for (size_t q = 0; q < k; ++q) {
          double av = ta ? a[(ba == 1 ? 0 : t) * m * k + q * m + i] : a[(ba == 1 ? 0 : t) * m * k + i * k + q];
          double bv = tb ? b[(bb == 1 ? 0 : t) * k * n + j * k + q] : b[(bb == 1 ? 0 : t) * k * n + q * n + j];
          s += av * bv;
        }
        if (use_bias) { s += bias[j]; s = s > 0 ? s : 0; }
        err = std::max(err, std::fabs(s - c[t * m * n + i * n + j])); scale = std::max(scale, std::fabs(s));
      }
      if (err > 1e-5 * std::max(scale, 1.0)) { ++bad; printf("BAD isa=%d %zu %zu %zu %zu %zu %d %d err=%g\n", (int)isa, ba, bb, m, n, k, ta, tb, err); }
      ++runs;
      free(a); free(b); free(c); free(bias);
    }
  }
  // Exact-size buffers for the fused kernels: values are the TypeScript tests' job, bounds are this one's.
  auto buffer = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
  };
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2Fma, Isa::kGeneric}) {
    if (!IsaSupported(isa)) continue;
    for (size_t m : {1, 7, 8, 9, 32}) {
      const size_t n = 37, k = 19;
      auto w = buffer(n * k), a = buffer(m * k), c = buffer(m * n);
      std::vector<float> packed(PackedPanelsSize(n, k));
      PackPanels(w.data(), n, k, packed.data());
      GemmPacked(a.data(), packed.data(), c.data(), m, n, k, isa, pool);
    }
    // Whole-sequence attention with grouped heads, a causal mask and a masked key, and its gradient.
    AttentionShape shape;
    shape.b = 2; shape.hq = 4; shape.hkv = 2; shape.t = 37; shape.s = 37; shape.dh = 10; shape.scale = 0.3f;
    const size_t qn = shape.b * shape.hq * shape.t * shape.dh, kvn = shape.b * shape.hkv * shape.s * shape.dh;
    const size_t pn = shape.b * shape.hq * shape.t * shape.s;
    auto q = buffer(qn), keys = buffer(kvn), values = buffer(kvn), out = buffer(qn), probs = buffer(pn), dy = buffer(qn);
    std::vector<float> mask(shape.b * shape.t * shape.s, 0.0f);
    for (size_t bi = 0; bi < shape.b; ++bi)
      for (size_t t = 0; t < shape.t; ++t)
        for (size_t j = 0; j < shape.s; ++j) if (j > t || (bi == 1 && j == 0 && t > 0)) mask[(bi * shape.t + t) * shape.s + j] = -1e9f;
    Attention(q.data(), keys.data(), values.data(), mask.data(), out.data(), probs.data(), nullptr, shape, isa, pool);
    auto dq = buffer(qn), dk = buffer(kvn), dv = buffer(kvn);
    AttentionGrad(dy.data(), q.data(), keys.data(), values.data(), probs.data(), nullptr, nullptr, dq.data(), dk.data(), dv.data(), shape, isa, pool);
    // The same with each query's log-sum-exp kept instead (the gradient computes the probabilities again).
    auto lse = buffer(shape.b * shape.hq * shape.t);
    Attention(q.data(), keys.data(), values.data(), mask.data(), out.data(), nullptr, lse.data(), shape, isa, pool);
    AttentionGrad(dy.data(), q.data(), keys.data(), values.data(), nullptr, mask.data(), lse.data(), dq.data(), dk.data(), dv.data(), shape, isa, pool);
    // One decoding step per layer: the cache written at each row's slot, the last slot included.
    DecodeLayerArgs d;
    d.b = 3; d.d = 24; d.hq = 4; d.hkv = 2; d.dh = 6; d.inter = 20; d.s = 9;
    const size_t positions = 9;
    auto x = buffer(d.b * d.d), y = buffer(d.b * d.d), n1 = buffer(d.d), n2 = buffer(d.d);
    auto cs = buffer(positions * d.dh / 2), sn = buffer(positions * d.dh / 2);
    auto kc = buffer(d.b * d.hkv * d.s * d.dh), vc = buffer(d.b * d.hkv * d.s * d.dh);
    auto pack = [&](size_t n, size_t k) {
      auto weight = buffer(n * k);
      std::vector<float> p(PackedPanelsSize(n, k));
      PackPanels(weight.data(), n, k, p.data());
      return p;
    };
    auto wq = pack(d.hq * d.dh, d.d), wk = pack(d.hkv * d.dh, d.d), wv = pack(d.hkv * d.dh, d.d), wo = pack(d.d, d.hq * d.dh);
    auto w1 = pack(d.inter, d.d), w3 = pack(d.inter, d.d), w2 = pack(d.d, d.inter);
    std::vector<int32_t> slots = {0, 4, 8};
    d.x = x.data(); d.out = y.data(); d.input_norm = n1.data(); d.post_norm = n2.data(); d.cos_table = cs.data(); d.sin_table = sn.data();
    d.keys = kc.data(); d.values = vc.data(); d.wq = wq.data(); d.wk = wk.data(); d.wv = wv.data(); d.wo = wo.data();
    d.w1 = w1.data(); d.w3 = w3.data(); d.w2 = w2.data(); d.slots = slots.data();
    DecodeLayer(d, isa, pool);
    // The same layer for 5 tokens per row (plain and packed weights), the
    // last row's last token in the cache's last slot.
    auto plain = [&](size_t n, size_t k) { return buffer(n * k); };
    auto pq = plain(d.hq * d.dh, d.d), pk = plain(d.hkv * d.dh, d.d), pv = plain(d.hkv * d.dh, d.d), po = plain(d.d, d.hq * d.dh);
    auto p1 = plain(d.inter, d.d), p3 = plain(d.inter, d.d), p2 = plain(d.d, d.inter);
    DecodeLayerArgs f = d;
    f.t = 5;
    std::vector<int32_t> starts = {0, 4, 2};
    auto fx = buffer(d.b * f.t * d.d), fy = buffer(d.b * f.t * d.d);
    f.x = fx.data(); f.out = fy.data(); f.slots = starts.data();
    f.packed_wq = wq.data(); f.packed_wk = wk.data(); f.packed_wv = wv.data(); f.packed_wo = wo.data();
    f.packed_w1 = w1.data(); f.packed_w3 = w3.data(); f.packed_w2 = w2.data();
    f.wq = pq.data(); f.wk = pk.data(); f.wv = pv.data(); f.wo = po.data(); f.w1 = p1.data(); f.w3 = p3.data(); f.w2 = p2.data();
    PrefillLayer(f, isa, pool);
    // Both again with the q/k/v and o biases and the q/k head norms (Qwen2, Qwen3).
    auto bq = buffer(d.hq * d.dh), bk = buffer(d.hkv * d.dh), bv = buffer(d.hkv * d.dh), bo = buffer(d.d);
    auto qn_w = buffer(d.dh), kn_w = buffer(d.dh);
    for (DecodeLayerArgs* e : {&d, &f}) {
      e->bq = bq.data(); e->bk = bk.data(); e->bv = bv.data(); e->bo = bo.data(); e->q_norm = qn_w.data(); e->k_norm = kn_w.data();
    }
    DecodeLayer(d, isa, pool);
    PrefillLayer(f, isa, pool);
    // Attention without a mask or probabilities, causal from each row's past,
    // 40-wide heads (AVX2: a 24-wide strip of 4-row tiles and a 16-wide one;
    // AVX-512: a masked last chunk) and keys past a multiple of 16; then with
    // probabilities, and its gradient.
    AttentionShape c;
    c.b = 2; c.hq = 2; c.hkv = 1; c.t = 21; c.s = 27; c.dh = 40; c.scale = 0.2f;
    std::vector<int32_t> past = {6, 3};
    c.past = past.data();
    auto cq = buffer(c.b * c.hq * c.t * c.dh), ck = buffer(c.b * c.hkv * c.s * c.dh), cv = buffer(c.b * c.hkv * c.s * c.dh);
    auto co = buffer(c.b * c.hq * c.t * c.dh);
    Attention(cq.data(), ck.data(), cv.data(), nullptr, co.data(), nullptr, nullptr, c, isa, pool);
    auto cp = buffer(c.b * c.hq * c.t * c.s), cdy = buffer(c.b * c.hq * c.t * c.dh);
    Attention(cq.data(), ck.data(), cv.data(), nullptr, co.data(), cp.data(), nullptr, c, isa, pool);
    auto cdq = buffer(c.b * c.hq * c.t * c.dh), cdk = buffer(c.b * c.hkv * c.s * c.dh), cdv = buffer(c.b * c.hkv * c.s * c.dh);
    AttentionGrad(cdy.data(), cq.data(), ck.data(), cv.data(), cp.data(), nullptr, nullptr, cdq.data(), cdk.data(), cdv.data(), c, isa, pool);
    // Causal within packed segments (starts): row 0's segments from slots 6,
    // 6 + 19 = 25 (keys from a 16-key chunk on), row 1's from 3 and 3 + 17;
    // with probabilities, and the gradient that skips the same chunks.
    std::vector<int32_t> seg_starts(c.b * c.t);
    for (size_t t = 0; t < c.t; ++t) {
      seg_starts[t] = t < 19 ? 6 : 25;
      seg_starts[c.t + t] = t < 17 ? 3 : 20;
    }
    c.starts = seg_starts.data();
    Attention(cq.data(), ck.data(), cv.data(), nullptr, co.data(), nullptr, nullptr, c, isa, pool);
    Attention(cq.data(), ck.data(), cv.data(), nullptr, co.data(), cp.data(), nullptr, c, isa, pool);
    AttentionGrad(cdy.data(), cq.data(), ck.data(), cv.data(), cp.data(), nullptr, nullptr, cdq.data(), cdk.data(), cdv.data(), c, isa, pool);
    auto clse = buffer(c.b * c.hq * c.t);  // and with the log-sum-exp kept instead
    Attention(cq.data(), ck.data(), cv.data(), nullptr, co.data(), nullptr, clse.data(), c, isa, pool);
    AttentionGrad(cdy.data(), cq.data(), ck.data(), cv.data(), nullptr, nullptr, clse.data(), cdq.data(), cdk.data(), cdv.data(), c, isa, pool);
    c.starts = nullptr;
    // A merged q/k/v projection each way, and merged gate/up with its gradient.
    const size_t qb = 2, qt = 7, qhq = 4, qhkv = 2, qdh = 6;
    auto qkv = buffer(qb * qt * (qhq + 2 * qhkv) * qdh), hq = buffer(qb * qhq * qt * qdh), hk = buffer(qb * qhkv * qt * qdh);
    auto hv = buffer(qb * qhkv * qt * qdh), qc = buffer(qb * qt * qdh / 2), qs = buffer(qb * qt * qdh / 2);
    QkvHeads(qkv.data(), hq.data(), hk.data(), hv.data(), qc.data(), qs.data(), qb, qt, qhq, qhkv, qdh, false, pool);
    QkvHeads(qkv.data(), hq.data(), hk.data(), hv.data(), qc.data(), qs.data(), qb, qt, qhq, qhkv, qdh, true, pool);
    // Attention read from that projection (grouped heads, causal from past 0,
    // more tokens than the gather's prefetch distance) and its gradient into dqkv.
    AttentionShape mq;
    mq.b = 2; mq.hq = 4; mq.hkv = 2; mq.t = 23; mq.s = 23; mq.dh = 6; mq.scale = 0.4f;
    std::vector<int32_t> no_past = {0, 0};
    mq.past = no_past.data();
    auto mqkv = buffer(mq.b * mq.t * (mq.hq + 2 * mq.hkv) * mq.dh), mcos = buffer(mq.b * mq.t * mq.dh / 2);
    auto msin = buffer(mq.b * mq.t * mq.dh / 2), mo = buffer(mq.b * mq.t * mq.hq * mq.dh), mdy = buffer(mq.b * mq.t * mq.hq * mq.dh);
    auto mp = buffer(mq.b * mq.hq * mq.t * mq.s), mdqkv = buffer(mq.b * mq.t * (mq.hq + 2 * mq.hkv) * mq.dh);
    mq.cos = mcos.data(); mq.sin = msin.data();
    Attention(mqkv.data(), mqkv.data(), mqkv.data(), nullptr, mo.data(), mp.data(), nullptr, mq, isa, pool);
    AttentionGrad(mdy.data(), mqkv.data(), mqkv.data(), mqkv.data(), mp.data(), nullptr, nullptr, mdqkv.data(), mdqkv.data(), mdqkv.data(), mq, isa, pool);
    auto mlse = buffer(mq.b * mq.hq * mq.t);
    Attention(mqkv.data(), mqkv.data(), mqkv.data(), nullptr, mo.data(), nullptr, mlse.data(), mq, isa, pool);
    AttentionGrad(mdy.data(), mqkv.data(), mqkv.data(), mqkv.data(), nullptr, nullptr, mlse.data(), mdqkv.data(), mdqkv.data(), mdqkv.data(), mq, isa, pool);
    auto gu = buffer(9 * 2 * 13), act = buffer(9 * 13), dgu = buffer(9 * 2 * 13);
    SwiGluMerged(gu.data(), act.data(), 9, 13, pool);
    SwiGluMergedGrad(gu.data(), act.data(), dgu.data(), 9, 13, pool);
    // The residual add with the norm after it, and its gradient with and
    // without the residual's own (threaded: more than kParallelValues values).
    const size_t nr = 131, nd = 257;
    auto rx = buffer(nr * nd), ry = buffer(nr * nd), rw = buffer(nd), rh = buffer(nr * nd), rn = buffer(nr * nd);
    auto rdy = buffer(nr * nd), rdh = buffer(nr * nd), rdx = buffer(nr * nd), rdw = buffer(nd);
    AddRmsNorm(rx.data(), ry.data(), rw.data(), rh.data(), rn.data(), nr, nd, 1e-6f, pool);
    RmsNormGrad(rh.data(), rw.data(), rdy.data(), rdh.data(), rdx.data(), rdw.data(), nr, nd, 1e-6f, pool);
    RmsNormGrad(rh.data(), rw.data(), rdy.data(), nullptr, rdx.data(), rdw.data(), 3, nd, 1e-6f, pool);
    // Sums of squares over spans of several sizes, one past a chunk, threaded.
    const float* list_spans[3] = {rx.data(), ry.data() + 1, rw.data()};
    const size_t list_sizes[3] = {nr * nd, nr * nd - 1, nd};
    if (!(SumSquaresList(list_spans, list_sizes, 3, pool) > 0.0)) ++bad;
    // A scatter-add of rows, repeated indices, threaded (more than kParallelValues values).
    std::vector<int32_t> scatter_rows(nr);
    for (size_t i = 0; i < nr; ++i) scatter_rows[i] = static_cast<int32_t>((i * 7) % 61);
    auto scattered = buffer(61 * nd);
    ScatterAddRows(scatter_rows.data(), rx.data(), scattered.data(), nr, 61, nd, pool);
    runs += 15;
  }
  // Task shares, one thread asking for everything: its own share front to
  // back, then the others' shares each from its end.
  for (size_t parts = 1; parts <= 3; ++parts) {
    for (size_t tasks : {0, 1, 2, 7, 15, 64}) {
      for (size_t asker = 0; asker < parts; ++asker) {
        ++runs;
        TaskShares shares(tasks, parts);
        std::vector<size_t> expected;
        for (size_t t = tasks * asker / parts; t < tasks * (asker + 1) / parts; ++t) expected.push_back(t);
        for (size_t step = 1; step < parts; ++step) {
          const size_t other = (asker + step) % parts;
          for (size_t t = tasks * (other + 1) / parts; t > tasks * other / parts; --t) expected.push_back(t - 1);
        }
        std::vector<size_t> got;
        size_t task;
        while (shares.Next(asker, &task) && got.size() <= tasks) got.push_back(task);
        if (got != expected) { ++bad; printf("BAD task shares order: %zu tasks, %zu parts, asker %zu\n", tasks, parts, asker); }
      }
    }
  }
  // Task shares under contention: every task exactly once.
  for (size_t parts = 2; parts <= 4; ++parts) {
    for (int trial = 0; trial < 20; ++trial) {
      ++runs;
      const size_t tasks = 1 + rng() % 300;
      TaskShares shares(tasks, parts);
      std::vector<std::atomic<int>> taken(tasks);
      std::vector<std::thread> threads;
      for (size_t i = 0; i < parts; ++i) {
        threads.emplace_back([&, i] {
          size_t task;
          while (shares.Next(i, &task)) taken[task].fetch_add(1);
        });
      }
      for (auto& thread : threads) thread.join();
      for (size_t t = 0; t < tasks; ++t) {
        if (taken[t].load() != 1) { ++bad; printf("BAD task shares: task %zu of %zu taken %d times\n", t, tasks, taken[t].load()); break; }
      }
    }
  }
  printf("%d runs, %d bad\n", runs, bad);
  return bad != 0;
}
