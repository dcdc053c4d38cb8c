"""Property-based tests (hypothesis) of fn.msda.mix against dali_msda/reference.py.

Valid cases: random batch sizes (1-9), shapes (1-40 px, C 1-4, sequences of 1-3 frames),
layouts, input and output dtypes, methods, modes (batch, elem, pair: one draw and one mask per
pair), fused normalisation / mirror / output layout, and arguments at and near their edges
(alpha 1e-3 .. 1e3, prob / hmix_ratio / label_smoothing 0 and 1, explicit lam 0 / 1 / just
below 1, centres 0 / just below 1). The op must equal the reference exactly as
tests/test_reference_match.py requires.

Both backends (GPU cases skip where DALI sees no GPU). Invalid cases (one argument broken:
beyond its range, NaN, infinite, wrong length) must fail with an error that names the argument,
never crash: they run in a subprocess, which logs each case before running it, so that a crash
is reported with the case that caused it.

Seed: DALI_MSDA_FUZZ_SEED (printed in pytest's header; random when unset). Examples: 200 valid
and 200 invalid by default; DALI_MSDA_FUZZ_PROFILE=long runs 5000 of each (by hand):

    DALI_MSDA_FUZZ_PROFILE=long DALI_MSDA_FUZZ_SEED=123 python -m pytest tests/test_fuzz.py
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from conftest import FUZZ_SEED, run_mix  # noqa: E402

from dali_msda import methods, reference as ref  # noqa: E402

PROFILE = os.environ.get("DALI_MSDA_FUZZ_PROFILE", "ci")
EXAMPLES = {"ci": 200, "long": 5000}[PROFILE]
METHODS = list(methods.METHODS)
DTYPES = {"uint8": np.uint8, "float16": np.float16, "float32": np.float32}
ONE_MINUS = float(np.nextafter(np.float32(1), np.float32(0)))  # the largest float32 below 1

settings.register_profile("fuzz", max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck), print_blob=True)


def unit(edges=(0.0, 1.0)):
    return st.one_of(st.sampled_from(edges), st.floats(0.0, 1.0, width=32))


@st.composite
def cases(draw):
    """One valid call of fn.msda.mix: a dict of plain values (JSON-able, for logs)."""
    batch = draw(st.integers(1, 9))
    layout = draw(st.sampled_from(["HWC", "CHW", "FHWC", "FCHW"]))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    c = draw(st.integers(1, 4))
    frames = draw(st.integers(1, 3)) if layout.startswith("F") else None
    case = dict(batch=batch, layout=layout, h=h, w=w, c=c, frames=frames,
                dtype=draw(st.sampled_from(list(DTYPES))),
                method=draw(st.sampled_from(METHODS)),
                mode=draw(st.sampled_from(["batch", "elem", "pair"])),
                alpha=draw(st.one_of(st.sampled_from([1e-3, 0.05, 1.0, 1e3]),
                                     st.floats(1e-3, 1e3))),
                prob=draw(unit()), hmix_ratio=draw(unit()), label_smoothing=draw(unit()),
                correct_lam=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
                soft_labels=draw(st.booleans()), box=draw(st.sampled_from(["even", "exact"])))
    # float labels: probability rows, or multi-hot rows (some entries fractional) with multi_label
    case["multi_label"] = case["soft_labels"] and draw(st.booleans())
    if draw(st.booleans()):
        case["lam"] = draw(st.lists(unit((0.0, 1.0, ONE_MINUS, 0.5)), min_size=batch,
                                    max_size=batch))
    if draw(st.booleans()):
        coord = st.one_of(st.sampled_from((0.0, ONE_MINUS)),
                          st.floats(0.0, 1.0, exclude_max=True, width=32))
        case["center"] = draw(st.lists(st.tuples(coord, coord), min_size=batch,
                                       max_size=batch))
    # one mask per batch (per pair): a given lam / centre is the batch's (the pair's first's)
    for name in ("lam", "center"):
        if name in case and case["mode"] != "elem":
            case[name] = [case[name][k] for k in ref.draw_sources(case["mode"], batch)]
    if case["method"] == "fmix":  # the noise is made from `seed` (materialise)
        case["decay_power"] = draw(st.sampled_from([0.25, 1.0, 3.0, 8.0]))
    if case["method"] == "resizemix":  # tau's range (op only: the reference takes tau)
        lo = draw(st.sampled_from([1e-3, 0.1, 0.5, 1.0]))
        case["scale_min"], case["scale_max"] = lo, draw(st.sampled_from([lo, (lo + 1) / 2, 1.0]))
        case["resize_interp"] = draw(st.sampled_from(["nearest", "bilinear"]))
    case["out_dtype"] = draw(st.sampled_from([None, *DTYPES]))
    if draw(st.booleans()):  # fused normalisation
        n = draw(st.sampled_from([1, c]))
        case["mean"] = draw(st.lists(st.floats(-300, 300, width=32), min_size=n, max_size=n))
        case["std"] = draw(st.lists(st.floats(0.125, 300, width=32), min_size=n, max_size=n))
    if draw(st.booleans()):
        case["output_layout"] = draw(st.sampled_from(
            ["HWC", "CHW"] if frames is None else ["FHWC", "FCHW"]))
    if frames is None and draw(st.booleans()):
        case["mirror"] = draw(st.lists(st.integers(0, 1), min_size=batch, max_size=batch))
    return case


def materialise(case):
    """(images, labels, op keyword arguments, reference keyword arguments) of a case."""
    rng = np.random.default_rng(case["seed"])
    dims = {"H": case["h"], "W": case["w"], "C": case["c"], "F": case["frames"]}
    shape = (case["batch"],) + tuple(dims[d] for d in case["layout"])
    dtype = DTYPES[case["dtype"]]
    if dtype == np.uint8:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        images = (rng.standard_normal(shape) * 60 + 100).astype(dtype)
    k = max(case["batch"], 3)
    if case.get("multi_label"):
        labels = (rng.random((case["batch"], k)) < 0.4).astype(np.float32)
        labels = np.where(rng.random(labels.shape) < 0.2, rng.random(labels.shape),
                          labels).astype(np.float32)
    elif case["soft_labels"]:
        labels = rng.dirichlet(np.ones(k), size=case["batch"]).astype(np.float32)
    else:
        labels = np.array([[i % k] for i in range(case["batch"])], dtype=np.int32)
    common = {name: case[name] for name in ("method", "hmix_ratio", "correct_lam",
                                            "label_smoothing", "mean", "std", "output_layout",
                                            "mirror", "box", "multi_label")
              if case.get(name) is not None}
    op = dict(common, mode=case["mode"], alpha=case["alpha"], prob=case["prob"],
              layout=case["layout"], seed=case["seed"] % 100000 + 1,
              num_classes=None if case["soft_labels"] else k)
    for name in ("lam", "center"):
        if case.get(name) is not None:
            op[name] = np.array(case[name], dtype=np.float32)
    if case["out_dtype"]:
        from conftest import NP_TO_DALI
        op["dtype"] = NP_TO_DALI[DTYPES[case["out_dtype"]]]
    reference = dict(common, num_classes=op["num_classes"], layout=case["layout"],
                     dtype=DTYPES[case["out_dtype"]] if case["out_dtype"] else None)
    if case["method"] == "fmix":
        b, h, w = case["batch"], case["h"], case["w"]
        noise = rng.standard_normal((b, h, w // 2 + 1, 2)).astype(np.float32)
        # one mask per batch (per pair): the batch's noise (the pair's first's)
        noise = noise[ref.draw_sources(case["mode"], b)]
        op.update(fmix_noise=noise, decay_power=case["decay_power"])
        reference.update(fmix_noise=noise, decay_power=case["decay_power"])
    if case["method"] == "resizemix":
        op.update(scale_min=case["scale_min"], scale_max=case["scale_max"],
                  resize_interp=case["resize_interp"])
        reference.update(resize_interp=case["resize_interp"])
    return images, labels, op, reference


@settings.get_profile("fuzz")
@hypothesis.seed(FUZZ_SEED)
@given(case=cases())
def test_valid_cases_equal_the_reference(device, case):
    images, labels, op, reference = materialise(case)
    mixed, targets, masks, params = run_mix(images, labels, device=device, **op)
    if case["mode"] == "batch":  # one draw per batch (ResizeMix: a centre per sample)
        same = params[:, :2] if case["method"] == "resizemix" else params
        assert (same == same[0]).all()
    if case["mode"] == "pair":  # one draw and one mask per pair
        np.testing.assert_array_equal(params, params[::-1])
        np.testing.assert_array_equal(masks, masks[::-1])
    if case.get("lam") is not None:
        np.testing.assert_array_equal(params[:, 1], np.float32(case["lam"]))
    if case["method"] == "fmix":  # the coin, read off the op's masks (ceil or floor lam H W)
        ones = masks.reshape(len(masks), -1).sum(1)
        reference["fmix_round_up"] = ones == np.ceil(params[:, 1].astype(np.float64) *
                                                     case["h"] * case["w"])
    exp_mixed, exp_targets, exp_masks = ref.mix(
        images, labels, reference.pop("method"), lam=params[:, 1],
        center=params[:, 2:4].astype(np.int64), apply=params[:, 0] == 1.0, **reference)
    np.testing.assert_array_equal(masks, exp_masks)
    assert mixed.dtype == exp_mixed.dtype
    np.testing.assert_array_equal(mixed, exp_mixed)
    np.testing.assert_allclose(targets, exp_targets, rtol=0, atol=2e-6)
    assert np.isfinite(params).all() and ((params[:, 1] >= 0) & (params[:, 1] <= 1)).all()


# ---- invalid cases, in a subprocess -------------------------------------------------------------

BAD_UNIT = [-1e-3, -1.0, 1.0001, 2.0, math.nan, math.inf, -math.inf]


@st.composite
def invalid_cases(draw):
    """A valid case with one argument broken; returns (case, argument name)."""
    case = draw(cases())
    case["mirror"] = None if case["frames"] else case.get("mirror")
    name = draw(st.sampled_from(["alpha", "prob", "hmix_ratio", "label_smoothing", "lam",
                                 "center", "labels", "mean", "std", "mirror", "output_layout",
                                 "method_id", "box"]))
    b = case["batch"]
    i = draw(st.integers(0, b - 1))  # the sample that gets the bad value
    if name == "alpha":
        case["alpha"] = draw(st.sampled_from([0.0, -1e-3, -5.0, math.nan, math.inf]))
    elif name in ("prob", "hmix_ratio", "label_smoothing"):
        case[name] = draw(st.sampled_from(BAD_UNIT))
    elif name == "lam":
        lam = list(case.get("lam") or [0.5] * b)
        lam[i] = draw(st.sampled_from(BAD_UNIT))
        case["lam"] = lam
    elif name == "center":
        center = [list(c) for c in (case.get("center") or [(0.5, 0.5)] * b)]
        center[i][draw(st.integers(0, 1))] = draw(st.sampled_from([1.0, -1e-3, 5.0, math.nan,
                                                                   math.inf]))
        case["center"] = center
    elif name == "labels":
        case["soft_labels"] = False
        case["bad_label"] = (i, draw(st.sampled_from([-1, "k", "k+5"])))
    elif name in ("mean", "std"):
        c = case["c"]
        bad = draw(st.sampled_from(["length", math.nan, math.inf] +
                                   ([0.0, -1.0] if name == "std" else [])))
        case.setdefault("mean", [0.0])
        case.setdefault("std", [1.0])
        if bad == "length":
            case[name] = [1.0] * (c + 1 if c > 1 else 2)
        else:
            values = list(case[name])
            values[draw(st.integers(0, len(values) - 1))] = bad
            case[name] = values
    elif name == "mirror":
        if case["frames"]:
            case["mirror"] = [1] * b  # mirror with sequences is refused
        else:
            mirror = list(case.get("mirror") or [0] * b)
            mirror[i] = draw(st.sampled_from([2, -1, 7]))
            case["mirror"] = mirror
    elif name == "output_layout":
        case["output_layout"] = draw(st.sampled_from(["WHC", "HCW", "CHWF", "FCHW", "HW"]
                                                     if case["frames"] is None else
                                                     ["HWC", "CHW", "FWHC"]))
    elif name == "box":
        case["box"] = draw(st.sampled_from(["odd", "", "EVEN", "exact "]))
    elif name == "method_id":
        case["method_id"] = [0] * b
        case["method_id"][i] = draw(st.sampled_from([7, -1, 100]))
        case["mode"] = "elem"
    return case, name


def run_invalid(case, name, device="cpu"):
    """Runs one invalid case; returns None when it fails as it must, else what went wrong."""
    images, labels, op, _ = materialise(case)
    if "bad_label" in case:
        i, value = case["bad_label"]
        k = op["num_classes"]
        labels = labels.copy()
        labels[i, 0] = {-1: -1, "k": k, "k+5": k + 5}[value]
    if "method_id" in case:
        op.pop("method")
        op["method"] = ""
        op["method_id"] = np.array(case["method_id"], dtype=np.int32)
    try:
        run_mix(images, labels, device=device, **op)
    except RuntimeError as e:
        message = str(e)
        if f"`{name}`" not in message:
            return f"the error does not name `{name}`: {message.strip().splitlines()[-3:]}"
        return None
    except Exception as e:  # a Python-side failure is not the op's clear error
        return f"{type(e).__name__} instead of DALI's error: {e}"
    return "no error"


def invalid_main(seed, examples, log_path, device="cpu"):
    """Entry point of the subprocess: runs `examples` invalid cases, logging each first."""
    failures = []
    with open(log_path, "w") as log:
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @hypothesis.seed(seed)
        @given(invalid_cases())
        def check(case_name):
            case, name = case_name
            log.write(json.dumps({"argument": name, "case": case}) + "\n")
            log.flush()
            problem = run_invalid(case, name, device)
            if problem:
                failures.append((name, case, problem))
            assert problem is None, problem

        try:
            check()
        except AssertionError:
            pass
    for name, case, problem in failures[-1:]:
        print(f"FAIL `{name}`: {problem}\n  case: {json.dumps(case)}")
    return 1 if failures else 0


def test_invalid_cases_fail_with_an_error_naming_the_argument(device, tmp_path):
    from dali_msda import child_env

    log = tmp_path / "cases.jsonl"
    proc = subprocess.run([sys.executable, __file__, "invalid", str(FUZZ_SEED), str(EXAMPLES),
                           str(log), device], cwd=os.path.dirname(HERE), capture_output=True,
                          text=True, timeout=1800, env=child_env())  # the dali_msda imported here
    last = log.read_text().splitlines()[-1] if log.exists() and log.read_text() else "(none)"
    assert proc.returncode == 0, (
        f"seed {FUZZ_SEED}: exit code {proc.returncode}"
        f"{' (a crash)' if proc.returncode < 0 else ''}; last case run: {last}\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    assert len(log.read_text().splitlines()) >= min(EXAMPLES, 50)


if __name__ == "__main__":
    if sys.argv[1:2] == ["invalid"]:
        sys.exit(invalid_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]))
