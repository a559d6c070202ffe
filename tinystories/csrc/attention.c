/* Causal attention for small heads on a CPU, forward and backward, that never writes the (T, T) weights to memory.
   One (batch, head) at a time: its keys and values, turned into columns, stay in the core's cache; each query row's scores
   live in vector registers, W keys at a time. Scores are in base 2 (the caller folds log2(e) into the scale), so the
   exponential is 2^x. Backward recomputes the weights from the row's log-sum-exp that forward saved. */
#include "simd.h"
#include "attention.h"

static inline vi upto(int64_t j0, int64_t i) {  /* the lanes whose key j0 + lane a query i may see */
    vi lane; for (int l = 0; l < W; l++) lane[l] = l;
    return (lane + (int32_t)j0) <= (int32_t)i;
}

static inline float *at(view x, int64_t bh, int64_t H) { return x.p + bh / H * x.sb + bh % H * x.sh; }

/* x (T, D) -> columns xt (D, TP), zero from T to TP, so that W keys sit side by side in one vector */
static void to_columns(const float *x, int64_t st, float *xt, int64_t T, int64_t TP, int D) {
    for (int d = 0; d < D; d++) {
        for (int64_t t = 0; t < T; t++) xt[d*TP + t] = x[t*st + d];
        for (int64_t t = T; t < TP; t++) xt[d*TP + t] = 0;
    }
}

/* Rows of queries at once share each load of keys and values: more rows, fewer loads, but R * D accumulators must fit in registers */
#define ROWS(D) ((D) <= 8 ? 4 : (D) <= 16 ? 2 : 1)

/* R query rows i0.. (scaled queries qs): p = 2^(s - m[r]) for the keys up to each row; l[r] = sum of p, acc[r][d] = sum of p v */
static inline __attribute__((always_inline)) void rows_forward(const float *qs, const float *K, const float *V, int64_t i0, int64_t TP,
                                                              const int D, const int R, const float *m, float *l, float *acc) {
    int64_t last = (i0 + R - 1) / W * W;
    vf lv[R], av[R][D];
    for (int r = 0; r < R; r++) { lv[r] = (vf){}; for (int d = 0; d < D; d++) av[r][d] = (vf){}; }
    for (int64_t j = 0; j <= last; j += W) {
        vf p[R];
        for (int r = 0; r < R; r++) {
            vf s = splat(qs[r*D]) * load(K + j) - splat(m[r]);
            for (int d = 1; d < D; d++) s += splat(qs[r*D + d]) * load(K + d*TP + j);
            p[r] = vexp2(s);
            if (j + W > i0 + r) p[r] = (vf)((vi)p[r] & upto(j, i0 + r));
            lv[r] += p[r];
        }
        for (int d = 0; d < D; d++) { vf vd = load(V + d*TP + j); for (int r = 0; r < R; r++) av[r][d] += p[r] * vd; }
    }
    for (int r = 0; r < R; r++) { l[r] = hsum(lv[r]); for (int d = 0; d < D; d++) acc[r*D + d] = hsum(av[r][d]); }
}

static inline __attribute__((always_inline)) void block_forward(const float *Q, int64_t sq, const float *K, const float *V, const float *kmax,
        const float *kmin, float *O, int64_t so, float *lse, int64_t i0, int64_t TP, const int D, const int R, float scale) {
    float qs[R*D], m[R], l[R], acc[R*D];
    for (int r = 0; r < R; r++) {  /* m: a bound on the row's scores from the keys' extremes, instead of a pass to find their maximum */
        m[r] = 0;
        for (int d = 0; d < D; d++) { float x = Q[(i0+r)*sq + d] * scale; qs[r*D + d] = x; m[r] += x * (x > 0 ? kmax[d] : kmin[d]); }
    }
    rows_forward(qs, K, V, i0, TP, D, R, m, l, acc);
    for (int r = 0; r < R; r++) {
        if (!(l[r] > 1e-10f)) {  /* the bound so far above every score that the weights vanish: take the row's maximum after all */
            float mr = -INFINITY;
            for (int64_t j = 0; j <= i0 + r; j++) { float s = 0; for (int d = 0; d < D; d++) s += qs[r*D + d] * K[d*TP + j]; mr = s > mr ? s : mr; }
            m[r] = mr;
            rows_forward(qs + r*D, K, V, i0 + r, TP, D, 1, m + r, l + r, acc + r*D);
        }
        for (int d = 0; d < D; d++) O[(i0+r)*so + d] = acc[r*D + d] / l[r];
        lse[i0 + r] = m[r] + log2f(l[r]);
    }
}

