#!/usr/bin/env python
"""The training layout's choices measured in one process: seconds per training epoch of the dense
Jacobian store (``atomforge.train.bpnn.DenseFrameStore``) with each choice switched on and off, the
variants alternating epoch by epoch.

Why one process: this shared VM's speed drifts by up to 2x within an hour, and a fresh process per
run also re-featurises (85 s for rMD17 paracetamol with element-pair channels). Here the data are
prepared once and every round runs each variant for ``--epochs`` epochs in turn, so drift hits the
variants alike; the report gives each variant's median and range and, per round, its time over the
default's (median and range of those ratios).

Variants (the current code's knobs; the trained model and its arithmetic are the same in each, up to
summation order):
  * ``default``: as the trainer builds it (Jacobian stores on transparent huge pages where Linux
    offers them; per-batch products gathered up to ``_FrameMatmul.GATHER_LIMIT`` numbers, per frame
    on views above it);
  * ``4 kB pages``: the same arrays copied into ordinarily paged memory;
  * ``per-frame products``: ``GATHER_LIMIT`` 0 (nothing gathered);
  * ``gathered products``: every product gathered (no per-frame loop);
  * ``compiled step``: the default layout with the trainer's compiled training step
    (``training.compile``; compiled in a warm-up epoch before the rounds, not timed).
The epoch is the trainer's training loop (batches, loss, backward, AdamW step on the parameters in
one flat buffer, weight average);
validation and checkpoints are left out. Each epoch uses its own shuffled order.

Usage:
  python benchmarks/bench_training_layout.py --molecule paracetamol \\
      --descriptor '{"type": "gmp", "channels": "element_pairs"}' --rounds 5 --epochs 2 \\
      --output benchmarks/results/training_layout_variants_paracetamol.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("ATOMFORGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VARIANTS = ("default", "4 kB pages", "per-frame products", "gathered products", "compiled step")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--molecule", default="paracetamol", help="rMD17 molecule (split 01)")
    ap.add_argument("--descriptor", default=None, help="JSON: the descriptor section (default: the CLI default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per variant per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--output", default=None, help="write the markdown report here")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1:
        ap.error("--rounds and --epochs must be at least 1")

    import numpy as np
    import torch

    import atomforge.train.bpnn as bpnn
    from atomforge.train.config import load_config
    from atomforge.train.trainer import FlatParameters, Trainer, WeightAverage

    train = DATA / "rmd17" / f"rmd17_{args.molecule}_train_01.npz"
    if not train.exists():
        sys.exit(f"{train} is missing (set ATOMFORGE_DATA)")
    overrides = {"data": str(train), "training": {"threads": args.threads}}
    if args.descriptor:
        try:
            overrides["descriptor"] = json.loads(args.descriptor)
        except json.JSONDecodeError as exc:
            ap.error(f"--descriptor is not JSON: {exc}")
    cfg = load_config(None, overrides)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as run:
        tr = Trainer(cfg, run, progress=False, log=lambda *a, **k: None)
        tr._prepare()
    store = tr.train_f
    if not isinstance(store, bpnn.DenseFrameStore):
        sys.exit(f"{args.molecule}: the trainer chose {type(store).__name__}, not the dense store")
    prep = time.time() - t0
    skipped = []
    if store.whole:  # one gathered batched product per batch whatever GATHER_LIMIT says
        skipped = [v for v in args.variants if v.endswith("products")]
        args.variants = [v for v in args.variants if v not in skipped]
    mib = (sum(m.numel() * m.element_size() for m in store.offdiag)
           + (store.diagonal.numel() * store.diagonal.element_size() if store.diagonal is not None else 0)) / 2**20

    def plain(x):
        return None if x is None else torch.zeros_like(x).copy_(x)   # ordinary pages (THP mode 'madvise')

    layouts = {"default": (list(store.offdiag), store.diagonal)}
    if "4 kB pages" in args.variants:
        layouts["4 kB pages"] = ([plain(m) for m in store.offdiag], plain(store.diagonal))
    gather_limit = bpnn._FrameMatmul.GATHER_LIMIT
    limits = {"per-frame products": 0, "gathered products": 1 << 62}

    model = tr._make_model().to(tr.dtype)
    tc = cfg["training"]
    tr._flat = FlatParameters(model)  # as the trainer does
    opt = torch.optim.AdamW([tr._flat.param], lr=tc["learning_rate"], weight_decay=tc["weight_decay"], fused=True)
    ema = WeightAverage(model, tc["ema_decay"], tr._flat) if tc.get("ema_decay") else None
    bs = tc["batch_size"]
    rng = np.random.default_rng(0)

    def epoch():  # the trainer's own epoch loop
        tr._train_epoch(model, opt, ema, rng.permutation(len(tr.train_ds)))

    compiled = tr._compile_loss(model) if "compiled step" in args.variants else None

    def use(v):
        store.offdiag[:], store.diagonal = layouts.get(v, layouts["default"])
        bpnn._FrameMatmul.GATHER_LIMIT = limits.get(v, gather_limit)
        tr._compiled, tr._compile_checked = (compiled, True) if v == "compiled step" else (None, False)

    use("default")
    epoch()  # warm-up
    t_compile = None
    if compiled is not None:
        use("compiled step")
        t_compile = time.perf_counter()
        epoch()  # warm-up: compiles
        t_compile = time.perf_counter() - t_compile
        use("default")
    wall = {v: [] for v in args.variants}
    cpu = {v: [] for v in args.variants}
    load0 = os.getloadavg()
    for _ in range(args.rounds):
        for v in args.variants:
            use(v)
            w, c = time.perf_counter(), time.process_time()
            for _ in range(args.epochs):
                epoch()
            wall[v].append((time.perf_counter() - w) / args.epochs)
            cpu[v].append((time.process_time() - c) / args.epochs)
    use("default")
    load1 = os.getloadavg()

    med = statistics.median
    lines = [
        f"# Training layout variants, one process (rMD17 {args.molecule})", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores visible, {platform.system()}; shared (load averages 1/5/15 min before -> after: "
        f"{'/'.join(f'{x:.2f}' for x in load0)} -> {'/'.join(f'{x:.2f}' for x in load1)})",
        f"- data: rMD17 {args.molecule} train_01 ({len(tr.train_ds)} training frames), descriptor "
        f"{json.dumps(cfg['descriptor']) if args.descriptor else 'CLI default'}; dtype {cfg['training']['dtype']}, "
        f"batch {bs}, {args.threads} thread(s); Jacobian store {mib:.0f} MiB ({'whole matrices' if store.whole else 'blocks'}); "
        f"preparation {prep:.0f} s" + (f"; compiling (the warm-up epoch of the compiled step) {t_compile:.0f} s"
                                        if t_compile is not None else ""),
        f"- {args.rounds} rounds, each running every variant for {args.epochs} epoch(s) in the order listed; the "
        "training loop only (no validation or checkpoints)",
        *([f"- not run: {', '.join(skipped)} (whole matrices are always gathered: no per-frame path)"] if skipped else []),
        "- command: `python benchmarks/bench_training_layout.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])) + "`",
        "",
        "| variant | wall s/epoch: median (min - max) | CPU s/epoch: median | time / default per round: median (min - max) |",
        "|---|---|---:|---|",
    ]
    for v in args.variants:
        r = [a / b for a, b in zip(wall[v], wall["default"])] if "default" in wall else []
        ratio = f"{med(r):.3f} ({min(r):.3f} - {max(r):.3f})" if r else "-"
        lines.append(f"| {v} | {med(wall[v]):.3f} ({min(wall[v]):.3f} - {max(wall[v]):.3f}) | {med(cpu[v]):.3f} | {ratio} |")
    lines += ["", "Per round, wall s/epoch: " + "; ".join(
        f"{v}: " + ", ".join(f"{x:.3f}" for x in wall[v]) for v in args.variants)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
