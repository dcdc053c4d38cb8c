"""The README's promises, run: its code blocks execute as written (CPU, and GPU where DALI sees
one), and the package imports from the repository root, where a newcomer types the commands."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dali_msda import has_gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def readme_block(name, lang="python"):
    text = open(README).read()
    m = re.search(r"<!-- test: %s -->\s*```%s\n(.*?)```" % (re.escape(name), lang), text, re.S)
    assert m, f"README.md has no {lang} block marked <!-- test: {name} -->"
    return m.group(1)


def substitute(code, old, new):
    assert old in code, f"the README block no longer contains {old!r}"
    return code.replace(old, new)


def try_it_here(code, data_line):
    """The block as a reader tries it without the data: the line starting with `data_line`
    replaced by the commented lines right under it, those that are code uncommented (the README
    promises that they run the block on the embedded sets)."""
    lines = code.splitlines()
    i = next((k for k, ln in enumerate(lines) if ln.startswith(data_line)), None)
    assert i is not None, f"the README block no longer has a line starting {data_line!r}"
    k, alternative = i + 1, []
    while k < len(lines) and lines[k].startswith("# "):
        candidate = lines[k][2:]
        try:
            compile(candidate, "line", "exec")
            alternative.append(candidate)
        except SyntaxError:  # a comment about the lines, not code
            alternative.append(lines[k])
        k += 1
    assert any(not ln.startswith("#") for ln in alternative), \
        f"no commented code under {data_line!r} to run the block on the embedded sets"
    return "\n".join(lines[:i] + alternative + lines[k:]) + "\n"


@pytest.fixture
def embedded_here(data_root, monkeypatch):
    """embedded_dataset() in README blocks finds this module's dataset (not ~/.cache)."""
    from dali_msda.pipelines import data

    monkeypatch.setattr(data, "default_cache_dir", lambda sides=data.DEFAULT_SIDES: data_root)
    return data_root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from dali_msda.pipelines import embedded_dataset

    return embedded_dataset(str(tmp_path_factory.mktemp("embedded") / "data"))


@pytest.mark.parametrize("gpu", [False, pytest.param(True, marks=pytest.mark.skipif(
    not has_gpu(), reason="no GPU"))])
def test_usage_snippet_runs(embedded_here, gpu):
    code = try_it_here(readme_block("usage-op"), 'pipe = train_pipe("/imagenet/train")')
    code = substitute(code, "gpu = dali_msda.has_gpu()", f"gpu = {gpu}")
    scope = {}
    exec(compile(code, "README.md (usage-op)", "exec"), scope)
    mixed, targets = (scope[k] for k in ("mixed", "targets"))
    if gpu:
        mixed, targets = mixed.as_cpu(), targets.as_cpu()
    images = np.stack([np.array(mixed[i]) for i in range(len(mixed))])
    t = np.stack([np.array(targets[i]) for i in range(len(targets))])
    assert images.shape == (128, 3, 224, 224) and images.dtype == np.float32
    assert t.shape == (128, 1000)
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
    assert (t > 0.1 / 1000 - 1e-7).all()  # label smoothing 0.1 reaches every class


def test_quick_start_snippet_runs(embedded_here):
    pytest.importorskip("torch")
    scope = {}
    exec(compile(readme_block("quick-start"), "README.md (quick-start)", "exec"), scope)
    images, targets = scope["images"], scope["targets"]
    assert tuple(images.shape) == (32, 3, 224, 224) and tuple(targets.shape) == (32, 14)
    assert float((targets.sum(1) - 1).abs().max()) < 1e-5
    assert float(targets.max(1).values.min()) < 1.0  # mixed (unless partners share a class)


def test_training_loop_snippet_runs(embedded_here, capsys):
    torch = pytest.importorskip("torch")
    code = try_it_here(readme_block("usage-loop"), 'root, epochs = "/imagenet", 90')
    torch.manual_seed(0)
    exec(compile(code, "README.md (usage-loop)", "exec"), {})
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 2
    top1 = [float(ln.rsplit(" ", 1)[1]) for ln in lines]
    assert all(0.0 <= v <= 1.0 for v in top1)