static inline __attribute__((always_inline)) int forward_d(view q, view k, view v, view o, float *lse, int64_t H, int64_t T, const int D,
                                                          float scale, int64_t bh0, int64_t bh1) {
    int64_t TP = (T + W - 1) / W * W;
    float *K = malloc(2 * D * TP * sizeof(float)), *V = K + D*TP;
    if (!K) return 1;
    for (int64_t bh = bh0; bh < bh1; bh++) {
        to_columns(at(k, bh, H), k.st, K, T, TP, D); to_columns(at(v, bh, H), v.st, V, T, TP, D);
        float kmax[D], kmin[D];
        for (int d = 0; d < D; d++) {
            kmax[d] = kmin[d] = K[d*TP];
            for (int64_t t = 1; t < T; t++) { float x = K[d*TP + t]; kmax[d] = x > kmax[d] ? x : kmax[d]; kmin[d] = x < kmin[d] ? x : kmin[d]; }
        }
        const float *Q = at(q, bh, H); float *O = at(o, bh, H);
        int64_t i = 0;
        for (; i + ROWS(D) <= T; i += ROWS(D)) block_forward(Q, q.st, K, V, kmax, kmin, O, o.st, lse + bh*T, i, TP, D, ROWS(D), scale);
        for (; i < T; i++) block_forward(Q, q.st, K, V, kmax, kmin, O, o.st, lse + bh*T, i, TP, D, 1, scale);
    }
    free(K);
    return 0;
}

/* R query rows i0..: their weights again from lse, then dV += p dO, dK += ds q, dQ = ds K with ds = p (dO.v - delta) / sqrt(D) */
static inline __attribute__((always_inline)) void rows_backward(const float *Q, int64_t sq, const float *dO, int64_t sdo, const float *lse,
        const float *delta, float *dQ, int64_t sdq, const float *K, const float *V, float *dK, float *dV, int64_t i0, int64_t TP,
        const int D, const int R, float scale) {
    float qs[R][D], g[R][D]; vf accq[R][D], li[R], di[R], sc = splat(scale / 1.44269504088896341f);
    for (int r = 0; r < R; r++) {
        for (int d = 0; d < D; d++) { qs[r][d] = Q[(i0+r)*sq + d] * scale; g[r][d] = dO[(i0+r)*sdo + d]; accq[r][d] = (vf){}; }
        li[r] = splat(lse[i0+r]); di[r] = splat(delta[i0+r]);
    }
    int64_t last = (i0 + R - 1) / W * W;
    for (int64_t j = 0; j <= last; j += W) {
        vf p[R], ds[R];
        for (int r = 0; r < R; r++) {
            vf s = splat(qs[r][0]) * load(K + j) - li[r], dp = splat(g[r][0]) * load(V + j) - di[r];
            for (int d = 1; d < D; d++) { s += splat(qs[r][d]) * load(K + d*TP + j); dp += splat(g[r][d]) * load(V + d*TP + j); }
            p[r] = vexp2(s);
            if (j + W > i0 + r) p[r] = (vf)((vi)p[r] & upto(j, i0 + r));
            ds[r] = p[r] * dp * sc;
        }
        for (int d = 0; d < D; d++) {
            vf kd = load(K + d*TP + j), dv = load(dV + d*TP + j), dk = load(dK + d*TP + j);
            for (int r = 0; r < R; r++) { dv += p[r] * splat(g[r][d]); dk += ds[r] * splat(Q[(i0+r)*sq + d]); accq[r][d] += ds[r] * kd; }
            store(dV + d*TP + j, dv); store(dK + d*TP + j, dk);
        }
    }
    for (int r = 0; r < R; r++) for (int d = 0; d < D; d++) dQ[(i0+r)*sdq + d] = hsum(accq[r][d]);
}

