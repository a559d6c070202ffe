/* The attention kernels' interface: what another C file (the decode step) calls, and what Python loads by ctypes.
   Implemented in attention.c; a file that includes this is linked with it, so the code is compiled once per library. */
#ifndef TINYSTORIES_ATTENTION_H
#define TINYSTORIES_ATTENTION_H
#include <stdint.h>

/* A (B, H, T, D) tensor: its data and element strides over batch, head and time; unit stride over D. */
typedef struct { float *p; int64_t sb, sh, st; } view;

/* t = (q, k, v, o): o = softmax(q k^T scale, causal) v for batch-heads bh0..bh1-1, scale in base 2; lse (B*H, T) in base 2.
   0, or 1 out of memory */
int attention_forward(view *t, float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t bh0, int64_t bh1);
/* t = (q, k, v, o, dout, dq, dk, dv): the gradients dq, dk, dv of forward's o for the gradient dout */
int attention_backward(view *t, const float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t bh0, int64_t bh1);

/* qkv (B, 3, H, D) and y (B, H, D): float32, or bf16 where bf16; kv (B, 2, H, cap, D) float32; key_mask (B, cap) bytes or
   NULL; cos, sin (D / 2): the table's row for position n; scale in base 2. Sequence-heads bh0..bh1-1. 0, or 1 out of memory */
int decode_attention(const void *qkv, void *y, float *kv, const uint8_t *key_mask, const float *cos, const float *sin,
                     int64_t H, int64_t D, int64_t cap, int64_t n, int64_t bf16, float scale, int64_t bh0, int64_t bh1);

/* The same over all n batch-heads, cut into `threads` ranges run by OpenMP where the library was built with it */
int parallel_by_openmp(void);
int attention_forward_all(view *t, float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t n, int64_t threads);
int attention_backward_all(view *t, const float *lse, int64_t H, int64_t T, int64_t D, float scale, int64_t n, int64_t threads);
int decode_attention_all(const void *qkv, void *y, float *kv, const uint8_t *key_mask, const float *cos, const float *sin,
                         int64_t H, int64_t D, int64_t cap, int64_t n, int64_t bf16, float scale, int64_t count, int64_t threads);
#endif
