"""The benchmarks' own arithmetic and checks, on inputs whose answers are known (the figures
they report on a GPU depend on it): profile_gpu.py's trace summary, loop_cost.py's checks of
timm's side, op_cost.py's label-map rows."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_summary_of_a_known_trace(tmp_path):
    prof = load("profile_gpu")
    ev = lambda cat, name, ts, dur, **args: {"ph": "X", "cat": cat, "name": name, "ts": ts,
                                             "dur": dur, "args": args}
    events = [
        ev("kernel", "void msda::MixKernel<3, half, uchar>(...)", 100, 50),
        ev("kernel", "void msda::MixKernel<3, half, uchar>(...)", 300, 50),
        ev("kernel", "dali::kernels::SliceHwc2Chw", 120, 60),   # overlaps the first: 100-180
        ev("gpu_memcpy", "Memcpy HtoD (Pinned -> Device)", 200, 10, bytes=4096),
        ev("gpu_memcpy", "Memcpy DtoH (Device -> Pageable)", 400, 5, bytes=8),
        ev("cuda_runtime", "cudaMalloc", 50, 3), ev("cuda_runtime", "cudaStreamSynchronize", 60, 1),
        ev("cuda_runtime", "cudaLaunchKernel", 70, 1),
        ev("kernel", "outside the window", 2000, 100),
    ]
    s = prof.summarize_trace(events, iterations=2, window=(0, 1000))
    assert s["msda_kernel_us_per_iter"] == 50.0  # (50 + 50) / 2
    assert s["gpu_busy_us_per_iter"] == (80 + 10 + 50 + 5) / 2  # the union of device intervals
    assert s["gpu_idle_us_per_iter"] == (1000 - 145) / 2
    assert s["copies"]["h2d"] == {"calls_per_iter": 0.5, "us_per_iter": 5.0,
                                  "bytes_per_iter": 2048.0}
    assert s["copies"]["d2h"]["bytes_per_iter"] == 4.0
    assert s["alloc_calls_per_iter"] == {"cudaMalloc": 0.5}
    assert s["sync_calls_per_iter"] == {"cudaStreamSynchronize": 0.5}
    assert [k["name"][:9] for k in s["kernels"]] == ["void msda", "dali::ker"]
    assert [k["ours"] for k in s["kernels"]] == [True, False]


def test_profile_host_times(tmp_path):
    prof = load("profile_gpu")
    log = tmp_path / "host.log"
    log.write_text("msda.Mix GPU samples=64 upload_bytes=1000 total=30 draw=10 plan=20\n"
                   "msda.Mix GPU samples=64 upload_bytes=3000 total=50 draw=30 plan=20\n"
                   "something else\n")
    assert prof.parse_host_times(str(log)) == pytest.approx(
        {"calls": 2, "upload_bytes_per_call": 2000.0, "total_us": 40.0, "draw_us": 20.0,
         "plan_us": 20.0})
    assert prof.parse_host_times(str(tmp_path / "none.log")) is None


def test_loop_cost_checks_both_sides_and_reports(tmp_path, monkeypatch):
    """loop_cost.py (Mixer against timm's Mixup in the loop) runs its checks and reports every
    method and mode; its check of timm's side catches a CutMix whose targets carry the drawn lam
    instead of the box's (timm's correct_lam), and a Mixup blended with another lam."""
    torch = pytest.importorskip("torch")
    import numpy as np

    lc = load("loop_cost")
    rows = lc.main(["--batch", "8", "--iters", "1", "--out", str(tmp_path / "loop.json")])
    assert [(r["method"], r["mode"]) for r in rows] == [
        ("mixup", "batch"), ("mixup", "elem"), ("cutmix", "batch"), ("cutmix", "elem")]
    assert all(r["ours_ms"] > 0 and r["timm_ms"] > 0 for r in rows)
    assert os.path.getsize(tmp_path / "loop.json") > 0
    pair = lc.main(["--batch", "8", "--iters", "1", "--modes", "pair"])  # timm's pair mode
    assert [(r["method"], r["mode"]) for r in pair] == [("mixup", "pair"), ("cutmix", "pair")]
    last = lc.main(["--batch", "8", "--iters", "1", "--modes", "batch", "--channels-last"])
    assert all(r["channels_last"] and r["ours_ms"] > 0 for r in last)  # checked, then timed

    x0 = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    y = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:8]
    cutmix, mixup = lc.baselines.timm_cutmix_batch, lc.baselines.timm_mixup_batch
    monkeypatch.setattr(lc.baselines, "timm_cutmix_batch",
                        lambda x, lam, cy, cx: (cutmix(x, lam, cy, cx)[0], lam))
    monkeypatch.setattr(lc.baselines, "timm_mixup_batch",
                        lambda x, lam, cy, cx: (mixup(x, 0.9 * lam, cy, cx)[0], lam))
    for method, message in (("cutmix", "box share"), ("mixup", "lam x_i")):
        np.random.seed(1)
        out, targets = lc.TimmMixupLike(method, "batch")(x0.clone(), y)
        with pytest.raises(AssertionError, match=message):
            lc.check_timm(method, out, targets, x0, y)


def test_op_cost_label_maps_rows(tmp_path, capsys):
    """op_cost.py --dtypes seg runs (its pipelines, CPU) and reports a row per method on region
    maps and ClassMix on noise maps, each timed against the op without a map; its region maps
    come in runs along rows (objects), its noise maps do not."""
    pytest.importorskip("torch")
    import numpy as np

    oc = load("op_cost")
    maps = oc.region_maps(np.random.default_rng(0), 4)
    assert maps.shape == (4, 224, 224) and maps.dtype == np.uint8 and maps.max() < 21
    changes = (maps[:, :, 1:] != maps[:, :, :-1]).mean()
    assert 0 < changes < 0.05  # a noise map of 21 labels changes at 95 % of the pixels
    result = oc.main(["--device", "cpu", "--dtypes", "seg", "--batch", "4", "--methods",
                      "cutmix", "--iters", "1", "--cold-mib", "0", "--json",
                      str(tmp_path / "seg.json")])
    rows = [(r["method"], r["maps"], r["without_map_method"]) for r in result["rows"]]
    assert rows == [("cutmix", "regions", "cutmix"), ("classmix", "regions", "cutmix"),
                    ("classmix", "noise", "cutmix")]
    assert all(r["with_map_ms"] > 0 and r["without_map_ms"] > 0 for r in result["rows"])
    out = capsys.readouterr().out
    assert "Label maps" in out and "Mixing a batch" not in out  # no empty table
