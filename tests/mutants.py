"""Planted bugs the test suite must catch: a check of the tests' power, not of the code.

Each mutant of tests/mutants.json is one small edit of the code (`old` replaced by `new` in
`file`: an offset, a bound, a partner, a parameter off by 10 %, an off-by-one at an edge), made
in a copy of the working tree, with the plugin rebuilt in the copy where `build` says so (C++
mutants whose tests run the operator), then `pytest -x` over the mutant's `tests` with the
copy's code. A mutant is caught when a test fails; it survives when every test passes (a gap in
the suite: write the test that catches it); tests still running after --timeout seconds are
killed and the mutant reported hung (an infinite loop planted: the suite would fail at CI's time
limit); a build failure, a collection error or an edit that no longer applies is reported as
such, never as caught.

    python tests/mutants.py                 # every mutant (about 3.5 hours on 2 cores)
    python tests/mutants.py --only bitrun   # some of them, by name
    python tests/mutants.py --list

The exit status is 0 only when every mutant ran and was caught (or hung). tests/test_mutants.py
checks on every run of the suite that each edit still applies to the code (the list does not
rot).
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MUTANTS = os.path.join(HERE, "mutants.json")


def load(path=MUTANTS):
    with open(path) as f:
        return json.load(f)


def apply(text, mutant):
    """The mutated text, or None when `old` does not occur exactly once."""
    return text.replace(mutant["old"], mutant["new"]) if text.count(mutant["old"]) == 1 else None


def tree_files(root):
    """The files of the working tree that a clone would have: tracked, and untracked ones git
    does not ignore."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=root, capture_output=True, check=True).stdout
    return sorted({f for f in out.decode().split("\0") if f and os.path.lexists(
        os.path.join(root, f))})


def run_one(mutant, python, archs, timeout):
    """(status, seconds, detail): status is caught, hung (the tests ran past `timeout`: a
    planted infinite loop, say), survived, stale, build-failed or error."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant['name']}-") as work:
        for f in tree_files(ROOT):
            src, dst = os.path.join(ROOT, f), os.path.join(work, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.islink(src):  # dali_msda/pipelines links to ../pipelines
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
        path = os.path.join(work, mutant["file"])
        with open(path) as f:
            mutated = apply(f.read(), mutant)
        if mutated is None:
            return "stale", time.time() - start, "its `old` text is not in the file exactly once"
        with open(path, "w") as f:
            f.write(mutated)
        env = dict(os.environ, PYTHONPATH=work, DALI_MSDA_CUDA_ARCHS=archs)
        if mutant.get("build"):
            proc = subprocess.run([python, "setup.py", "build_plugin"], cwd=work, env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                return "build-failed", time.time() - start, proc.stderr[-300:]
        proc = subprocess.Popen([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 *shlex.split(mutant["tests"])], cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # its own group: workers die with it
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return "hung", time.time() - start, f"the tests still ran after {timeout:.0f} s"
        failed = [ln for ln in stdout.splitlines() if ln.startswith("FAILED ")]
        if proc.returncode == 0:
            return "survived", time.time() - start, "every selected test passed"
        if proc.returncode == 1 and failed:
            return "caught", time.time() - start, failed[0][len("FAILED "):][:110]
        if proc.returncode < 0 or proc.returncode > 128:  # a test crashed the process
            return "caught", time.time() - start, f"a test crashed (status {proc.returncode})"
        return "error", time.time() - start, (stdout + stderr)[-300:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="names of the mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--archs", default="75",
                    help="DALI_MSDA_CUDA_ARCHS of the copies' plugin builds (default: 75, the "
                         "quickest; no GPU runs them)")
    ap.add_argument("--timeout", type=float, default=1200,
                    help="seconds a mutant's tests may run before it counts as hung (default "
                         "1200; the slowest selection takes about 5 minutes unmutated)")
    args = ap.parse_args()
    mutants = load()
    if args.list:
        for m in mutants:
            print(f"{m['name']:16} {m['file']:40} {m['why']}")
        return 0
    if args.only:
        unknown = sorted(set(args.only) - {m["name"] for m in mutants})
        if unknown:
            sys.exit(f"mutants.py: no mutant named {', '.join(unknown)} (see --list)")
        mutants = [m for m in mutants if m["name"] in args.only]
    counts = {}
    for m in mutants:
        status, seconds, detail = run_one(m, sys.executable, args.archs, args.timeout)
        counts[status] = counts.get(status, 0) + 1
        print(f"{m['name']:16} {status:12} {seconds:5.0f} s  {detail}", flush=True)
    print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0 if counts.get("caught", 0) + counts.get("hung", 0) == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
