"""The kernel from its machine code, without a GPU: builds every instance of the op's kernel
(benchmarks/sass_probe.cu: kernel.h's MixThread at mix.cu's launch bounds) for one GPU
architecture and reports, per instance, registers, spills and stack (ptxas -v), local-memory
instructions, and the static instructions of its unit loop per output element (cuobjdump -sass);
and the same for the "hot" probes, the main case's unit (uint8 HWC -> CHW, normalised, box
masks) with its launch-uniform settings fixed, whose loop is the code that case runs per unit
(both sides of the per-sample mirror branch counted, so it is an upper bound). A loop inside
the unit loop (`inner_loops`, none today) would run more than once a unit: the static count
would then undercount it. Calls from the unit loop (`unit_loop_calls`: the ResizeMix gather, the
label maps, 64-bit divisions) are listed apart, per callee its size and its call sites, since a
callee's instructions run only where its branch is taken (inside a ResizeMix box, say).

The unit loop is found in the SASS as the outermost backward branch whose range holds the
image stores (the widest global stores of the function); its instructions (NOPs aside) are
counted once each and divided by the output elements of a unit: 2 samples x P pixels x C
channels (P = 8 for 1- and 2-byte inputs, 4 for float32). The per-pixel fallback (C = 0) has
no fixed unit.

    python benchmarks/sass_stats.py [--arch 90] [--out benchmarks/results/sass_stats.json]
                                    [--check]   # exit 1 unless the goals below are met

Goals (the GPU issue): the hot plain probe uint8 -> float16 at <= 14 instructions per output
element; no spills and no local memory in any instance.

Tools: nvcc as benchmarks/kernel_bench.sh finds it (DALI_MSDA_NVCC, CUDA_HOME, PATH, the
nvidia-cuda-nvcc wheel); cuobjdump and nvdisasm from the toolkit or PATH, else the wheels
`pip install "nvidia-cuda-cuobjdump>=13,<14" "nvidia-cuda-nvdisasm>=13,<14"`.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL_PER_ELEMENT = 14.0
TYPES = {"h": "uint8", "N4dali7float16E": "float16", "f": "float32"}


def wheel_bins():
    try:
        import nvidia.cu13 as cu13
    except ImportError:
        return []
    return [os.path.join(p, "bin") for p in cu13.__path__]


def find_tool(name, nvcc=None):
    """A CUDA tool: beside nvcc, on PATH, or in the nvidia cu13 wheels."""
    cands = []
    if nvcc:
        cands.append(os.path.join(os.path.dirname(nvcc), name))
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            cands.append(os.path.join(os.environ[env], "bin", name))
    which = shutil.which(name)
    if which:
        cands.append(which)
    cands += [os.path.join(b, name) for b in wheel_bins()]
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def find_nvcc():
    if os.environ.get("DALI_MSDA_NVCC"):
        return os.environ["DALI_MSDA_NVCC"]
    return find_tool("nvcc")


def demangled(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                             text=True, check=True).stdout.splitlines()
        return dict(zip(names, out))
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


def parse_ptxas(text):
    """Per mangled function: registers, spill stores / loads, stack frame bytes."""
    res = {}
    for block in re.split(r"ptxas info\s+: Compiling entry function '", text)[1:]:
        name = block.split("'")[0]
        regs = re.search(r"Used (\d+) registers", block)
        frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill "
                          r"loads", block)
        res[name] = {"registers": int(regs.group(1)) if regs else None,
                     "stack_bytes": int(frame.group(1)) if frame else None,
                     "spill_store_bytes": int(frame.group(2)) if frame else None,
                     "spill_load_bytes": int(frame.group(3)) if frame else None}
    return res


INSN = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def parse_sass(text):
    """Per mangled function: the list of (address, opcode, operands)."""
    funcs, cur = {}, None
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is None:
            continue
        m = INSN.search(line)
        if m:
            cur.append((int(m.group(1), 16), m.group(3), m.group(4).strip()))
    return funcs


def is_store(op):
    """A global store: STG, or a generic ST (pointers the compiler cannot prove global)."""
    return op.startswith("STG") or op.startswith("ST.")


def store_bits(op):
    m = re.search(r"\.(128|64|U8|U16|S8|S16)\b", op)
    return {"128": 128, "64": 64}.get(m.group(1), 16) if m else 32


def unit_loop(insns):
    """The unit loop's instructions: the outermost backward branch range [target, branch] that
    holds the image stores (the widest global stores of the function), or None."""
    stores = [(a, store_bits(op)) for a, op, _ in insns if is_store(op)]
    if not stores:
        return None
    width = max(b for _, b in stores)
    wide = [a for a, b in stores if b == width]
    best = None
    for addr, op, rest in insns:
        if not op.startswith("BRA"):
            continue
        t = re.search(r"0x([0-9a-f]+)", rest)
        if not t:
            continue
        target = int(t.group(1), 16)
        if target >= addr or not any(target <= s <= addr for s in wide):
            continue
        if best is None or addr - target > best[1] - best[0]:
            best = (target, addr)
    if best is None:
        return None
    return [(a, op) for a, op, _ in insns if best[0] <= a <= best[1] and op != "NOP"], best


def loop_calls(insns, span):
    """The calls made from inside the unit loop: per callee (its instructions from its entry to
    its first RET, NOPs aside), the number of call sites in the loop, largest callee first."""
    sites = {}
    for addr, op, rest in insns:
        t = re.search(r"0x([0-9a-f]+)", rest) if op.startswith("CALL") else None
        if t and span[0] <= addr <= span[1]:
            target = int(t.group(1), 16)
            sites[target] = sites.get(target, 0) + 1
    calls = []
    for target, n in sites.items():
        size = 0
        for addr, op, _ in insns:
            if addr < target or op == "NOP":
                continue
            size += 1
            if op.startswith("RET"):
                break
        calls.append({"callee_instructions": size, "sites": n})
    return sorted(calls, key=lambda c: -c["callee_instructions"])


def inner_loops(insns, span):
    """Backward branches inside the unit loop other than its own: loops whose body a unit runs
    more than once (the static count counts them once)."""
    found = []
    for addr, op, rest in insns:
        t = re.search(r"0x([0-9a-f]+)", rest) if op.startswith("BRA") else None
        if t and span[0] <= int(t.group(1), 16) < addr < span[1]:
            found.append((int(t.group(1), 16), addr))
    return found


INSTANCES = {0: "general", 1: "plain", 2: "plain_masks"}  # launch.h PlainKind


def describe(mangled, name):
    """(kernel, C, instance, Out, In) of a probe kernel from its demangled name; instance is
    launch.h's PlainKind by name: general, plain (box masks), plain_masks (box, Gaussian and
    bit masks)."""
    m = re.search(r"probe::(OpKernel|HotKernel)<(\d+), (\d+), ([^,]+), ([^>]+)>", name)
    if not m:
        return None
    clean = {"unsigned char": "uint8", "dali::float16": "float16", "float": "float32"}
    return {"kernel": "hot" if m.group(1) == "HotKernel" else "op", "C": int(m.group(2)),
            "instance": INSTANCES[int(m.group(3))],
            "out": clean.get(m.group(4).strip(), m.group(4)),
            "in": clean.get(m.group(5).strip(), m.group(5))}


def build(arch, workdir):
    nvcc = find_nvcc()
    if not nvcc:
        sys.exit("sass_stats: no nvcc (set DALI_MSDA_NVCC or CUDA_HOME, or put nvcc on PATH)")
    cuobjdump = find_tool("cuobjdump", nvcc)
    if not cuobjdump:
        sys.exit('sass_stats: no cuobjdump: pip install "nvidia-cuda-cuobjdump>=13,<14" '
                 '"nvidia-cuda-nvdisasm>=13,<14"')
    nvdisasm = find_tool("nvdisasm", nvcc)
    if not nvdisasm:
        sys.exit('sass_stats: cuobjdump needs nvdisasm: pip install "nvidia-cuda-nvdisasm>=13,<14"')
    os.makedirs(workdir, exist_ok=True)
    cubin = os.path.join(workdir, f"sass_probe.sm_{arch}.cubin")
    cmd = [nvcc, "-std=c++20", "-O3", "-fmad=false", f"-arch=sm_{arch}", "-cubin",
           "-diag-suppress", "20012", "-Xptxas", "-v",
           "-I", os.path.join(ROOT, "dali_msda", "csrc"),
           "-I", os.path.join(ROOT, "dali_msda", "csrc", "third_party", "dali"),
           os.path.join(ROOT, "benchmarks", "sass_probe.cu"), "-o", cubin]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"sass_stats: build failed:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}")
    env = dict(os.environ, NVDISASM_PATH=os.path.dirname(nvdisasm),
               PATH=os.path.dirname(nvdisasm) + os.pathsep + os.environ.get("PATH", ""))
    sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True, env=env)
    if sass.returncode:
        sys.exit(f"sass_stats: cuobjdump failed: {sass.stderr[-2000:]}")
    version = re.search(r"release ([\d.]+)", subprocess.run(
        [nvcc, "--version"], capture_output=True, text=True).stdout)
    return proc.stderr, sass.stdout, version.group(1) if version else "?"


def stats(arch, workdir):
    ptxas_text, sass_text, nvcc_version = build(arch, workdir)
    ptxas = parse_ptxas(ptxas_text)
    funcs = parse_sass(sass_text)
    names = demangled(list(funcs))
    rows = []
    for mangled, insns in funcs.items():
        d = describe(mangled, names[mangled])
        if d is None:
            continue
        found = unit_loop(insns)
        loop, span = found if found else (None, None)
        p = 4 if d["in"] == "float32" else 8
        elems = 2 * p * d["C"] if d["C"] else None
        ops = [op for _, op, _ in insns]
        row = dict(d, **ptxas.get(mangled, {}), instructions=sum(op != "NOP" for op in ops),
                   local_instructions=sum(op.startswith(("LDL", "STL")) for op in ops),
                   unit_loop_instructions=len(loop) if loop else None,
                   inner_loops=len(inner_loops(insns, span)) if loop else None,
                   unit_loop_calls=loop_calls(insns, span) if loop else None,
                   elements_per_unit=elems)
        row["per_element"] = (round(len(loop) / elems, 2) if loop and elems else None)
        if loop:
            classes = {}
            for _, op in loop:
                base = op.split(".")[0]
                classes[base] = classes.get(base, 0) + 1
            row["unit_loop_opcodes"] = dict(sorted(classes.items(), key=lambda kv: -kv[1]))
        rows.append(row)
    rows.sort(key=lambda r: (r["kernel"], r["in"], r["out"], r["C"], r["instance"]))
    return {"arch": f"sm_{arch}", "nvcc": nvcc_version, "goal_per_element": GOAL_PER_ELEMENT,
            "instances": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="90")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "sass_stats.json"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the goals (see the module's help) are met")
    args = ap.parse_args()
    result = stats(args.arch, args.workdir)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"sass_stats: sm_{args.arch}, nvcc {result['nvcc']} -> {args.out}")
    print(f"{'kernel':6} {'in':8} {'out':8} C {'instance':11} {'regs':>4} {'spill':>9} "
          f"{'stack':>5} "
          f"{'local':>5} {'loop':>5} {'/elem':>6}")
    failures = []
    for r in result["instances"]:
        kind = r["instance"]
        spill = f"{r.get('spill_store_bytes')}/{r.get('spill_load_bytes')}"
        print(f"{r['kernel']:6} {r['in']:8} {r['out']:8} {r['C']} {kind:11} "
              f"{r.get('registers')!s:>4} {spill:>9} {r.get('stack_bytes')!s:>5} "
              f"{r['local_instructions']:>5} {r['unit_loop_instructions']!s:>5} "
              f"{r['per_element']!s:>6}" + (f" ({r['inner_loops']} inner loops)"
                                          if r.get("inner_loops") else ""))
        if r["kernel"] == "op" and (r.get("spill_store_bytes") or r["local_instructions"]):
            failures.append(f"{r['in']} -> {r['out']} C={r['C']} {kind}: spills or local memory")
    hot = {r["instance"]: r for r in result["instances"] if r["kernel"] == "hot"
           and r["in"] == "uint8" and r["out"] == "float16"}
    r = hot.get("plain")
    print(f"main case (hot plain probe, uint8 HWC -> float16 CHW, normalised): "
          f"{r and r['per_element']} instructions per output element (goal <= {GOAL_PER_ELEMENT})")
    if r is None or r["per_element"] is None or r["per_element"] > GOAL_PER_ELEMENT:
        failures.append(f"main case: {r and r['per_element']} instructions per element")
    for name, what in (("plain_masks", "GMix / FMix / ClassMix masks (plain_masks)"),
                       ("general", "any mask (general)")):
        if name in hot:
            print(f"the same case with {what}: {hot[name]['per_element']} per element")
    calls = hot.get("general", {}).get("unit_loop_calls")
    if calls:
        print("its unit loop's calls (the ResizeMix gathers: nearest a unit, bilinear a pixel): "
              + ", ".join(f"{c['sites']} sites of a {c['callee_instructions']}-instruction callee"
                          for c in calls))
    if args.check and failures:
        print("sass_stats: goals not met:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
