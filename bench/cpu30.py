"""The best model thirty minutes of CPU can train: a small search over shape, dropout, weight decay and learning rate.

Every candidate trains through `tinystories train --time-budget` on the course's sample as CI seeds it: both training
heads (TinyStories V1, first 2,316 stories, and V2, first 1,726: 4,042 stories, 850k tokens with the course's tokenizer),
and is scored as a user would score it, by `tinystories evaluate --stories` on the whole V1 validation sample (1,540
stories), in bits per byte. 30 minutes on two cores is 12 to 15 passes over that sample, so the search is mostly about
regularization: dropout and weight decay, and which shape uses its minutes best.

    python bench/cpu30.py --prepare                            # data/cpu30/{train,valid}.bin (stories from data/tinystories or the Hub)
    OMP_NUM_THREADS=1 python bench/cpu30.py --run A B --budget 15m &   # screen: two candidates at once, a core each
    python bench/cpu30.py --run rdrop20 --budget 30m           # a finalist, both cores (rdrop20 is bench/cpu30.toml)
    python bench/cpu30.py --report                             # the table (bench/results/cpu30.md), the best run's story (cpu30_story.md) and two more (cpu30_more_stories.md)

A candidate's run folder is runs/cpu30/NAME-BUDGET-THREADSt; results accumulate in bench/results/cpu30.json.
The chosen recipe is bench/cpu30.toml: `tinystories train --config bench/cpu30.toml` (README).
"""
import argparse, json, os, platform, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT/'bench'/'results'/'cpu30.json'
VALID_STORIES = ROOT/'data'/'tinystories'/'TinyStories-valid.first1540.txt'  # what `--prepare` fetches: every candidate is scored on it
BASE = ['--train', 'data/cpu30/train.bin', '--valid', 'data/cpu30/valid.bin', '--tokenizer', 'data/course-tokenizer',
        '--batch-size', '16', '--context', '128', '--eval-every', '500', '--ckpt-every', '500', '--sample-tokens', '400']  # room for a story to end
