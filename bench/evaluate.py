"""Evaluation tokens/s against the training step's tokens/s, for the same model on the same machine, in one run.

    python bench/evaluate.py [--presets 1M 3M 8M] [--stories 400] [--rounds 3] [--threads N]

For each preset (random weights: speed does not depend on training; the course's trimmed tokenizer, so the vocabulary
of a model trained here), at the trainer's default shape (`TrainConfig()`: batch x context, precision), it times in
turn, `--rounds` times (so a change of load hits them alike; each figure is the median of its rounds):

- **train**: the training step: forward under the run's autocast, the loss, backward, AdamW (`make_optimizer`),
  tokens/s = batch x context / seconds;
- **stories fp32 / bf16**: `tinystories evaluate --stories`' scoring (`textmodel.story_scores`) of the first `--stories`
  validation stories of the course sample, weights in fp32 (the command's default) or cast to bf16 (`--dtype bf16`);
  tokens/s counts the tokens scored (each story's tokens and its closing end-of-text), as the command reports them;
- **step's forward**: the training step's own forward pass and loss alone (the same batch and autocast, in inference
  mode): how fast evaluation could be at the step's shape and precision, and so the ceiling of what "x train" can
  reach without making the forward pass itself faster (which would make training faster too);
- **windows fp32**: `train.evaluate` over the validation token file in windows of the model's context, as the final
  evaluation of a run (fp32) and `tinystories evaluate --data` do it; tokens/s counts the targets scored;
- **windows bf16**: the same under the run's autocast and batch size, as the evaluations during training do it.

The ratio columns divide each evaluation's tokens/s by the training step's. Goal (issue 29): evaluation at least 3x the
training step's tokens/s for 1M, 3M and 8M. Both sides run with `keep_freed_memory` set, as `tinystories train`,
`evaluate` and `probe` set it on a CPU. The header line says the CPU, threads and load average; nothing is asserted.
"""
import argparse, copy, os, platform, statistics, sys, tempfile, time
from itertools import islice
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # this checkout's package
from tinystories.config import TrainConfig
from tinystories.data import course_stories, iter_stories
from tinystories.loader import TokenFile
from tinystories.model import GPT, preset_config, param_counts
from tinystories.pretokenize import prepare
from tinystories.tokenizer import course_tokenizer, load_tokenizer, eot_id
from tinystories.optim import make_optimizer
from tinystories.train import autocast, evaluate, lm_loss
from tinystories.trainer import keep_freed_memory
from tinystories.textmodel import TextModel, length_batches, padding_share, story_scores, story_windows


def cpu_name():
    "The CPU model from /proc/cpuinfo (or platform's guess)."
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'


def timed(fn, device='cpu'):
    "Seconds one call of `fn` takes (on a GPU, until its work is done)."
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
    sync(); t0 = time.perf_counter(); fn(); sync()
    return time.perf_counter() - t0


