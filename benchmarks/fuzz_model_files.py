"""Full mutation campaign over the model-file readers (issue 15, item 7).

    python benchmarks/fuzz_model_files.py [--cases 10000] [--seed 0] [--memory-gb 1] [--timeout 30]
                                          [--output benchmarks/results/fuzz_model_files.md]

Each case is a valid model file (ACSF committee, shared-network GMP, sGDML) with one seeded
mutation (tests/model_fuzz.py: byte flips, header edits, extreme values, resized arrays, strings,
invalid UTF-8, deleted/duplicated/renamed records, version and count fields; CRC recomputed
97 % of the time). Every case runs in its own forked child process under an address-space limit
(RLIMIT_AS, `ulimit -v`, default 1 GB) and a wall-clock timeout (SIGALRM): the child loads the
bytes with the pure-Python reader (atomforge.read_model) and with the C++ reader
(_core.load_model_bytes: the code atomforge.load, LAMMPS and OpenMM use) and evaluates an
accepted model on a small structure. Outcomes: loaded, clear error (ModelFileError/ValueError
with a message), unexpected exception (any other type, MemoryError included), the two readers
disagreeing, crash (the child dies of a signal), hang (the timeout). Prints a table and writes
it, with the machine, to --output.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import resource
import signal
import sys
import time
from pathlib import Path

# one thread per child: thread stacks and BLAS buffers would otherwise count against the limit
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import model_fuzz  # noqa: E402


def _status(key: str) -> int:
    """A /proc/self/status field in kB (VmHWM, VmPeak, VmRSS)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def run_forked(data: bytes, limit_bytes: int, timeout: int) -> dict:
    """run_case(data) in a forked child under RLIMIT_AS = limit_bytes and a timeout."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            rss0 = _status("VmRSS")
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
            signal.alarm(timeout)
            out = model_fuzz.run_case(data)
            out["hwm_kb"], out["peak_vm_kb"] = _status("VmHWM"), _status("VmPeak")
            out["added_kb"] = out["hwm_kb"] - rss0
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, _ = os.wait4(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"fate": "hang" if sig == signal.SIGALRM else f"crash (signal {signal.Signals(sig).name})"}
    if not chunks:
        return {"fate": "crash (no result)"}
    out = json.loads(b"".join(chunks))
    out["fate"] = "done"
    return out


def classify(res: dict) -> str:
    if res["fate"] != "done":
        return res["fate"].split(" ")[0]
    if any(str(v).startswith("unexpected") for k, v in res.items() if k in ("python", "core", "compute")):
        return "unexpected"
    if (res["python"] == "ok") != (res["core"] == "ok"):
        return "disagree"
    if res["core"] == "ok":
        return "loaded" if res["compute"] == "ok" else "loaded, evaluation refused"
    return "clear"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB, {platform.system()} {platform.release()}"


COLUMNS = ["cases", "loaded", "loaded, evaluation refused", "clear", "unexpected", "disagree", "crash", "hang"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-gb", type=float, default=1.0)
    p.add_argument("--timeout", type=int, default=30)
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)

    import atomforge

    limit = int(args.memory_gb * 2 ** 30)
    seeds = model_fuzz.seed_models()
    t0 = time.time()
    by_seed = collections.defaultdict(collections.Counter)
    by_kind = collections.defaultdict(collections.Counter)
    worst = {"hwm_kb": 0, "peak_vm_kb": 0, "added_kb": 0}
    findings = []
    for i, base, what, data in model_fuzz.cases(args.cases, seed=args.seed, seeds=seeds):
        res = run_forked(data, limit, args.timeout)
        c = classify(res)
        kind = what.split(" ")[0]
        for table, key in ((by_seed, base), (by_kind, kind)):
            table[key]["cases"] += 1
            table[key][c] += 1
        for k in worst:
            worst[k] = max(worst[k], res.get(k, 0))
        if c in ("unexpected", "disagree", "crash", "hang"):
            findings.append((i, base, what, res))
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} cases, {time.time() - t0:.0f} s, findings {len(findings)}", file=sys.stderr)
    seconds = time.time() - t0

    def table(rows, title):
        lines = [f"| {title} | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        total = collections.Counter()
        for key in sorted(rows):
            total.update(rows[key])
            lines.append(f"| {key} | " + " | ".join(str(rows[key][c]) for c in COLUMNS) + " |")
        lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
        return lines, total

    seed_lines, total = table(by_seed, "seed model")
    kind_lines, _ = table(by_kind, "mutation")
    out = [
        "# Model-file fuzzing: full mutation campaign",
        "",
        f"Command: `python benchmarks/fuzz_model_files.py --cases {args.cases} --seed {args.seed} "
        f"--memory-gb {args.memory_gb:g} --timeout {args.timeout}`",
        f"Machine: {machine()}; atomforge {atomforge.__version__}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}; {seconds:.0f} s.",
        "",
        f"Each case loaded in its own forked child under an address-space limit of {args.memory_gb:g} GB "
        f"(RLIMIT_AS, as `ulimit -v`) and a {args.timeout} s timeout, by the Python reader "
        "(`atomforge.read_model`) and the C++ reader (`_core.load_model_bytes`, the code of `atomforge.load`, "
        "LAMMPS and OpenMM), then evaluated on a small structure when it loads. Columns: loaded by both "
        "readers (and evaluated); loaded but the evaluation refused with a clear error (e.g. a non-finite "
        "energy from extreme weights); clear: both readers raised their documented error with a message "
        "naming the file (and the record where there is one); unexpected: any other exception type "
        "(MemoryError included); disagree: one reader accepted what the other refused; crash: the child died "
        "of a signal; hang: the timeout.",
        "",
        f"**{total['cases']} cases: {total['clear']} clear errors, {total['crash']} crashes, {total['hang']} hangs, "
        f"{total['unexpected']} unexpected exceptions, {total['disagree']} disagreements. Peak memory of any "
        f"single load: {worst['hwm_kb'] / 1024:.0f} MB resident (VmHWM of the child, interpreter, numpy and "
        f"atomforge included; at most {worst['added_kb'] / 1024:.0f} MB above the child's resident size at "
        f"fork), {worst['peak_vm_kb'] / 1024:.0f} MB virtual (VmPeak; limit {args.memory_gb * 1024:.0f} MB).**",
        "",
        *seed_lines,
        "",
        *kind_lines,
        "",
    ]
    if findings:
        out += ["## Findings", ""] + [f"- case {i} ({base}, {what}): {res}" for i, base, what, res in findings[:50]]
    text = "\n".join(out) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