def test_import_from_the_repository_root():
    # `python -m dali_msda...` in the root of a checkout: the checkout's dali_msda/ comes first on
    # sys.path and must find dali_msda.pipelines and a plugin (its own build or the installed one)
    code = ("import dali_msda, dali_msda.pipelines, dali_msda.pytorch; "
            "from nvidia.dali import fn; assert callable(fn.msda.mix); "
            "print(dali_msda.__file__); print(dali_msda.library_path)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, plugin = proc.stdout.split()
    assert package == os.path.join(ROOT, "dali_msda", "__init__.py")
    assert os.path.isfile(plugin)


def test_a_checkout_without_a_plugin_says_what_to_do(tmp_path):
    # a clone in which nothing was built or installed: the error names the commands that work
    checkout = tmp_path / "clone"
    shutil.copytree(os.path.join(ROOT, "dali_msda"), checkout / "dali_msda", symlinks=True,
                    ignore=shutil.ignore_patterns("*.so", "_build_info.py", "__pycache__"))
    shutil.copy(os.path.join(ROOT, "setup.py"), checkout / "setup.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-S", "-c", "import dali_msda"], cwd=checkout,
                          capture_output=True, text=True, env=env)  # -S: no installed copy
    assert proc.returncode != 0
    assert "the operator plugin is not built" in proc.stderr
    assert f"In {checkout}, run `pip install .`" in proc.stderr
    assert "python setup.py build_plugin" in proc.stderr


def test_demo_writes_a_full_colour_png(tmp_path):
    pytest.importorskip("skimage")
    from PIL import Image

    from dali_msda import demo

    out = tmp_path / "demo.png"
    demo.main(["--out", str(out), "--device", "cpu"])
    im = Image.open(out)
    assert im.mode == "RGB"  # not palette-quantised: GMix masks keep their smooth grey ramps
    assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 4096
    seg = np.asarray(Image.open(tmp_path / "demo_seg.png"))  # the label-map grid, beside it
    assert seg.shape[0] > 7 * 150 and seg.shape[2] == 3


def tiny_coco(root, tmp_path, count=10, seed=0):
    """A COCO-style detection set made of the embedded dataset's photographs: random boxes in
    pixels (xywh), 3 categories, one image without annotations."""
    import glob
    import json

    from PIL import Image

    rng = np.random.default_rng(seed)
    files = sorted(glob.glob(os.path.join(root, "train", "*", "*.jpg")))[:count]
    images, annotations = [], []
    for k, path in enumerate(files):
        w, h = Image.open(path).size
        images.append({"id": k + 1, "file_name": os.path.relpath(path, root), "width": w,
                       "height": h})
        for _ in range(0 if k == 3 else int(rng.integers(1, 6))):
            x0, y0 = rng.uniform(0, w - 8), rng.uniform(0, h - 8)
            bw, bh = rng.uniform(4, w - x0), rng.uniform(4, h - y0)
            annotations.append({"id": len(annotations) + 1, "image_id": k + 1,
                                "category_id": int(rng.integers(1, 4)), "iscrowd": 0,
                                "bbox": [x0, y0, bw, bh], "area": bw * bh})
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": c, "name": f"class{c}"} for c in (1, 2, 3)]}))
    return str(ann), len(annotations)


@pytest.mark.parametrize("data", ["embedded", "tiny_coco"])
@pytest.mark.parametrize("gpu", [False, pytest.param(True, marks=pytest.mark.skipif(
    not has_gpu(), reason="no GPU"))])
