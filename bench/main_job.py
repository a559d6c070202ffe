"""The main job's search: which preset, batch, context, learning rate and number of steps reach the lowest
validation loss in about five minutes of training on this CPU, on the data `tinystories train` (no arguments) uses.

The data is `prepare_sample('data')`, as the main job makes it: online the first 20,000 training and 2,000 validation
stories; offline (here, CI) the largest samples already in data/tinystories (2,316 training stories, about 503k tokens,
and 1,540 validation stories, about 289k tokens with the trimmed tokenizer). So a five-minute run here sees its training
stories more than once; the table gives the epochs.

The machine is shared, so a candidate is judged at a fixed TOKEN budget, not at a fixed wall time:

    1. throughput: each shape (preset, batch, context) trains a short burst through `run_training()` (`stop_after`, no evaluation),
       and each burst sits between two bursts of today's default shape (1M, 16 x 128). A shape's ratio to the default is
       its tokens/s over the mean of the neighbouring default bursts (same load), and
           quiet tokens/s of a shape = ratio x quiet tokens/s of the default,
       where the default's quiet figure is its best burst in this run (printed with the load average), or --quiet-default.
    2. budget: max_steps = budget_s x quiet tokens/s / (batch x context); warmup_steps = 10% of max_steps (at least 20);
       min_lr = lr / 10 (the cosine of `lr_at`).
    3. each candidate trains through the package's own `train()` in its own folder under --runs, one at a time, and is
       scored as the main job reports it: the validation loss over the whole validation file (fp32, batch 16).
       The sample story (seed 0, 200 tokens) is `sample_story`, what `tinystories train` prints.

usage (the search as run here, under load 13-22: one thread per process, a third of the budget, a validation slice):
    nice -n 5 python bench/main_job.py --measure --rounds 1 --burst-tokens 8192 --threads 1
    nice -n 5 python bench/main_job.py --run 3M-16x128-3e-3 8M-16x256-2e-3 --threads 1 --quiet-default 3800 --budget-s 100 --valid-tokens 65536
    python bench/main_job.py --report                                  # table + images/main_job_search.png
on a quiet machine, the full search (torch's own threads, five minutes each, the whole validation file):
    python bench/main_job.py --measure --rounds 2 && python bench/main_job.py --run --budget-s 300 --report
`--run` with no names runs every candidate not yet claimed (runs/main_job/NAME.claimed: delete it to run NAME again);
two processes given the same names share the queue.

Results accumulate in the JSON file (a crash loses only the run in progress); nothing is asserted.
"""
import argparse, contextlib, json, math, os, shutil, sys, time
from pathlib import Path
import numpy as np, torch
from tinystories.config import TrainConfig
from tinystories.checkpoint import read_metrics
from tinystories.trainer import run_training, prepare_sample


def sample_story(model, tokenizer, max_new_tokens, seed=0, prompt='Once upon a time'):
    "A story `model` writes from `prompt`, prompt included: what `tinystories train` prints at the end."
    from tinystories.generate import generate
    return prompt + generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=0.8, top_k=None, seed=seed)
from tinystories.model import load_model
from tinystories.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT/'bench'/'main_job_results.json'
PLOT = ROOT/'images'/'main_job_search.png'
DEFAULT_SHAPE = ('1M', 16, 128)  # the reference for throughput ratios: the main job's previous default, whose quiet tokens/s is known

def candidate_name(preset, batch, context, lr): return f"{preset}-{batch}x{context}-{f'{lr:.0e}'.replace('e-0', 'e-')}"  # e.g. 3M-16x128-3e-3

# (preset, batch_size, context, lr) of each candidate; the first is the previous default shape and learning rate
CANDIDATES = {candidate_name(*c): c for c in [
    ('1M', 16, 128, 3e-3), ('1M', 16, 256, 3e-3),
    ('3M', 16, 128, 3e-3), ('3M', 16, 256, 2e-3), ('3M', 16, 256, 3e-3), ('3M', 16, 128, 2e-3), ('3M', 16, 128, 5e-3), ('3M', 16, 128, 7e-3),
    ('8M', 16, 128, 2e-3), ('8M', 16, 256, 2e-3), ('8M', 32, 128, 2e-3), ('8M', 16, 128, 1e-3), ('8M', 16, 128, 3e-3)]}

def load_results():
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else dict(throughput={}, runs={})