CANDIDATES = {  # name: options on top of BASE; `main` is the five-minute main job's recipe
    'main':        ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1'],
    'drop10':      ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.1', '--attn-dropout', '0.1'],
    'drop20-wd3':  ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.3', '--dropout', '0.2', '--attn-dropout', '0.2'],
    'wide4-drop10': ['--preset', '3M', '--n-embd', '192', '--n-layer', '4', '--n-head', '24', '--lr', '5e-3', '--weight-decay', '0.1', '--dropout', '0.1', '--attn-dropout', '0.1'],
    '8M-drop10':   ['--preset', '8M', '--lr', '3e-3', '--weight-decay', '0.1', '--dropout', '0.1', '--attn-dropout', '0.1'],
    'drop10-ctx256': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.1', '--attn-dropout', '0.1', '--batch-size', '8', '--context', '256'],
    # dropout of activations only: attention keeps the fused kernel, so these get the steps of `main`
    'rdrop10':     ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.1'],
    'rdrop20':     ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.2'],
    'rdrop30':     ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.3'],
    'rdrop10-ctx256': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.1', '--batch-size', '8', '--context', '256'],
    'rdrop20-ctx256': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.2', '--batch-size', '8', '--context', '256'],
    # 8M with heads of 8 channels, as the 3M preset has: attention keeps the fused kernel
    '8M-h32-rdrop10': ['--preset', '8M', '--n-head', '32', '--lr', '3e-3', '--weight-decay', '0.1', '--dropout', '0.1'],
    # Muon for the blocks' matrices (08b_optimizer): it learns more from each step
    'muon-rdrop10': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop20': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.2', '--optimizer', 'muon'],
    'muon-rdrop30': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.1', '--dropout', '0.3', '--optimizer', 'muon'],
    'muon-rdrop20-wd3': ['--preset', '3M', '--lr', '7e-3', '--weight-decay', '0.3', '--dropout', '0.2', '--optimizer', 'muon'],
    # the cosine down to zero instead of to lr / 10, at the peak rate of the rest and at higher ones
    'muon-rdrop10-d2z': ['--preset', '3M', '--lr', '7e-3', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop10-d2z-lr10': ['--preset', '3M', '--lr', '1e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop10-d2z-lr12': ['--preset', '3M', '--lr', '1.2e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop10-d2z-lr14': ['--preset', '3M', '--lr', '1.4e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    # the same options once Muon steps the matrices of each shape as one stack (StackedMuon, 08b_optimizer): the same numbers per step, more steps per minute
    'muon-rdrop10-d2z-lr10-stacked': ['--preset', '3M', '--lr', '1e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop10-d2z-lr12-stacked': ['--preset', '3M', '--lr', '1.2e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop05-d2z-lr12': ['--preset', '3M', '--lr', '1.2e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.05', '--optimizer', 'muon'],
    # a straight line down to zero instead of the cosine (--schedule linear, 09_train)
    'muon-rdrop10-lin-lr10': ['--preset', '3M', '--lr', '1e-2', '--min-lr', '0', '--schedule', 'linear', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    # four heads of 32 channels, or two of 64, instead of sixteen of 8: fewer, larger attention products per step
    'muon-rdrop10-d2z-lr12-h4': ['--preset', '3M', '--n-head', '4', '--lr', '1.2e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
    'muon-rdrop10-d2z-lr12-h2': ['--preset', '3M', '--n-head', '2', '--lr', '1.2e-2', '--min-lr', '0', '--weight-decay', '0.1', '--dropout', '0.1', '--optimizer', 'muon'],
}


def cpu_name():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'


def load(): return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def save_result(key, rec):
    "Merge one result into the JSON file (two screening processes write it in turn)."
    res = load(); res[key] = rec
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(f'.{os.getpid()}.tmp'); tmp.write_text(json.dumps(res, indent=1)); os.replace(tmp, RESULTS)


def tinystories(*args):
    "Run the `tinystories` command; its output, echoed as it comes."
    p = subprocess.run([sys.executable, '-c', 'from tinystories.cli import main; main()', *args], cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(p.stdout); sys.stderr.write(p.stderr[-300:])
    if p.returncode: raise SystemExit(f'tinystories {" ".join(args[:1])} failed ({p.returncode})')
    return p.stdout, p.stderr


def prepare(v1=2316, v2=1726, valid=1540, out='data/cpu30'):
    "The token files of the search in `out` (train.bin from the first `v1` V1 and `v2` V2 training stories, valid.bin from the first `valid` V1 validation stories), made with the course's tokenizer; the stories come from data/tinystories, or the Hub."
    sys.path.insert(0, str(ROOT))
    from tinystories.data import download_tinystories
    from tinystories.tokenizer import course_tokenizer
    from tinystories.pretokenize import prepare as prepare_tokens
    data = ROOT/'data'
    tok = course_tokenizer(data)
    files = {'train': [download_tinystories('train', 'v1', v1, data/'tinystories'), download_tinystories('train', 'v2', v2, data/'tinystories')],
             'valid': [download_tinystories('valid', 'v1', valid, data/'tinystories')]}
    for name, stories in files.items():
        if not (ROOT/out/f'{name}.bin').is_file(): prepare_tokens(stories, tok, ROOT/out/f'{name}.bin')
    return files


def run(name, budget, threads):
    key = f'{name}-{budget}-{threads}t'
    out = f'runs/cpu30/{key}'
    t0, load0 = time.time(), os.getloadavg()[0]
    out_text, err_text = tinystories('train', *BASE, *CANDIDATES[name], '--time-budget', budget, '--out', out, '--force')
    log = out_text + err_text
    train_s = time.time() - t0
    ev = tinystories('evaluate', '--checkpoint', out, '--stories', str(VALID_STORIES.relative_to(ROOT)))[0]  # as a user types it: no machine's own paths in the results
    plan = re.search(r'about ([\d,]+) steps of .*? at ([\d,]+) tokens/s', log)
    cfg = json.loads((ROOT/out/'config.resolved.json').read_text())['train']
    steps = cfg['max_steps']
    final = re.search(r'final validation loss\s+([0-9.]+)', log)
    train_loss = re.search(r'training loss\s+([0-9.]+)', log)
    rec = dict(name=name, options=CANDIDATES[name], budget=budget, threads=threads, steps=steps,
               planned_tok_s=int(plan[2].replace(',', '')) if plan else None, wall_s=round(train_s), train_loss=float(train_loss[1]) if train_loss else None,
               final_val_loss=float(final[1]) if final else None, evaluate=ev.strip().splitlines()[-6:], load_start=round(load0, 2),
               load_end=round(os.getloadavg()[0], 2), cpu=cpu_name(), date=time.strftime('%Y-%m-%d'))
    m = re.search(r'bits per byte\D*([0-9.]+)', ev); rec['bits_per_byte'] = float(m[1]) if m else None
    if 'muon' in CANDIDATES[name]: rec['muon_step'] = 'stacked'  # StackedMuon (08b_optimizer); the runs before it took torch.optim.Muon's step
    rec['story'] = out_text.split('(this command: data, training, evaluation)\n', 1)[-1].strip()  # what `train` prints last
    m = re.search(r'loss per token\D*([0-9.]+)', ev); rec['story_loss'] = float(m[1]) if m else None
    rec['tokens'] = steps * cfg['batch_size'] * cfg['context'] * cfg['grad_accum']
    save_result(key, rec)
    print(json.dumps(rec, indent=1))


def story(key, seed):
    "The story the model of run `key` writes from seed `seed`, as `train` prints it at its end (story_of_run, 10_generate) with `--sample-tokens 400`."
    return tinystories('generate', '--checkpoint', f'runs/cpu30/{key}', '--prompt', 'Once upon a time', '--temperature', '0.8',
                       '--seed', str(seed), '--max-new-tokens', '400')[0].strip()


def retell(key):
    "Store the story the run `key` writes at the end with `--sample-tokens 400` (as bench/cpu30.toml's run prints it), for a run made with fewer."
    res = load(); rec = res[key]
    rec['story'] = story(key, 0)
    save_result(key, rec)


def quote(text): return '\n>\n'.join('> ' + l for l in text.split('\n')) + '\n'


def report():
    rows = sorted(load().values(), key=lambda r: (r['budget'], r['threads'], r['bits_per_byte'] or 9))
    lines = ['| recipe | options | budget | threads | steps | training tokens | passes | train loss | val loss (token file) | story loss | bits/byte | wall |',
             '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    n_train = 850_131
    for r in rows:
        lines.append(f"| {r['name']}{' †' if r.get('muon_step') == 'stacked' else ''} | `{' '.join(r['options'])}` | {r['budget']} | {r['threads']} | {r['steps']:,} | {r['tokens']:,} | {r['tokens'] / n_train:.1f} "
                     f"| {r['train_loss']:.3f} | {r['final_val_loss']:.3f} | {r['story_loss']:.4f} | **{r['bits_per_byte']:.4f}** | {r['wall_s'] / 60:.1f} min |")
    cpus = {c: sorted({r['date'] for r in rows if r['cpu'] == c}) for c in sorted({r['cpu'] for r in rows})}
    cap = (f"{'; '.join(f'{c}, {os.cpu_count()} cores, ' + ' and '.join(d) for c, d in cpus.items())}. Bits per byte: `tinystories evaluate --stories` on the 1,540 V1 validation stories. "
           "†: Muon's step as `StackedMuon` (08b_optimizer), one batched Newton–Schulz per matrix shape; the other Muon rows took `torch.optim.Muon`'s, one matrix at a time: "
           "the same numbers per step, in a training step 1% to 10% longer (`bench/results/muon_step.md`).")
    text = '\n'.join(lines) + '\n\n' + cap + '\n'
    (RESULTS.with_suffix('.md')).write_text(text); print(text)
    finals = [r for r in rows if r['budget'] == '30m' and r.get('story') and r['wall_s'] <= 30 * 60]  # a run that overran is no 30-minute result
    if finals:  # the README quotes the story of the 30-minute run with the lowest loss, and shows its curve
        best = min(finals, key=lambda r: (r['bits_per_byte'], r['story_loss']))  # a tie in bits per byte goes to the lower loss
        key = f"{best['name']}-30m-{best['threads']}t"
        if 'more_stories' not in best and (ROOT/'runs'/'cpu30'/key).is_dir():  # one seed's story is one draw: two more of the same model
            best['more_stories'] = {str(seed): story(key, seed) for seed in (1, 2)}; save_result(key, best)
        (RESULTS.parent/'cpu30_story.md').write_text(quote(best['story']))
        (RESULTS.parent/'cpu30_more_stories.md').write_text('\n'.join(f'Seed {seed}:\n\n' + quote(s) for seed, s in best.get('more_stories', {}).items()))
        if (curve := ROOT/'runs'/'cpu30'/key/'loss.png').is_file(): shutil.copy(curve, ROOT/'images'/'cpu30_loss.png')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--prepare', action='store_true', help='make data/cpu30/{train,valid}.bin (or --data-out) from the first --v1 and --v2 training stories')
    p.add_argument('--v1', type=int, default=2316, help='V1 training stories for --prepare (default: 2,316, the sample CI seeds)')
    p.add_argument('--v2', type=int, default=1726, help='V2 training stories for --prepare (default: 1,726)')
    p.add_argument('--data-out', default='data/cpu30', help='folder of the token files --prepare makes (default: data/cpu30)')
    p.add_argument('--run', nargs='*', help=f'candidates: {", ".join(CANDIDATES)}')
    p.add_argument('--budget', default='30m')
    p.add_argument('--report', action='store_true')
    p.add_argument('--retell', nargs='*', help='runs (NAME-BUDGET-THREADSt) whose final story to write again, up to 400 tokens')
    a = p.parse_args()
    if a.prepare: prepare(a.v1, a.v2, out=a.data_out)
    for name in a.run or []:
        import torch
        run(name, a.budget, torch.get_num_threads())
    for key in a.retell or []: retell(key)
    if a.report: report()