static inline __attribute__((always_inline)) int backward_d(view q, view k, view v, view o, view dout, view dq, view dk, view dv,
        const float *lse, int64_t H, int64_t T, const int D, float scale, int64_t bh0, int64_t bh1) {
    int64_t TP = (T + W - 1) / W * W;
    float *K = malloc((4 * D * TP + T) * sizeof(float)), *V = K + D*TP, *dK = V + D*TP, *dV = dK + D*TP, *delta = dV + D*TP;
    if (!K) return 1;
    for (int64_t bh = bh0; bh < bh1; bh++) {
        const float *Q = at(q, bh, H), *O = at(o, bh, H), *dO = at(dout, bh, H);
        to_columns(at(k, bh, H), k.st, K, T, TP, D); to_columns(at(v, bh, H), v.st, V, T, TP, D);
        memset(dK, 0, 2 * D * TP * sizeof(float));
        for (int64_t i = 0; i < T; i++) { float s = 0; for (int d = 0; d < D; d++) s += dO[i*dout.st + d] * O[i*o.st + d]; delta[i] = s; }
        float *dQ = at(dq, bh, H);
        int64_t i = 0;
        for (; i + ROWS(D) <= T; i += ROWS(D)) rows_backward(Q, q.st, dO, dout.st, lse + bh*T, delta, dQ, dq.st, K, V, dK, dV, i, TP, D, ROWS(D), scale);
        for (; i < T; i++) rows_backward(Q, q.st, dO, dout.st, lse + bh*T, delta, dQ, dq.st, K, V, dK, dV, i, TP, D, 1, scale);
        float *dKo = at(dk, bh, H), *dVo = at(dv, bh, H);
        for (int64_t t = 0; t < T; t++) for (int d = 0; d < D; d++) { dKo[t*dk.st + d] = dK[d*TP + t]; dVo[t*dv.st + d] = dV[d*TP + t]; }
    }
    free(K);
    return 0;
}

/* Head sizes the presets use get code written for their size; any other size takes the general code */
#define BY_HEAD_SIZE(call) switch (D) { case 4: return call(4); case 8: return call(8); case 16: return call(16); case 32: return call(32); default: return call(D); }

/* t = (q, k, v, o): o = softmax(q k^T scale, causal) v for batch-heads bh0..bh1-1, scale in base 2; lse (B*H, T) in base 2. 0, or 1 out of memory */
int attention_forward(view *t, float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t bh0, int64_t bh1) {
#define FORWARD(d) forward_d(t[0], t[1], t[2], t[3], lse, H, T, d, scale, bh0, bh1)
    BY_HEAD_SIZE(FORWARD)
}
/* t = (q, k, v, o, dout, dq, dk, dv): the gradients dq, dk, dv of forward's o for the gradient dout */
int attention_backward(view *t, const float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t bh0, int64_t bh1) {
#define BACKWARD(d) backward_d(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], lse, H, T, d, scale, bh0, bh1)
    BY_HEAD_SIZE(BACKWARD)
}

/* All n batch-heads, cut into `threads` ranges as the caller would cut them. Built with OpenMP (-fopenmp), the ranges go to
   OpenMP's threads: where that is the runtime torch runs, they are torch's own threads, so none of them spins idle beside ours.
   Built without it, the loop runs on one thread, and the caller splits the work itself (parallel_by_openmp says which). */
int parallel_by_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
int attention_forward_all(view *t, float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t n, int64_t threads) {
    int failed = 0;
    #pragma omp parallel for num_threads(threads) schedule(static) reduction(|:failed)
    for (int64_t i = 0; i < threads; i++) failed |= attention_forward(t, lse, H, T, D, scale, n * i / threads, n * (i + 1) / threads);
    return failed;
}
int attention_backward_all(view *t, const float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t n, int64_t threads) {
    int failed = 0;
    #pragma omp parallel for num_threads(threads) schedule(static) reduction(|:failed)
    for (int64_t i = 0; i < threads; i++) failed |= attention_backward(t, lse, H, T, D, scale, n * i / threads, n * (i + 1) / threads);
    return failed;
}

/* Generation: one new token per sequence, whose query attends over the KV cache (04's KVCache: (B, 2, H, capacity, D),
   float32). In one call per layer: rotate the token's query and key (RoPE, halves layout, the table's row for its
   position n), write its key and value into the cache at n, and attend over the n + 1 keys. The scores of one query are
   only n + 1 numbers, so they are written out; the cost is reading the cache once. */
static inline float dot(const float *a, const float *b, const int D) {
    float s = 0;
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}
/* the scores of keys j0..j0+3: four keys at once, each in its own chain, the sums of four lanes gathered at the end */
static inline void dot4(const float *q, const float *K, float *s, const int D) {
    v4 a[4] = {};
    for (int d = 0; d < D; d += 4) {
        v4 qd; memcpy(&qd, q + d, 16);
        for (int r = 0; r < 4; r++) { v4 kd; memcpy(&kd, K + r * D + d, 16); a[r] += qd * kd; }
    }
    for (int r = 0; r < 4; r++) s[r] = (a[r][0] + a[r][2]) + (a[r][1] + a[r][3]);
}