def save_results(res):
    tmp = RESULTS.with_suffix(f'.{os.getpid()}.tmp'); tmp.write_text(json.dumps(res, indent=1)); os.replace(tmp, RESULTS)

def shape_key(preset, batch, context): return f'{preset} {batch}x{context}'

def data_paths(valid_tokens=None):
    "The main job's (train.bin, valid.bin, tokenizer); with `valid_tokens`, valid.bin is its first stories up to that many tokens."
    with contextlib.redirect_stdout(sys.stderr): train_bin, valid_bin, tok = prepare_sample(ROOT/'data')
    if valid_tokens: valid_bin = valid_slice(valid_bin, valid_tokens)
    return str(train_bin), str(valid_bin), str(tok)

def valid_slice(valid_bin, n):
    "A copy of the first stories of `valid_bin` (whole stories, at most `n` tokens) with its sidecar, under runs/main_job/."
    out = ROOT/'runs'/'main_job'/f'valid-first{n}.bin'
    if not out.is_file():
        tokens = np.fromfile(valid_bin, dtype=np.uint16)
        side = json.loads(Path(valid_bin).with_suffix('.json').read_text())
        ends = np.flatnonzero(tokens[:n] == side['eot_id'])
        cut = tokens[:ends[-1] + 1]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix('.json').write_text(json.dumps({**side, 'n_tokens': int(cut.size), 'n_stories': int(ends.size)}, indent=2))
        cut.tofile(out)
    return out

def burst(shape, steps, tmp):
    "Median tokens/s of `steps` training steps of `shape` (the first two, warm-up, dropped) through `run_training()`."
    preset, batch, context = shape
    train_bin, valid_bin, tok = data_paths()
    out = Path(tmp)/f'burst-{preset}-{batch}x{context}'
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(preset=preset, batch_size=batch, context=context, train=train_bin, valid=valid_bin, tokenizer=tok, out=str(out),
                      max_steps=10_000, stop_after=steps + 2, eval_every=10**9, ckpt_every=10**9, sample_tokens=0)
    with open(os.devnull, 'w') as null, contextlib.redirect_stderr(null): run_training(cfg)
    tok_s = [r['tok_per_s'] for r in read_metrics(out) if 'tok_per_s' in r][2:]
    shutil.rmtree(out, ignore_errors=True)
    return float(np.median(tok_s))

