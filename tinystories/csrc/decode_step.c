/* The one-token step of a GPT block on a CPU, every operation in one call: at the 8M preset's size a step is a chain of
   a few dozen small operations, and in PyTorch each one costs more in dispatch, allocation and cold code than in
   arithmetic. Numbers are float32 throughout. For a model with bf16 weights, each value is rounded to bf16 where the
   model's own step rounds it (as_model), so both compute the same thing; its matrices are read as bf16, half the bytes. */
#include "simd.h"
#include "attention.h"

typedef uint16_t vh __attribute__((vector_size(W * 2)));
static inline vf load_bf16(const uint16_t *p) { vh h; memcpy(&h, p, sizeof h); return (vf)(__builtin_convertvector(h, vi) << 16); }
static inline float as_model(float x, int bf16) { return bf16 ? from_bf16(to_bf16(x)) : x; }

/* y = as_model(x w + b) for one row x (I) and w (I, O), float32 or bf16: the transpose of nn.Linear's weight, so that
   W outputs sit side by side; RW * W outputs at a time, so every weight is read once, in order */
#define RW 8
static void matvec(const float *x, const void *w, const float *b, float *y, int64_t I, int64_t O, int bf16) {
    int64_t o0 = 0;
    for (; o0 + RW * W <= O; o0 += RW * W) {
        vf acc[RW];
        for (int r = 0; r < RW; r++) acc[r] = b ? load(b + o0 + r * W) : (vf){};
        if (bf16) for (int64_t i = 0; i < I; i++) {
            const uint16_t *wi = (const uint16_t *)w + i * O + o0;
            for (int r = 0; r < RW; r++) acc[r] += splat(x[i]) * load_bf16(wi + r * W);
        } else for (int64_t i = 0; i < I; i++) {
            const float *wi = (const float *)w + i * O + o0;
            for (int r = 0; r < RW; r++) acc[r] += splat(x[i]) * load(wi + r * W);
        }
        for (int r = 0; r < RW; r++) store(y + o0 + r * W, acc[r]);
    }
    for (; o0 < O; o0++) {  /* the last outputs, fewer than RW * W */
        float s = b ? b[o0] : 0;
        for (int64_t i = 0; i < I; i++) s += x[i] * (bf16 ? from_bf16(((const uint16_t *)w)[i * O + o0]) : ((const float *)w)[i * O + o0]);
        y[o0] = s;
    }
    if (bf16) for (int64_t o = 0; o < O; o++) y[o] = as_model(y[o], 1);
}

static void layer_norm(const float *x, const float *g, const float *b, float *y, int64_t C, int bf16) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; c++) mean += x[c];
    mean /= C;
    for (int64_t c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
    float m = (float)mean, rstd = 1 / sqrtf((float)(var / C) + 1e-5f);  /* nn.LayerNorm's default eps */
    for (int64_t c = 0; c < C; c++) y[c] = as_model((x[c] - m) * rstd * g[c] + (b ? b[c] : 0), bf16);
}

/* A block's weights: layer norms and biases in float32 (NULL where the model has none), matrices (in, out) */
typedef struct {
    const float *ln1_w, *ln1_b; const void *qkv_w; const float *qkv_b; const void *proj_w; const float *proj_b;
    const float *ln2_w, *ln2_b; const void *fc_w; const float *fc_b; const void *out_w; const float *out_b;
} block;

/* x (B, C): the hidden states of one new token per sequence, updated in place by the block; kv, key_mask, cos, sin as
   decode_attention takes them. 0, or 1 out of memory */
int decode_block(const block *w, float *x, int64_t B, int64_t C, int64_t H, float *kv, const uint8_t *key_mask, int64_t cap,
                 int64_t n, const float *cos, const float *sin, int64_t bf16) {
    float *qkv = malloc((4 * C * B + 6 * C) * sizeof(float)), *y = qkv + 3 * C * B, *f = y + C * B, *a = f + 4 * C, *t = a + C;
    uint16_t *qkv16 = malloc(4 * C * B * sizeof(uint16_t)), *y16 = qkv16 + 3 * C * B;  /* decode_attention's bf16 in and out */
    int failed = !qkv || !qkv16;
    if (!failed) {
        for (int64_t b = 0; b < B; b++) {
            layer_norm(x + b * C, w->ln1_w, w->ln1_b, t, C, bf16);
            matvec(t, w->qkv_w, w->qkv_b, qkv + b * 3 * C, C, 3 * C, bf16);
        }
        if (bf16) for (int64_t i = 0; i < 3 * C * B; i++) qkv16[i] = to_bf16(qkv[i]);
        failed = decode_attention(bf16 ? (void *)qkv16 : qkv, bf16 ? (void *)y16 : y, kv, key_mask, cos, sin, H, C / H, cap, n, bf16,
                                  1.44269504088896341f / sqrtf((float)(C / H)), 0, B * H);
        if (bf16) for (int64_t i = 0; i < C * B; i++) y[i] = from_bf16(y16[i]);
    }
    for (int64_t b = 0; b < B && !failed; b++) {
        float *xb = x + b * C;
        matvec(y + b * C, w->proj_w, w->proj_b, a, C, C, bf16);
        for (int64_t c = 0; c < C; c++) xb[c] = as_model(xb[c] + a[c], bf16);
        layer_norm(xb, w->ln2_w, w->ln2_b, t, C, bf16);
        matvec(t, w->fc_w, w->fc_b, f, C, 4 * C, bf16);
        for (int64_t c = 0; c < 4 * C; c++) f[c] = as_model(f[c] * 0.5f * (1 + erff(f[c] * 0.70710678118654752f)), bf16);  /* exact GELU */
        matvec(f, w->out_w, w->out_b, a, 4 * C, C, bf16);
        for (int64_t c = 0; c < C; c++) xb[c] = as_model(xb[c] + a[c], bf16);
    }
    free(qkv); free(qkv16);
    return failed;
}

/* logits (B, V) of the hidden states x (B, C): the final layer norm, then the head w (C, V) */
int decode_head(const float *x, const float *g, const float *b, const void *w, float *logits, int64_t B, int64_t C, int64_t V, int64_t bf16) {
    float *h = malloc(C * sizeof(float));
    if (!h) return 1;
    for (int64_t r = 0; r < B; r++) {
        layer_norm(x + r * C, g, b, h, C, bf16);
        matvec(h, w, 0, logits + r * V, C, V, bf16);
    }
    free(h);
    return 0;
}