static inline __attribute__((always_inline)) int decode_d(const void *qkv, void *y, float *kv, const uint8_t *key_mask,
        const float *cos, const float *sin, int64_t H, const int D, int64_t cap, int64_t n, int bf16, float scale, int64_t bh0, int64_t bh1) {
    int64_t NP = (n + W) / W * W, half = D / 2;
    float *s = malloc(NP * sizeof(float));
    if (!s) return 1;
    for (int64_t bh = bh0; bh < bh1; bh++) {
        int64_t b = bh / H, h = bh % H;
        float x[3][D], q[D];
        for (int w = 0; w < 3; w++) for (int d = 0; d < D; d++) {
            int64_t i = (b * 3 + w) * H * D + h * D + d;
            x[w][d] = bf16 ? from_bf16(((const uint16_t *)qkv)[i]) : ((const float *)qkv)[i];
        }
        float *K = kv + (b * 2 * H + h) * cap * D, *V = K + H * cap * D;
        for (int w = 0; w < 2; w++) {
            float *r = w ? K + n * D : q;
            for (int d = 0; d < half; d++) {
                r[d] = x[w][d] * cos[d] - x[w][d + half] * sin[d];
                r[d + half] = x[w][d] * sin[d] + x[w][d + half] * cos[d];
            }
            if (bf16) for (int d = 0; d < D; d++) r[d] = from_bf16(to_bf16(r[d]));  /* a bf16 model keeps its rotated q and k in bf16 */
        }
        for (int d = 0; d < D; d++) { V[n * D + d] = x[2][d]; q[d] *= scale; }
        int64_t j = 0;
        if (D % 4 == 0) for (; j + 3 <= n; j += 4) dot4(q, K + j * D, s + j, D);
        for (; j <= n; j++) s[j] = dot(q, K + j * D, D);
        if (key_mask) for (j = 0; j <= n; j++) if (!key_mask[b * cap + j]) s[j] = -INFINITY;  /* padding */
        for (j = n + 1; j < NP; j++) s[j] = -INFINITY;
        vf mv = splat(-INFINITY);  /* the largest score, W lanes at a time: one chain of maxima would wait on itself */
        for (j = 0; j < NP; j += W) { vf sj = load(s + j); mv = pick(sj > mv, sj, mv); }
        float m = mv[0];
        for (int l = 1; l < W; l++) m = mv[l] > m ? mv[l] : m;
        vf lv = {};
        for (j = 0; j < NP; j += W) {
            vf sj = load(s + j), p = pick(sj > splat(-INFINITY), vexp2(sj - splat(m)), (vf){});  /* masked keys weigh exactly 0 */
            store(s + j, p); lv += p;
        }
        float acc[2][D];  /* two chains of sums over the keys, so that one add need not wait for the last */
        for (int d = 0; d < D; d++) acc[0][d] = acc[1][d] = 0;
        for (j = 0; j + 1 <= n; j += 2) for (int d = 0; d < D; d++) { acc[0][d] += s[j] * V[j * D + d]; acc[1][d] += s[j + 1] * V[(j + 1) * D + d]; }
        for (; j <= n; j++) for (int d = 0; d < D; d++) acc[0][d] += s[j] * V[j * D + d];
        float inv = 1 / hsum(lv);
        for (int d = 0; d < D; d++) {
            float o = (acc[0][d] + acc[1][d]) * inv;
            int64_t i = b * H * D + h * D + d;
            if (bf16) ((uint16_t *)y)[i] = to_bf16(o); else ((float *)y)[i] = o;
        }
    }
    free(s);
    return 0;
}

/* qkv (B, 3, H, D) and y (B, H, D): float32, or bf16 where bf16; kv (B, 2, H, cap, D) float32; key_mask (B, cap) bytes or
   NULL; cos, sin (D / 2): the table's row for position n; scale in base 2. Sequence-heads bh0..bh1-1. 0, or 1 out of memory */
int decode_attention(const void *qkv, void *y, float *kv, const uint8_t *key_mask, const float *cos, const float *sin,
                     int64_t H, int64_t D, int64_t cap, int64_t n, int64_t bf16, float scale, int64_t bh0, int64_t bh1) {
#define DECODE(d) decode_d(qkv, y, kv, key_mask, cos, sin, H, d, cap, n, bf16, scale, bh0, bh1)
    BY_HEAD_SIZE(DECODE)
}
int decode_attention_all(const void *qkv, void *y, float *kv, const uint8_t *key_mask, const float *cos, const float *sin,
                         int64_t H, int64_t D, int64_t cap, int64_t n, int64_t bf16, float scale, int64_t count, int64_t threads) {
    int failed = 0;
    #pragma omp parallel for num_threads(threads) schedule(static) reduction(|:failed)
    for (int64_t i = 0; i < threads; i++)
        failed |= decode_attention(qkv, y, kv, key_mask, cos, sin, H, D, cap, n, bf16, scale, count * i / threads, count * (i + 1) / threads);
    return failed;
}