def measure(shapes, rounds, steps_tokens, tmp):
    "Interleaved bursts D s1 D s2 D ... D; each shape's ratio to the mean of its two neighbouring default bursts."
    res = load_results()
    thr = res['throughput'] = dict(bursts=[], shapes={})
    print(f'| round | shape | tokens/s | default tokens/s (neighbours) | ratio | load avg |\n|---|---|---:|---:|---:|---:|', flush=True)
    def steps(shape): return max(4, steps_tokens // (shape[1] * shape[2]))
    for r in range(rounds):
        d_prev = burst(DEFAULT_SHAPE, steps(DEFAULT_SHAPE), tmp)
        thr['bursts'].append(dict(round=r, shape=shape_key(*DEFAULT_SHAPE), tok_s=d_prev, load=os.getloadavg()[0]))
        for s in shapes:
            t = burst(s, steps(s), tmp)
            load = os.getloadavg()[0]
            d_next = burst(DEFAULT_SHAPE, steps(DEFAULT_SHAPE), tmp)
            ratio = t / ((d_prev + d_next) / 2)
            thr['bursts'] += [dict(round=r, shape=shape_key(*s), tok_s=t, ratio=ratio, load=load),
                              dict(round=r, shape=shape_key(*DEFAULT_SHAPE), tok_s=d_next, load=os.getloadavg()[0])]
            b = thr['bursts'][-2]; b['threads'] = torch.get_num_threads()
            print(f'| {r} | {shape_key(*s)} | {t:,.0f} | {d_prev:,.0f} / {d_next:,.0f} | {ratio:.3f} | {load:.1f} |', flush=True)
            d_prev = d_next
            save_results(res)
    defaults = [b['tok_s'] for b in thr['bursts'] if b['shape'] == shape_key(*DEFAULT_SHAPE)]
    thr['default_quiet_tok_s'] = max(defaults)
    thr['default_quiet_load'] = next(b['load'] for b in thr['bursts'] if b['shape'] == shape_key(*DEFAULT_SHAPE) and b['tok_s'] == max(defaults))
    for s in shapes:
        ratios = [b['ratio'] for b in thr['bursts'] if b['shape'] == shape_key(*s) and 'ratio' in b]
        thr['shapes'][shape_key(*s)] = dict(ratio=float(np.median(ratios)), ratios=ratios)
    thr['shapes'][shape_key(*DEFAULT_SHAPE)] = dict(ratio=1.0, ratios=[1.0])
    save_results(res)
    print(f"default {shape_key(*DEFAULT_SHAPE)}: best burst {thr['default_quiet_tok_s']:,.0f} tokens/s (load {thr['default_quiet_load']:.1f})")
    return res

def plan(name, budget_s, quiet_default):
    "The TrainConfig overrides of candidate `name` for `budget_s` seconds of quiet-machine training."
    preset, batch, context, lr = CANDIDATES[name]
    thr = load_results()['throughput']
    q = quiet_default or thr['default_quiet_tok_s']
    tok_s = thr['shapes'][shape_key(preset, batch, context)]['ratio'] * q
    max_steps = round(budget_s * tok_s / (batch * context))
    return dict(preset=preset, batch_size=batch, context=context, lr=lr, min_lr=lr / 10, warmup_steps=max(20, round(0.1 * max_steps)),
                max_steps=max_steps), tok_s

def claim(runs_dir, name):
    "True for the one worker that starts candidate `name` (two workers can share a queue)."
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    try: os.close(os.open(Path(runs_dir)/f'{name}.claimed', os.O_CREAT | os.O_EXCL)); return True
    except FileExistsError: return False

def run(name, budget_s, quiet_default, runs_dir, valid_tokens=None):
    "Train candidate `name` through `run_training()` at its token budget; record its losses, times and sample story."
    over, quiet_tok_s = plan(name, budget_s, quiet_default)
    train_bin, valid_bin, tok = data_paths(valid_tokens)
    out = Path(runs_dir)/name
    shutil.rmtree(out, ignore_errors=True)
    # four evaluations of 8 batches draw the curve; the score is the final one, over all of `valid_bin`
    cfg = TrainConfig(**over, train=train_bin, valid=valid_bin, tokenizer=tok, out=str(out), eval_every=max(1, math.ceil(over['max_steps'] / 4)),
                      eval_batches=8, ckpt_every=10**9, keep_last=1, sample_tokens=0)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    res = run_training(cfg)
    wall = time.perf_counter() - t0
    recs = read_metrics(out)
    steps = [r for r in recs if 'tok_per_s' in r]
    train_s = sum(cfg.batch_size * cfg.context / r['tok_per_s'] for r in steps)
    tokens = steps[-1]['tokens']
    model, tokenizer = load_model(out, 'cpu').eval(), load_tokenizer(out/'tokenizer.json')
    story = sample_story(model, tokenizer, 200, seed=cfg.seed)
    train_tokens = np.memmap(train_bin, dtype=np.uint16, mode='r').size
    r = dict(overrides=over, budget_s=budget_s, quiet_default_tok_s=quiet_default or load_results()['throughput']['default_quiet_tok_s'],
             valid=valid_bin, valid_tokens=int(np.memmap(valid_bin, dtype=np.uint16, mode='r').size), quiet_tok_s=quiet_tok_s, tokens=tokens, epochs=tokens / train_tokens, final_val_loss=res['final_val_loss'],
             last_train_loss=float(np.mean([s['loss'] for s in steps[-20:]])),
             curve=[(rec['step'] * cfg.batch_size * cfg.context, rec['val_loss']) for rec in recs if 'val_loss' in rec],
             measured_tok_s=tokens / train_s, train_s=train_s, wall_s=wall, load_start=load0, load_end=os.getloadavg()[0],
             quiet_train_s=tokens / quiet_tok_s, quiet_wall_s=wall * tokens / quiet_tok_s / train_s, threads=torch.get_num_threads(), story=story)
    all_res = load_results(); all_res['runs'][name] = r; save_results(all_res)
    print(f"{name}: final validation loss {r['final_val_loss']:.4f} after {tokens:,} tokens ({r['epochs']:.2f} epochs), "
          f"{r['measured_tok_s']:,.0f} tokens/s here (quiet {quiet_tok_s:,.0f}), wall {wall:.0f} s\n{story}\n", flush=True)

def report():
    res = load_results()
    thr, runs = res['throughput'], res['runs']
    print(f"Throughput: default {shape_key(*DEFAULT_SHAPE)} best burst {thr['default_quiet_tok_s']:,.0f} tokens/s (load avg {thr['default_quiet_load']:.1f}); "
          f"train.bin {np.memmap(ROOT/'data'/'train.bin', dtype=np.uint16, mode='r').size:,} tokens, valid.bin {np.memmap(ROOT/'data'/'valid.bin', dtype=np.uint16, mode='r').size:,}\n")
    print('| candidate | preset | batch x context | lr | warmup | steps | tokens | epochs | quiet tok/s | tok/s here | train s here | wall s here | quiet wall s (est.) | last train loss | final val loss |')
    print('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for name, r in sorted(runs.items(), key=lambda kv: kv[1]['final_val_loss']):
        o = r['overrides']
        print(f"| {name} | {o['preset']} | {o['batch_size']} x {o['context']} | {o['lr']:g} | {o['warmup_steps']} | {o['max_steps']} | {r['tokens']:,} | {r['epochs']:.2f} | "
              f"{r['quiet_tok_s']:,.0f} | {r['measured_tok_s']:,.0f} | {r['train_s']:.0f} | {r['wall_s']:.0f} | {r['quiet_wall_s']:.0f} | {r['last_train_loss']:.3f} | {r['final_val_loss']:.4f} |")
    if runs:
        best = min(runs, key=lambda n: runs[n]['final_val_loss'])
        print(f"\nbest: {best}: {runs[best]['overrides']}\nits story (seed 0):\n{runs[best]['story']}")
        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for name, r in sorted(runs.items()):
            t, v = zip(*r['curve'])
            line, = ax.plot(np.array(t) / 1e6, v, 'o-', ms=3, label=f"{name} ({r['final_val_loss']:.3f})")
            ax.plot(r['tokens'] / 1e6, r['final_val_loss'], '*', ms=10, color=line.get_color())
        ax.set_xlabel('training tokens (millions)'); ax.set_ylabel('validation loss (nats/token)')
        budgets = sorted({r['budget_s'] for r in runs.values()}); vt = sorted({r['valid_tokens'] for r in runs.values()})
        ax.set_title(f"Main-job candidates, each at {'/'.join(f'{b:g}' for b in budgets)} s of quiet-machine training on this 2-core CPU\n"
                     f"(dots: 8 validation batches during training; stars: the first {'/'.join(f'{v:,}' for v in vt)} validation tokens at the end)", fontsize=9)
        ax.grid(alpha=0.3); ax.legend(fontsize=7); ax.set_ylim(top=min(6, ax.get_ylim()[1]))
        PLOT.parent.mkdir(exist_ok=True); fig.savefig(PLOT, dpi=120, bbox_inches='tight')
        print(f'\nplot: {PLOT.relative_to(ROOT)}')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--measure', action='store_true', help='interleaved throughput bursts of every candidate shape')
    p.add_argument('--rounds', type=int, default=1, help='rounds of bursts')
    p.add_argument('--burst-tokens', type=int, default=32_768, help='tokens per burst (at least 4 steps)')
    p.add_argument('--run', nargs='*', help='candidates to train (all when none named)')
    p.add_argument('--budget-s', type=float, default=300, help='quiet-machine seconds of training per candidate')
    p.add_argument('--quiet-default', type=float, default=None, help='quiet tokens/s of the default shape (else its best burst)')
    p.add_argument('--runs', default=str(ROOT/'runs'/'main_job'), help='folder of the candidate run folders')
    p.add_argument('--valid-tokens', type=int, default=None, help="score on the first stories of valid.bin up to this many tokens (default: all, as the main job)")
    p.add_argument('--report', action='store_true', help='print the table and draw the plot')
    p.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own; under load 1 wastes less)")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.measure:
        shapes = sorted({c[:3] for c in CANDIDATES.values()} - {DEFAULT_SHAPE}, key=lambda s: (float(s[0][:-1]), s[1], s[2]))
        measure(shapes, a.rounds, a.burst_tokens, a.runs)
    if a.run is not None:
        for name in a.run or CANDIDATES:
            if claim(a.runs, name): run(name, a.budget_s, a.quiet_default, a.runs, a.valid_tokens)
    if a.report: report()