def test_boxes_snippet_runs_on_a_coco_set(data_root, tmp_path, gpu, data):
    """As the README says to try it (the embedded segmentation set's boxes, 5 categories that the
    reader numbers 1-5), and on a set with an image without boxes (3 categories)."""
    pytest.importorskip("torch")
    code = readme_block("boxes-coco")
    data_line = 'pipe = detection_pipe("/coco/train2017",'
    if data == "embedded":
        code, classes = try_it_here(code, data_line), set(range(1, 6))
    else:
        ann, _ = tiny_coco(data_root, tmp_path)
        code = substitute(code, '"/coco/train2017"', repr(data_root))
        code = substitute(code, '"/coco/annotations/instances_train2017.json"', repr(ann))
        classes = {1, 2, 3}
    code = substitute(code, "gpu = dali_msda.has_gpu()", f"gpu = {gpu}")
    scope = {}
    exec(compile(code, "README.md (boxes-coco)", "exec"), scope)
    images, batch = scope["images"], scope["batch"][0]
    assert tuple(images.shape) == (8, 320, 320, 3)
    boxes, labels, weights = ([t.cpu().numpy() for t in batch[k]]
                              for k in ("boxes", "box_labels", "box_weights"))
    assert len(boxes) == len(labels) == len(weights) == 8
    for b, lab, w in zip(boxes, labels, weights):
        assert b.ndim == 2 and b.shape[1] == 4 and len(lab) == len(b) == len(w)
        assert np.all((b >= 0) & (b <= 1)) and np.all(b[:, :2] <= b[:, 2:])
        assert set(lab.tolist()) <= classes and np.all(w == 1.0)
    assert sum(len(b) for b in boxes) > 0


def test_scan_lines_run_on_the_embedded_sets(tmp_path, monkeypatch):
    """The README's "to try it here" scan commands: their paths are where the embedded sets are
    built (the versions in the names included), and they run and find nothing bad."""
    import shlex

    from dali_msda.pipelines import embedded_dataset, segmentation_dataset

    text = " ".join(open(README).read().split())  # commands wrapped over lines joined
    scan = r"python -m dali_msda\.pipelines\.scan [^`]*~/\.cache/dali_msda/[^`]*"
    commands = re.findall(f"`({scan})`", text)
    assert len(commands) == 2, commands
    cache = tmp_path / "cache"
    monkeypatch.setenv("DALI_MSDA_CACHE", str(cache))
    built = {embedded_dataset(), segmentation_dataset()}
    for k, command in enumerate(commands):
        args = shlex.split(command.replace("~/.cache/dali_msda", str(cache)))
        assert any(os.path.dirname(a) in built for a in args), (command, built)
        args = [str(tmp_path / f"out{k}") if a == "good.txt" else a for a in args]
        proc = subprocess.run([sys.executable] + args[1:] + ["--workers", "2", "--quiet"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-2000:])
    assert len(open(tmp_path / "out0").read().splitlines()) == 14 * 30  # every image good


def test_segmentation_snippet_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("DALI_MSDA_CACHE", str(tmp_path / "cache"))
    scope = {}
    exec(compile(readme_block("seg-loop"), "README.md (seg-loop)", "exec"), scope)
    images, weights, maps = scope["images"], scope["weights"], scope["maps"]
    assert tuple(images.shape) == (16, 3, 128, 128) and tuple(maps.shape) == (16, 128, 128)
    assert tuple(weights.shape) == (16, 2) and float((weights.sum(1) - 1).abs().max()) < 1e-6
    assert set(maps.unique().tolist()) <= set(range(8)) | {255}


def test_dynamic_mode_snippet_runs():
    pytest.importorskip("torch")
    scope = {}
    exec(compile(readme_block("ndd"), "README.md (ndd)", "exec"), scope)
    mixed, targets = scope["mixed"], scope["targets"]
    assert tuple(mixed.shape) == (8, 224, 224, 3) and tuple(targets.shape) == (8, 8)
    assert float((targets.sum(1) - 1).abs().max()) < 1e-6
    assert not bool((mixed == scope["x"]).all())  # something was mixed


def test_mixer_snippet_runs():
    """The training-loop section: Mixer in place of timm's mixup_fn, then index targets."""
    torch = pytest.importorskip("torch")
    scope = {}
    exec(compile(readme_block("mixer"), "README.md (mixer)", "exec"), scope)
    x, labels, weights = scope["x"], scope["labels"], scope["weights"]
    assert tuple(x.shape) == (16, 3, 224, 224) and tuple(labels.shape) == (16, 2)
    assert tuple(weights.shape) == (16,) and bool(((weights >= 0) & (weights <= 1)).all())
    assert torch.isfinite(scope["loss"]) and set(scope["checkpoint"]) == {"model", "mixer"}