def evaluation_rates(model, tok, stories, valid, batch, context, steps=3, windows=16, rounds=3, device='cpu'):
    """Tokens/s of `model`'s training step (bf16 autocast, AdamW) and of its evaluations, each the median of `rounds`
    rounds that take them in turn: the step's forward alone, story scoring of `stories` (weights in fp32 and bf16), and
    `windows` batches of the token file `valid` in fp32 (the final evaluation) and under bf16 autocast (during training)."""
    cfg = TrainConfig(batch_size=batch, context=context, dtype='bf16')
    opt = make_optimizer(model, cfg)
    x = torch.randint(0, model.config.vocab_size, (batch, context + 1), device=device)
    def train_steps():
        model.train()
        for _ in range(steps):
            with autocast(device, cfg.dtype): loss = lm_loss(model(x[:, :-1]), x[:, 1:])
            loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip); opt.step(); opt.zero_grad(set_to_none=True)
    def forwards():
        with torch.inference_mode(), autocast(device, cfg.dtype):
            for _ in range(steps): lm_loss(model(x[:, :-1]), x[:, 1:])
    tm32 = TextModel('fp32', model, tok, eot_id(tok))
    tm16 = TextModel('bf16', copy.deepcopy(model).to(torch.bfloat16), tok, eot_id(tok))  # the weights of `model` now: speed does not depend on them
    n_scored = story_scores(tm32, stories)['tokens']  # also the warm-up of scoring
    n_windows = min(windows, valid.n_eval_batches(batch, context, windows)) * batch * context
    runs = dict(train=(train_steps, steps * batch * context), forward=(forwards, steps * batch * context),
                stories_fp32=(lambda: story_scores(tm32, stories), n_scored), stories_bf16=(lambda: story_scores(tm16, stories), n_scored),
                windows_fp32=(lambda: evaluate(model, valid, batch, context, windows, dtype='fp32', device=device), n_windows),
                windows_bf16=(lambda: evaluate(model, valid, batch, context, windows, dtype=cfg.dtype, device=device), n_windows))
    for fn, _ in runs.values(): fn()  # warm-up: kernels chosen, memory allocated
    rates = {k: [] for k in runs}
    for _ in range(rounds):
        for k, (fn, n) in runs.items(): rates[k].append(n / timed(fn, device))
    return {k: statistics.median(v) for k, v in rates.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--presets', nargs='+', default=['1M', '3M', '8M'])
    p.add_argument('--stories', type=int, default=400, help='validation stories scored per round (default: 400)')
    p.add_argument('--windows', type=int, default=16, help='batches of validation windows per round (default: 16)')
    p.add_argument('--steps', type=int, default=3, help='training steps per round (default: 3)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    kept = keep_freed_memory()  # as the commands set it: the big tensors of each step and batch reused
    data = ROOT / 'data'
    tok_dir = course_tokenizer(data)
    tok = load_tokenizer(tok_dir)
    valid = course_stories('valid', data_dir=data)
    stories = list(islice(iter_stories(valid), args.stories))
    cfg = TrainConfig()
    with tempfile.TemporaryDirectory() as d:
        vbin = prepare([valid], tok_dir, Path(d) / 'valid.bin')
        vdata = TokenFile(vbin, vocab_size=tok.get_vocab_size(), context=cfg.context)
        print(f'{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} on {torch.get_num_threads()} threads, '
              f'load average {os.getloadavg()[0]:.2f} at start, {time.strftime("%Y-%m-%d")}; training step {cfg.batch_size} x {cfg.context} '
              f'{cfg.dtype}; {len(stories)} validation stories; median of {args.rounds} rounds; keep_freed_memory {kept}\n', flush=True)
        print('| preset | non-emb params | train tok/s | step\'s forward tok/s | x train | stories fp32 tok/s | x train | stories bf16 tok/s | x train | windows fp32 tok/s | x train | windows bf16 tok/s | x train | padding |')
        print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|', flush=True)
        for name in args.presets:
            torch.manual_seed(0)
            model = GPT(preset_config(name, tok.get_vocab_size(), context=cfg.context))
            # each story is scored as <eot> story <eot>, in windows of the context
            lengths = [b - a for ids in TextModel(name, model, tok, eot_id(tok)).encode_batch(stories) for a, b, _ in story_windows(len(ids) + 2, cfg.context)]
            pad = padding_share(lengths, length_batches(lengths, 4096))
            m = evaluation_rates(model, tok, stories, vdata, cfg.batch_size, cfg.context, args.steps, args.windows, args.rounds)
            print(f"| {name} | {param_counts(model)['non_embedding']:,} | {m['train']:,.0f} | "
                  + ' | '.join(f"{m[k]:,.0f} | {m[k] / m['train']:.2f}x" for k in ('forward', 'stories_fp32', 'stories_bf16', 'windows_fp32', 'windows_bf16'))
                  + f' | {pad:.1%} |', flush=True)
        print(f'\nload average {os.getloadavg()[0]:.2f} at the end')


if __name__ == '__main__':
    main()
