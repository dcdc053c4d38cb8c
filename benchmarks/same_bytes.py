"""Digests of the operator's outputs over every method x mode x dtype x layout (and mirror,
normalisation, label maps, boxes, mask and params outputs), for showing that a change of the
code leaves the output bytes as they were.

    python benchmarks/same_bytes.py --out before.json          # on the old build
    python benchmarks/same_bytes.py --compare before.json      # on the new one: exit 1 on change

Every case runs the op with a fixed seed on deterministic data (224 x 224 x 3 images, batches of
5: two pairs and a middle sample alone) for two iterations, on the CPU backend, and on the GPU
backend as well with --gpu. A case the op refuses is recorded by its error's first line, so a
refusal that changes shows too.
"""

import argparse
import hashlib
import itertools
import json
import sys

import numpy as np

import dali_msda  # loads the plugin
import dali_msda.methods
from nvidia.dali import fn, pipeline_def, types

B, H, W, C, K = 5, 224, 224, 3, 10
METHODS = list(dali_msda.methods.ALL)
NP = {"uint8": np.uint8, "float16": np.float16, "float32": np.float32}
DALI = {"uint8": types.UINT8, "float16": types.FLOAT16, "float32": types.FLOAT}


def images(dtype, layout):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(B, H, W, C)).astype(np.float32)
    if dtype != "uint8":
        x = x / 255.0 + rng.normal(0, 0.01, size=x.shape).astype(np.float32)
    x = x.astype(NP[dtype])
    if layout == "CHW":
        x = x.transpose(0, 3, 1, 2)
    if layout == "FHWC":  # two frames a sample
        x = np.stack([x, x[::-1]], axis=1)
    return [np.ascontiguousarray(s) for s in x]


def label_maps():
    rng = np.random.default_rng(8)
    maps = rng.integers(0, 6, size=(B, H // 16, W // 16)).astype(np.uint8)
    maps = maps.repeat(16, axis=1).repeat(16, axis=2)
    maps[:, :10, :10] = 255
    return [np.ascontiguousarray(m) for m in maps]


def boxes():
    rng = np.random.default_rng(9)
    out, labels = [], []
    for i in range(B):
        n = i % 3 + 1
        lt = rng.uniform(0, 0.6, size=(n, 2))
        wh = rng.uniform(0.05, 0.4, size=(n, 2))
        out.append(np.concatenate([lt, np.minimum(lt + wh, 1.0)], axis=1).astype(np.float32))
        labels.append(np.arange(n, dtype=np.int32) + i)
    return out, labels


def run_case(device, method, mode, in_dtype, out_dtype, layout, out_layout, mirror, norm, seg,
             with_boxes):
    xs = images(in_dtype, layout)
    ys = [np.array([i % K], dtype=np.int32) for i in range(B)]
    maps = label_maps() if seg else None
    bx, bl = boxes() if with_boxes else (None, None)

    @pipeline_def(batch_size=B, num_threads=2, device_id=0 if device == "gpu" else None,
                  seed=1234, prefetch_queue_depth=1)
    def pipe():
        x = fn.external_source(source=lambda: xs, batch=True, layout=layout)
        y = fn.external_source(source=lambda: ys, batch=True)
        inputs = [x, y]
        if maps is not None:
            inputs.append(fn.external_source(source=lambda: maps, batch=True, layout="HW"))
        if device == "gpu":
            inputs = [inputs[0].gpu(), inputs[1]] + [m.gpu() for m in inputs[2:]]
        kw = dict(method=method, mode=mode, alpha=1.0, num_classes=K, output_mask=True,
                  output_params=True, dtype=DALI[out_dtype], label_smoothing=0.1)
        if out_layout:
            kw["output_layout"] = out_layout
        if mirror:
            kw["mirror"] = fn.random.coin_flip(seed=5)
        if norm:
            kw["mean"] = [0.485 * 255, 0.456 * 255, 0.406 * 255]
            kw["std"] = [0.229 * 255, 0.224 * 255, 0.225 * 255]
        if with_boxes:
            kw["boxes"] = fn.external_source(source=lambda: bx, batch=True)
            kw["box_labels"] = fn.external_source(source=lambda: bl, batch=True)
        if method == "classmix":
            kw["ignore_index"] = 255
        return tuple(fn.msda.mix(*inputs, **kw))

    try:
        p = pipe()
        p.build()
        digest = hashlib.sha256()
        for _ in range(2):
            for out in p.run():
                for i in range(len(out)):
                    a = np.asarray(out.as_cpu()[i] if device == "gpu" else out[i])
                    digest.update(str((a.dtype, a.shape)).encode())
                    digest.update(np.ascontiguousarray(a).tobytes())
        return digest.hexdigest()[:24]
    except Exception as e:  # noqa: BLE001  (the refusal is part of the behaviour)
        lines = [line for line in str(e).splitlines() if line.strip()]
        ours = [line for line in lines if "`" in line and "operator `" not in line]
        msg = ours[0] if ours else lines[-1] if lines else repr(e)
        return "error: " + msg.strip()[:200]


def cases():
    for method, mode, in_dtype, out_dtype in itertools.product(
            METHODS, ["batch", "elem"], ["uint8", "float16", "float32"],
            ["uint8", "float16", "float32"]):
        yield (method, mode, in_dtype, out_dtype, "HWC", None, False, False,
               method == "classmix", False)
    for method, mode, (layout, out_layout), mirror, norm in itertools.product(
            METHODS, ["batch", "elem"],
            [("HWC", "CHW"), ("CHW", None), ("CHW", "HWC"), ("FHWC", "FCHW")],
            [False, True], [False, True]):
        if layout == "FHWC" and (mirror or method == "classmix"):
            continue
        yield (method, mode, "uint8", "float16", layout, out_layout, mirror, norm,
               method == "classmix", False)
    for method, mode in itertools.product(METHODS, ["batch", "elem"]):
        if method != "classmix":
            yield (method, mode, "uint8", "float32", "HWC", "CHW", True, True, True, False)
        yield (method, mode, "uint8", "uint8", "HWC", None, True, False, method == "classmix",
               True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the digests to this JSON file")
    ap.add_argument("--compare", help="compare with the digests in this JSON file")
    ap.add_argument("--gpu", action="store_true", help="the GPU backend too")
    args = ap.parse_args()
    devices = ["cpu", "gpu"] if args.gpu else ["cpu"]
    result = {}
    for device in devices:
        for case in cases():
            key = device + " " + " ".join(str(v) for v in case)
            result[key] = run_case(device, *case)
    print(f"{len(result)} cases, {sum(v.startswith('error') for v in result.values())} refused")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare) as f:
            before = json.load(f)
        changed = [k for k in result if k in before and before[k] != result[k]]
        missing = [k for k in before if k not in result and k.split()[0] in devices]
        for k in changed:
            print(f"CHANGED {k}: {before[k]} -> {result[k]}")
        print(f"{len(result) - len(changed)} of {len(result)} cases give the same bytes; "
              f"{len(changed)} changed, {len(missing)} missing")
        return 1 if changed or missing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
