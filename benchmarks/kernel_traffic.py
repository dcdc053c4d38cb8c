"""What the GPU kernel would move, counted on the CPU (no GPU needed): the host harness
(tests/kernel_harness.cc) runs the kernel's per-thread function for every thread of the launch
mix.cu plans for an H200 (132 SMs x 8 resident blocks) and records every access; this prints, per
case and method, the bytes the threads ask for against the memory floor (each input byte read
once, each output byte written once), and the 32-byte sectors each warp-wide access touches
(an L1-level figure that ncu reports as sectors per request).

    python benchmarks/kernel_traffic.py [--update-results]   # writes out/ or benchmarks/results/
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-results", action="store_true")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    import pytest  # noqa: F401  (the test module's helpers use it)
    import test_kernel_emulation as emu

    so = emu.build_harness(os.path.join(os.path.dirname(HERE), "build"))
    rows = []
    print(f"{'case':18} {'method':18} {'read/floor':>10} {'write/floor':>11} "
          f"{'sectors/req load':>16} {'store':>6}")
    for case in emu.TRAFFIC_CASES:
        for method in emu.METHODS:  # every image method, and ResizeMix bilinear
            t = emu.traffic(so, case, method, n=args.batch)
            row = {"case": case, "method": method, "batch": args.batch,
                   "read_over_floor": t["image_load_bytes"] / t["input_bytes"],
                   "write_over_floor": t["image_store_bytes"] / t["output_bytes"],
                   "load_sectors_per_requested": t["image_load_sector_bytes"] /
                   t["image_load_bytes"],
                   "store_sectors_per_requested": t["image_store_sector_bytes"] /
                   t["image_store_bytes"],
                   "aux_load_bytes": t["aux_load_bytes"], **t}
            rows.append(row)
            print(f"{case:18} {method:18} {row['read_over_floor']:10.3f} "
                  f"{row['write_over_floor']:11.3f} {row['load_sectors_per_requested']:16.2f} "
                  f"{row['store_sectors_per_requested']:6.2f}")
    out = os.path.join(HERE, "results") if args.update_results else "out"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "kernel_traffic.json"), "w") as f:
        json.dump({"machine": "CPU harness (no GPU): launch planned for 132 SMs x 8 blocks",
                   "rows": rows}, f, indent=1)
    print(f"wrote {os.path.join(out, 'kernel_traffic.json')}")


if __name__ == "__main__":
    main()
