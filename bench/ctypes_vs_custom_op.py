#!/usr/bin/env python
"""ctypes against PyTorch's own ways to add compiled code, as 04b_fast_attention weighs them: the first build's compile time
(compiler CPU seconds, robust to a busy machine, and wall seconds) of our attention library and of the smallest
`torch.utils.cpp_extension` module, and the graph breaks `torch.compile` meets in a step with one attention, by the
ctypes autograd Function and by the same ctypes calls wrapped in `torch.library.custom_op`, and the two wrappers' eager time.

    python bench/ctypes_vs_custom_op.py            # all three
    python bench/ctypes_vs_custom_op.py --no-cpp   # without the cpp_extension build (a minute or more of compiling)
"""
import argparse, math, os, platform, resource, tempfile, time, torch
from torch import Tensor
from tinystories.kernels import compile_kernel, compiler_identity
import tinystories.fast_attention as fa
from tinystories.attention import attend

def child_cpu():
    "CPU seconds of this process's finished children (the compiler's processes)."
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def timed_build(build):
    "`(wall s, CPU s)` of `build()`."
    t, c = time.perf_counter(), child_cpu()
    build()
    return time.perf_counter() - t, child_cpu() - c

def cpp_extension_build(d):
    from torch.utils.cpp_extension import load_inline
    load_inline('tiny_op', cpp_sources='torch::Tensor twice(torch::Tensor x) { return x * 2; }', functions=['twice'], build_directory=d, extra_cflags=['-O3'])

# the same ctypes calls as fa.FusedCausalAttention, as operators torch.compile can keep in its graph
@torch.library.custom_op('tinystories_bench::attention_forward', mutates_args=())
def attention_forward(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    (B, H, T, D), scale = q.shape, math.log2(math.e) / math.sqrt(q.shape[-1])
    o, lse = fa.empty_heads_last(B, H, T, D), torch.empty(B, H, T)
    fa.in_parallel(fa.fused_attention_library(), 'attention_forward', B * H, fa.views(q, k, v, o), lse.data_ptr(), H, T, D, scale)
    return o, lse

@attention_forward.register_fake
def _(q, k, v):
    B, H, T, D = q.shape
    return q.new_empty(B, T, H, D).transpose(1, 2), q.new_empty(B, H, T)

@torch.library.custom_op('tinystories_bench::attention_backward', mutates_args=())
def attention_backward(q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, do: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    (B, H, T, D), scale = q.shape, math.log2(math.e) / math.sqrt(q.shape[-1])
    do, grads = fa.unit_float(do), [fa.empty_heads_last(B, H, T, D) for _ in range(3)]
    fa.in_parallel(fa.fused_attention_library(), 'attention_backward', B * H, fa.views(q, k, v, o, do, *grads), lse.data_ptr(), H, T, D, scale)
    return tuple(grads)

@attention_backward.register_fake
def _(q, k, v, o, lse, do):
    B, H, T, D = q.shape
    return tuple(q.new_empty(B, T, H, D).transpose(1, 2) for _ in range(3))

attention_forward.register_autograd(lambda ctx, do, dlse: attention_backward(*ctx.saved_tensors, do),
                                    setup_context=lambda ctx, inputs, output: ctx.save_for_backward(*inputs, *output))

def graph_breaks(step, *args):
    "`(graph breaks, graphs)` torch.compile meets in `step(*args)`."
    e = torch._dynamo.explain(step)(*args)
    return e.graph_break_count, e.graph_count

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--no-cpp', action='store_true', help='skip the cpp_extension build')
    args = p.parse_args()
    print(f'# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, '
          f'{compiler_identity(os.environ.get("CC") or "cc")[1].splitlines()[0]}')
    with tempfile.TemporaryDirectory() as d:
        wall, cpu = timed_build(lambda: compile_kernel(['attention.c'], 'attention', cache_dir=d))
        print(f'ctypes library attention.c: first build {wall:.1f} s wall, {cpu:.1f} s compiler CPU')
    if not args.no_cpp:
        with tempfile.TemporaryDirectory() as d:
            wall, cpu = timed_build(lambda: cpp_extension_build(d))
            print(f'cpp_extension, one function: first build {wall:.1f} s wall, {cpu:.1f} s compiler CPU')
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 8, requires_grad=True) for _ in range(3))
    print('torch.compile of a step with one attention: (graph breaks, graphs)')
    print('  ctypes autograd Function (fused_causal_attention):', graph_breaks(lambda q, k, v: fa.fused_causal_attention(q, k, v).square().sum(), q, k, v))
    print('  attend (the blocks while compiling):', graph_breaks(lambda q, k, v: attend(q, k, v).square().sum(), q, k, v))
    print('  ctypes calls in torch.library.custom_op:', graph_breaks(lambda q, k, v: attention_forward(q, k, v)[0].square().sum(), q, k, v))
    ref = attend(q, k, v).square().sum(); ref.backward(); g = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v): t.grad = None
    y = torch.compile(lambda q, k, v: attention_forward(q, k, v)[0].square().sum())(q, k, v); y.backward()
    print('  compiled custom_op step against the eager one: same loss', torch.allclose(y, ref), ', same gradients',
          all(torch.allclose(t.grad, gt, atol=1e-5) for t, gt in zip((q, k, v), g)))
    # eager forward + backward at the 1M preset's layer shape, the two wrappers in alternating order: the median of each
    qkv, do = [torch.randn(16, 16, 256, 4, requires_grad=True) for _ in range(3)], torch.randn(16, 16, 256, 4)
    runs = {'autograd Function': lambda: fa.fused_causal_attention(*qkv).backward(do), 'custom_op': lambda: attention_forward(*qkv)[0].backward(do)}
    times = {n: [] for n in runs}
    for f in runs.values(): f()
    for r in range(20):
        for n in (list(runs) if r % 2 else list(runs)[::-1]):
            t = time.perf_counter(); runs[n](); times[n].append(time.perf_counter() - t)
    print('eager forward + backward, 16 x 16 heads x 256 tokens x 4 channels: ' +
          ', '.join(f'{n} {1000 * sorted(t)[len(t) // 2]:.1f} ms' for n, t in times.items()))
