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
import argparse, os, platform, statistics, sys, tempfile, time
from itertools import islice
from pathlib import Path
import torch


def cpu_name():
    "The CPU model from /proc/cpuinfo (or platform's guess)."
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'


def timed(fn):
    "Seconds one call of `fn` takes."
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--presets', nargs='+', default=['1M', '3M', '8M'])
    p.add_argument('--stories', type=int, default=400, help='validation stories scored per round (default: 400)')
    p.add_argument('--windows', type=int, default=16, help='batches of validation windows per round (default: 16)')
    p.add_argument('--steps', type=int, default=3, help='training steps per round (default: 3)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    sys.path.insert(0, str(root))
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
    if args.threads: torch.set_num_threads(args.threads)
    kept = keep_freed_memory()  # as the commands set it: the big tensors of each step and batch reused
    data = root / 'data'
    tok_dir = course_tokenizer(data)
    tok = load_tokenizer(tok_dir)
    valid = course_stories('valid', data_dir=data)
    stories = list(islice(iter_stories(valid), args.stories))
    cfg = TrainConfig()
    with tempfile.TemporaryDirectory() as d:
        vbin = prepare([valid], tok_dir, Path(d) / 'valid.bin')
        print(f'{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} on {torch.get_num_threads()} threads, '
              f'load average {os.getloadavg()[0]:.2f} at start, {time.strftime("%Y-%m-%d")}; training step {cfg.batch_size} x {cfg.context} '
              f'{cfg.dtype}; {len(stories)} validation stories; median of {args.rounds} rounds; keep_freed_memory {kept}\n', flush=True)
        print('| preset | non-emb params | train tok/s | step\'s forward tok/s | x train | stories fp32 tok/s | x train | stories bf16 tok/s | x train | windows fp32 tok/s | x train | windows bf16 tok/s | x train | padding |')
        print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|', flush=True)
        for name in args.presets:
            torch.manual_seed(0)
            model = GPT(preset_config(name, tok.get_vocab_size(), context=cfg.context))
            tm32 = TextModel(name, model, tok, eot_id(tok))
            tm16 = TextModel(name, GPT(model.config).to(torch.bfloat16), tok, eot_id(tok))
            tm16.model.load_state_dict(model.state_dict())
            opt = make_optimizer(model, cfg)
            x = torch.randint(0, tok.get_vocab_size(), (cfg.batch_size, cfg.context + 1))
            def step():
                model.train()
                with autocast('cpu', cfg.dtype): loss = lm_loss(model(x[:, :-1]), x[:, 1:])
                loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip); opt.step(); opt.zero_grad(set_to_none=True)
            def train_steps():
                for _ in range(args.steps): step()
            def forwards():
                with torch.inference_mode(), autocast('cpu', cfg.dtype):
                    for _ in range(args.steps): lm_loss(model(x[:, :-1]), x[:, 1:])
            vdata = TokenFile(vbin, vocab_size=tok.get_vocab_size(), context=cfg.context)
            def windows(): return evaluate(model, vdata, 16, cfg.context, args.windows, dtype='fp32')
            def windows_in_training(): return evaluate(model, vdata, cfg.batch_size, cfg.context, args.windows, dtype=cfg.dtype)
            n_scored = story_scores(tm32, stories[:4])['tokens'] and story_scores(tm32, stories)['tokens']  # warm-up, and the count
            step(); windows(); windows_in_training()
            lengths = [b - a for ids in tm32.encode_batch(stories) for a, b, _ in story_windows(len(ids) + 2, cfg.context)]
            pad = padding_share(lengths, length_batches(lengths, 4096))
            n_windows = min(args.windows, vdata.n_eval_batches(16, cfg.context, args.windows)) * 16 * cfg.context
            n_in_training = min(args.windows, vdata.n_eval_batches(cfg.batch_size, cfg.context, args.windows)) * cfg.batch_size * cfg.context
            t = {k: [] for k in ('train', 'forward', 'fp32', 'bf16', 'windows', 'in_training')}
            for _ in range(args.rounds):
                t['train'].append(args.steps * cfg.batch_size * cfg.context / timed(train_steps))
                t['forward'].append(args.steps * cfg.batch_size * cfg.context / timed(forwards))
                t['fp32'].append(n_scored / timed(lambda: story_scores(tm32, stories)))
                t['bf16'].append(n_scored / timed(lambda: story_scores(tm16, stories)))
                t['windows'].append(n_windows / timed(windows))
                t['in_training'].append(n_in_training / timed(windows_in_training))
            m = {k: statistics.median(v) for k, v in t.items()}
            print(f"| {name} | {param_counts(model)['non_embedding']:,} | {m['train']:,.0f} | {m['forward']:,.0f} | {m['forward'] / m['train']:.2f}x | {m['fp32']:,.0f} | {m['fp32'] / m['train']:.2f}x "
                  f"| {m['bf16']:,.0f} | {m['bf16'] / m['train']:.2f}x | {m['windows']:,.0f} | {m['windows'] / m['train']:.2f}x "
                  f"| {m['in_training']:,.0f} | {m['in_training'] / m['train']:.2f}x | {pad:.1%} |", flush=True)
        print(f'\nload average {os.getloadavg()[0]:.2f} at the end')


if __name__ == '__main__':
    main()
