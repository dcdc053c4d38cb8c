"""Find the files a training run would fail on: decode every image with DALI's own decoder.

    python -m dali_msda.pipelines.scan /imagenet/train --out train_good.txt
    python -m dali_msda.pipelines.scan train_list.txt --num-classes 1000 --out good.txt
    python -m dali_msda.pipelines.scan /data/shards/*.tar --num-classes 1000
    python -m dali_msda.pipelines.scan --segmentation /ade/train --num-classes 150
    python -m dali_msda.pipelines.scan --segmentation /voc --num-classes 21 --convert-masks fixed

Exit status: 0 when nothing is bad, 1 when bad samples are listed, 2 for a usage error.

An ImageFolder tree: every file the pipelines' reader would read (by extension, as
fn.readers.file picks them) is decoded in batches by DALI ("mixed" on a GPU, "cpu" without,
`--device`) in worker processes (one per core by default); a batch that fails is split in
halves until the failing files are found. Workers are processes because DALI 2.4's CPU decoder
can crash the process after a failed batch: a crash costs a worker, not the scan.
Bad files are listed with the reason; `--out FILE` writes a file list of the good ones
("path label", labels numbered as the tree's sorted class folders number them), which
`imagenet_train(file_list=..., classes=folder_classes(tree))` and `train --data ROOT
--file-list` accept (the command printed at the end is complete for the scanned tree).
Files the reader skips (other extensions) and class folders without images are reported too.

A file list ("path label" lines, as fn.readers.file reads them: the label is the last field,
the path the rest, spaces included, relative to the list's folder): every line whose label is
not a class index (ASCII digits, below `--num-classes` when given) is listed by line, and every
listed file is decoded. `--out` writes the good lines.

WebDataset shards: every sample must have one image (jpg / jpeg / png) and a `.cls`; samples
missing either, `.cls` that is not a class index (ASCII digits with optional whitespace around
them, below `--num-classes` when given: fn.msda.class_label's rule, which the pipelines apply),
and images that do not decode are listed by shard and key. The pipelines' WebDataset reader
stops at an incomplete sample (it does not skip it): fix the shards, e.g. by repacking the good
samples.

Segmentation data (`--segmentation`: a tree with images/ and masks/, or a pair list, as
dali_msda.pipelines.segmentation_train reads them): pairs that do not match by name, then every
image and mask decoded by DALI, and every mask read with the rules of fn.msda.label_map (the
pipelines' reading): its class indices are a greyscale PNG's values or a palette PNG's indices
(VOC's SegmentationClass as it comes); RGB, RGBA, grey-and-alpha, 16-bit and JPEG masks, and
palettes that give two used indices one colour, are refused; it must have its image's size and
hold class indices below `--num-classes` or `--ignore-index` (255). Bad pairs are listed with
the rule and the value. `--convert-masks FOLDER` writes the refused masks that can be converted
as index PNGs (`--palette voc` maps RGB masks in VOC's colours to their classes) and
FOLDER/pairs.txt, the good pairs with them, for `segmentation_train(file_list=...)`.

The decode is a full decode; training decodes a random crop of each image, which can pass on a
file truncated below the crop. The scan is the stricter judge.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import selectors
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np

from dali_msda import child_env, dali_error_reason
from dali_msda._cli import HelpFormatter, check_output_paths, int_at_least

from .common import class_index, read_file_list, resolve_device, tree_items

WDS_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


# ---- what a file is, from its first bytes -------------------------------------------------------

def suspicious(fmt, note):
    return fmt == "unknown" or "truncated" in note or "no frame header" in note


def sniff(data):
    """(format, note) of an encoded image from its bytes; note is '' or what is unusual."""
    if len(data) == 0:
        return "empty", "empty file (0 bytes)"
    head = bytes(data[:16])
    if head[:3] == b"\xff\xd8\xff":
        components = jpeg_components(data)
        note = {1: "grayscale JPEG", 4: "CMYK JPEG", None: "no frame header"}.get(components, "")
        if bytes(data[-2:]) != b"\xff\xd9":
            note = (note + ", " if note else "") + "no end-of-image marker (truncated?)"
        return "jpeg", note
    for magic, fmt in ((b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"), (b"BM", "bmp"),
                       (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
                       (b"\x00\x00\x00\x0cjP  ", "jpeg2000")):
        if head.startswith(magic):
            return fmt, ""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp", ""
    return "unknown", f"not an image format DALI knows (starts with {head[:8]!r})"


def jpeg_components(data):
    """Number of colour components in a JPEG's frame header (SOFn), or None."""
    data, k = bytes(data), 2
    while k + 4 <= len(data):
        if data[k] != 0xFF:
            return None
        marker = data[k + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            k += 2
            continue
        length = int.from_bytes(data[k + 2:k + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return data[k + 9] if k + 9 < len(data) else None
        k += 2 + length
    return None


# ---- decoding with DALI, bisecting failed batches ------------------------------------------------
#
# DALI 2.4's CPU image decoder can crash the whole process (SIGSEGV in its thread pool) after a
# batch fails to decode, sometimes with one bad file in it. So the decoding runs in worker
# processes: a worker decodes batches until one fails, reports DALI's message and exits; a
# worker that dies without a reply counts as a failed batch too. The parent splits failed
# batches in halves until it has the files, and keeps `workers` processes busy meanwhile.

FAULT_ENV = "DALI_MSDA_SCAN_FAULT"  # tests: a worker fed a blob starting with this crashes


class Decoder:
    """`judge(blobs)` -> per blob None (decodes) or why not, decoding with DALI in worker
    processes (`workers`, each a pipeline of `threads` threads and batches of `batch_size`)."""

    def __init__(self, device="auto", threads=1, batch_size=32, workers=None):
        self.device = resolve_device(device)
        self.threads, self.batch_size = threads, batch_size
        if workers is None:  # one GPU serves one worker; CPU workers share the cores
            workers = 1 if self.device == "gpu" else max(1, (os.cpu_count() or 2) // threads)
        self.workers = workers
        self._idle = []
        self.spawned = 0

    def _spawn(self):
        self.spawned += 1
        return subprocess.Popen([sys.executable, "-m", "dali_msda.pipelines.scan", "--worker",
                                 self.device, str(self.threads), str(self.batch_size)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())

    @staticmethod
    def _send(proc, blobs):
        try:
            proc.stdin.write(json.dumps([len(b) for b in blobs]).encode() + b"\n")
            for b in blobs:
                proc.stdin.write(memoryview(b).cast("B"))
            proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def judge_all(self, blobs, suspicious):
        """judge(), with each `suspicious` blob (not an image format, a JPEG without its frame
        header or end marker) in a batch of its own, so that it fails alone."""
        order = [k for k in range(len(blobs)) if not suspicious[k]]
        singles = [[k] for k in range(len(blobs)) if suspicious[k]]
        jobs = [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]
        return self._judge(blobs, jobs + singles)

    def judge(self, blobs):
        jobs = [list(range(k, min(k + self.batch_size, len(blobs))))
                for k in range(0, len(blobs), self.batch_size)]
        return self._judge(blobs, jobs)

    def _judge(self, blobs, jobs):
        errors = [None] * len(blobs)
        jobs = collections.deque(j for j in jobs if j)
        running = {}
        with selectors.DefaultSelector() as sel:
            while jobs or running:
                while jobs and len(running) < self.workers:
                    job = jobs.popleft()
                    proc = self._idle.pop() if self._idle else self._spawn()
                    running[proc] = job
                    sel.register(proc.stdout, selectors.EVENT_READ, proc)
                    if not self._send(proc, [blobs[k] for k in job]):
                        proc.kill()  # it died: its reply will read as a crash
                for key, _ in sel.select():
                    proc = key.data
                    job = running.pop(proc)
                    sel.unregister(proc.stdout)
                    line = proc.stdout.readline()
                    reply = json.loads(line) if line.strip() else None
                    if reply is not None and reply["ok"]:
                        self._idle.append(proc)
                        continue
                    proc.stdin.close()
                    proc.wait()
                    proc.stdout.close()
                    if reply is not None and "fatal" in reply:
                        for other in running:
                            other.kill()
                        self.close()
                        raise RuntimeError(f"scan: DALI's decoding pipeline on {self.device} "
                                           f"cannot be built: {reply['fatal']}")
                    if len(job) == 1:
                        errors[job[0]] = (reply["reason"] if reply is not None else
                                          "DALI's decoder crashed the process (exit code "
                                          f"{proc.returncode})")
                    else:
                        jobs.extend([job[:len(job) // 2], job[len(job) // 2:]])
        return errors

    def close(self):
        for proc in self._idle:
            proc.stdin.close()
            proc.wait()
            proc.stdout.close()
        self._idle = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def worker_main(device, threads, batch_size):
    """A decoding worker: reads batches (a JSON line of sizes, then the bytes) from stdin,
    answers each with a JSON line; after a failed batch it answers and exits at once."""
    from nvidia.dali import fn, pipeline_def, types

    gpu = device == "gpu"

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=0 if gpu else None,
                  prefetch_queue_depth=1, exec_dynamic=False)
    def pipe():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
        # the decoded images themselves (on the GPU with "mixed"): nothing is copied back
        return fn.decoders.image(encoded, device="mixed" if gpu else "cpu",
                                 output_type=types.RGB)

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    fault = os.environ.get(FAULT_ENV, "").encode()
    try:  # a pipeline that cannot be built is no verdict on the files: say so, once
        p = pipe()
        p.build()
        fatal = None
    except Exception as e:
        fatal = dali_error_reason(e)
    while True:
        header = inp.readline()
        if not header:
            return 0
        blobs = [np.frombuffer(inp.read(n), dtype=np.uint8) for n in json.loads(header)]
        if fatal is not None:
            out.write(json.dumps({"ok": False, "fatal": fatal}).encode() + b"\n")
            out.flush()
            return 4
        if fault and any(bytes(b[:len(fault)]) == fault for b in blobs):
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            p.feed_input("encoded", blobs)
            p.run()
            reply = {"ok": True}
        except Exception as e:
            reply = {"ok": False, "reason": dali_error_reason(e)}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
        if not reply["ok"]:
            os._exit(3)  # the failed pipeline may still crash the process: leave now


# ---- sources ----------------------------------------------------------------------------------

def shard_samples(path):
    """WebDataset samples of one tar: {key: {ext: bytes}} in order (key = the member's path up to
    the first dot of its name, as the webdataset convention groups them)."""
    samples = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            folder, name = os.path.split(member.name)
            stem, dot, ext = name.partition(".")
            key = os.path.join(folder, stem)
            samples.setdefault(key, {})[ext.lower() if dot else ""] = \
                tar.extractfile(member).read()
    return samples


def progress(done, total, bad, t0, stream=None):
    stream = stream or sys.stderr
    width = 24
    filled = int(width * done / max(total, 1))
    rate = done / max(time.perf_counter() - t0, 1e-9)
    stream.write(f"\rscan [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                 f"{bad} bad {rate:7.1f} files/s")
    stream.flush()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def scan_tree(root, decoder, show_progress=True):
    items, skipped, empty, classes = tree_items(root)
    report = scan_items(items, decoder, show_progress)
    report.update(root=root, classes=classes, skipped=skipped, empty_classes=empty)
    return report


def label_rule(num_classes):
    """The bound a label breaks (class_index's rule), as the scan says it."""
    return (f"below {num_classes}" if num_classes else
            "below 2^31, what an int32 label holds (no --num-classes)")


def scan_file_list(file_list, decoder, num_classes=None, show_progress=True):
    """A 'path label' file list: lines whose label breaks the rule (or whose file is missing)
    are bad, by line; the other files are decoded."""
    items, bad, lines = [], [], {}
    for k, path, label, text in read_file_list(file_list, num_classes):
        where = f"{file_list}:{k}"
        if label is None:
            bad.append((where, f"the label is not a class index (ASCII digits, "
                               f"{label_rule(num_classes)}): {text[:120]!r}"))
        elif not os.path.isfile(path):
            bad.append((where, f"{path}: no such file"))
        else:
            items.append((path, label))
            lines.setdefault(path, []).append(k)
    report = scan_items(items, decoder, show_progress)
    decode_bad = [(f"{file_list}:{k}", f"{path}: {reason}") for path, reason in report["bad"]
                  for k in lines.get(path, ["?"])]
    report.update(file_list=file_list, files=report["files"] + len(bad),
                  bad=sorted(bad + decode_bad, key=lambda b: int(b[0].rsplit(":", 1)[1])),
                  skipped=[], empty_classes=[], classes=None, num_classes=num_classes)
    return report


def scan_items(items, decoder, show_progress=True):
    """Decodes the files of (path, label) items: the good ones, the bad ones with the reason."""
    bad, notes = [], {}
    t0 = time.perf_counter()
    size = decoder.batch_size * decoder.workers * 2  # files in flight: every worker busy
    with concurrent.futures.ThreadPoolExecutor(max(2, decoder.workers)) as pool:
        chunks = [items[k:k + size] for k in range(0, len(items), size)]
        reads = pool.map(lambda chunk: [read_bytes(p) for p, _ in chunk], chunks)
        good = []
        for chunk, datas in zip(chunks, reads):  # reading runs ahead of decoding
            feed, fed = [], []
            for (path, label), data in zip(chunk, datas):
                fmt, note = sniff(data)
                if note:
                    notes.setdefault(note, []).append(path)
                if fmt == "empty":
                    bad.append((path, note))
                    continue
                feed.append(np.frombuffer(data, dtype=np.uint8))
                fed.append((path, label, fmt, note))
            errors = decoder.judge_all(feed, [suspicious(f, n) for _, _, f, n in fed])
            for (path, label, fmt, note), err in zip(fed, errors):
                if err is None:
                    good.append((path, label))
                else:
                    what = note if fmt == "unknown" else f"{fmt}{', ' + note if note else ''}"
                    bad.append((path, f"{what}: does not decode ({err})"))
            if show_progress:
                progress(len(good) + len(bad), len(items), len(bad), t0)
    if show_progress:
        sys.stderr.write("\n")
    return {"files": len(items), "good": good, "bad": bad,
            "notes": {k: v for k, v in notes.items() if k != "empty file (0 bytes)"}}


def scan_shards(paths, decoder, num_classes=None, show_progress=True):
    bad, total, good = [], 0, 0
    t0 = time.perf_counter()
    for path in paths:
        samples = shard_samples(path)
        feed, fed = [], []
        for key, parts in samples.items():
            total += 1
            where = f"{path}:{key}"
            images = [e for e in parts if e in WDS_IMAGE_EXTENSIONS]
            if not images:
                bad.append((where, f"no image ({'/'.join(WDS_IMAGE_EXTENSIONS)}); has "
                                   f"{sorted(parts) or 'nothing'}"))
                continue
            if "cls" not in parts:
                bad.append((where, f"no .cls (class index); has {sorted(parts)}"))
                continue
            if class_index(parts["cls"], num_classes) is None:
                bad.append((where, f".cls is not a class index (ASCII digits with optional "
                                   f"whitespace around them, {label_rule(num_classes)}): "
                                   f"{parts['cls'][:20]!r}"))
                continue
            data = parts[images[0]]
            fmt, note = sniff(data)
            if fmt == "empty":
                bad.append((where, f".{images[0]}: {note}"))
                continue
            feed.append(np.frombuffer(data, dtype=np.uint8))
            fed.append((where, images[0], fmt, note))
        errs = decoder.judge_all(feed, [suspicious(f, n) for _, _, f, n in fed])
        for (where, ext, fmt, note), err in zip(fed, errs):
            if err is None:
                good += 1
            else:
                what = note if fmt == "unknown" else f"{fmt}{', ' + note if note else ''}"
                bad.append((where, f".{ext} ({what}): does not decode ({err})"))
        if show_progress:
            progress(good + len(bad), total, len(bad), t0)
    if show_progress:
        sys.stderr.write("\n")
    return {"shards": list(paths), "files": total, "good": good, "bad": bad}


# ---- label maps: the rules of fn.msda.label_map, read with Pillow ----------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(data):
    """(bit depth, colour type, palette as a list of (r, g, b)) of a PNG's bytes, or None."""
    if data[:8] != PNG_SIGNATURE:
        return None
    at, depth, color, palette = 8, None, None, []
    while at + 8 <= len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        if kind == b"IHDR" and length >= 13:
            depth, color = body[8], body[9]
        elif kind == b"PLTE":
            palette = [tuple(body[k:k + 3]) for k in range(0, length - 2, 3)]
        elif kind in (b"IDAT", b"IEND"):
            break
        at += 12 + length
    return None if depth is None else (depth, color, palette)


def voc_palette():
    """Pascal VOC's colour map: index i's colour from the bits of i (the devkit's bitget)."""
    colors = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors


def read_label_map(path, palette=None):
    """(class indices as uint8 H x W, None, None) as fn.msda.label_map reads the map, or (None,
    why not, convertible indices or None): the rules of the op (a greyscale or palette PNG's
    indices, Pillow's reading) with the same refusals (RGB, RGBA, grey and alpha, 16-bit,
    JPEG, a palette colour two indices share where a pixel shows it). `palette`: colours whose
    indices an RGB(A) map's colours are (--palette), for its conversion."""
    from PIL import Image

    with open(path, "rb") as f:
        data = f.read()
    header = png_header(data)
    with Image.open(path) as im:
        mode, fmt = im.mode, im.format
        arr = np.asarray(im)
    if fmt == "JPEG":
        return None, ("a JPEG: lossy compression puts values between the classes at their "
                      "edges; a label map must be a lossless PNG"), None
    if header is None:  # another format: fine while every pixel is grey
        if arr.ndim == 3 and not (arr[..., :3] == arr[..., :1]).all():
            return None, f"not a PNG and has colour (mode {mode})", None
        return (arr[..., 0] if arr.ndim == 3 else arr).astype(np.uint8), None, None
    depth, color, plte = header
    if color == 0 and depth <= 8:
        return arr.astype(np.uint8), None, None
    if color == 0:
        small = arr.max(initial=0) <= 255
        return None, (f"a {depth}-bit greyscale PNG: decoders scale it to 8 bits, so its "
                      "values are not kept"), arr.astype(np.uint8) if small else None
    if color == 3:
        used = np.unique(arr)
        seen = {}
        for index, rgb in enumerate(plte):
            seen.setdefault(rgb, []).append(index)
        for index in used:
            if index < len(plte) and len(seen[plte[index]]) > 1:
                a, b = seen[plte[index]][:2]
                return None, (f"a palette PNG whose palette gives indices {a} and {b} the same "
                              f"colour {plte[index]}, which its pixels show: the index "
                              "cannot be recovered from the decoded colour"), arr.astype(np.uint8)
        return arr.astype(np.uint8), None, None
    what = {2: "an RGB", 4: "a grey-and-alpha", 6: "an RGBA"}.get(color, f"a colour type {color}")
    why = (f"{what} PNG: its values are colours, not class indices; a label map is a "
           "single-channel PNG of indices or a palette PNG")
    converted = arr[..., 0].astype(np.uint8) if color == 4 else None
    if palette is not None and color in (2, 6):
        converted, lacking = palette_indices(path, palette)
        if lacking is not None:
            why += f"; colour {lacking} is not in --palette"
    return None, why, converted


def palette_indices(path, palette):
    """An RGB(A) map's colours as the indices of `palette` (a list of colours), or (None, the
    first colour it lacks)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    table = {}
    for index, (r, g, b) in enumerate(palette):
        table.setdefault((r << 16) | (g << 8) | b, index)
    colors = np.unique(keys)
    missing = [c for c in colors.tolist() if c not in table]
    if missing:
        c = missing[0]
        return None, (c >> 16, (c >> 8) & 255, c & 255)
    lut_keys = np.array(sorted(table), np.int64)
    lut_vals = np.array([table[k] for k in sorted(table)], np.uint8)
    return lut_vals[np.searchsorted(lut_keys, keys)], None


def label_problem(values, num_classes, ignore_index):
    if num_classes is None:
        return None
    wrong = np.unique(values)
    wrong = wrong[(wrong >= num_classes) & (wrong != ignore_index)]
    if wrong.size:
        return (f"holds labels that are neither classes (below {num_classes}) nor "
                f"`--ignore-index` {ignore_index}: {wrong[:8].tolist()}")
    return None


def mask_problem(image_path, mask_path, num_classes=None, ignore_index=255, palette=None):
    """(why a mask cannot serve its image, or None; its indices when a conversion can give
    them, else None): its form (read_label_map), size and values (the segmentation pipelines'
    rules). `palette`: colours whose indices an RGB(A) map's colours are (--palette)."""
    from PIL import Image

    try:
        with Image.open(image_path) as im:
            size = im.size
        values, why, converted = read_label_map(mask_path, palette)
    except OSError as e:
        return f"unreadable ({e})", None
    shape = values.shape if values is not None else (converted.shape if converted is not None
                                                      else None)
    if shape is not None and (shape[1], shape[0]) != size:
        return (f"its size {shape[1]} x {shape[0]} (W x H) differs from its image's "
                f"{size[0]} x {size[1]}"), None
    if why:
        problem = label_problem(converted, num_classes, ignore_index) if converted is not None \
            else None
        return why, (converted if problem is None else None)
    return label_problem(values, num_classes, ignore_index), None


def scan_segmentation(path, decoder, num_classes=None, ignore_index=255, show_progress=True,
                      convert=None, palette=None):
    """A segmentation tree or pair list: unmatched names, then every image and mask decoded,
    then every mask checked against its image (mask_problem). `convert`: a folder to write the
    masks that a conversion can give as index PNGs (report["converted"]: (mask, written))."""
    from PIL import Image

    from dali_msda import DataError

    from .segmentation import segmentation_pairs

    try:
        images, masks = segmentation_pairs(path if os.path.isdir(path) else None,
                                           None if os.path.isdir(path) else path)
    except DataError as e:
        return {"files": 0, "good": [], "bad": [(path, str(e))], "notes": {}, "skipped": [],
                "empty_classes": [], "classes": None, "converted": []}
    items = [(p, k) for k, p in enumerate(images)] + [(p, k) for k, p in enumerate(masks)]
    report = scan_items(items, decoder, show_progress)
    bad = list(report["bad"])
    failed = {p for p, _ in bad}
    converted = {}
    for image, mask in zip(images, masks):
        if image in failed or mask in failed:
            continue
        problem, indices = mask_problem(image, mask, num_classes, ignore_index, palette)
        if problem and indices is not None and convert:
            os.makedirs(convert, exist_ok=True)
            stem = os.path.splitext(os.path.basename(mask))[0]
            written = os.path.join(convert, stem + ".png")
            if os.path.exists(written) and written not in converted.values():
                bad.append((mask, f"mask of {image}: {problem}; not converted: {written} "
                                  "exists"))
                continue
            Image.fromarray(indices).save(written)
            converted[mask] = written
        elif problem:
            hint = "; --convert-masks FOLDER writes it as an index PNG" if indices is not None \
                else ""
            bad.append((mask, f"mask of {image}: {problem}{hint}"))
    bad_paths = {p for p, _ in bad}
    good = [(i, converted.get(m, m)) for i, m in zip(images, masks)
            if i not in bad_paths and m not in bad_paths]
    report.update(files=len(images), good=good, bad=bad, skipped=[], empty_classes=[],
                  classes=None, converted=sorted(converted.items()))
    return report


def train_hint(scanned, out, file_list):
    """How to train on the good files' list: with the training script's --data, whose train/
    (or val/) folders number the labels, when the scanned tree is such a split; else with the
    pipeline and the tree's classes."""
    import shlex

    if not file_list:
        tree = os.path.abspath(scanned)
        root, split = os.path.split(tree)
        if split in ("train", "val") and os.path.isdir(os.path.join(root, "train")):
            option = "--file-list" if split == "train" else "--val-file-list"
            command = ["python", "-m", "dali_msda.pipelines.train", "--data", root, option, out]
            return f"train with `{shlex.join(command)}` (and your other options)"
        return (f"train with imagenet_train(file_list={out!r}, classes=folder_classes("
                f"{tree!r})): the labels number that tree's class folders")
    return (f"train with imagenet_train(file_list={out!r}, num_classes=...) or the training "
            f"script's --file-list {out} with the --data whose train/ classes the labels index")


def write_file_list(good, out):
    """'path label' lines (absolute paths) for fn.readers.file(file_list=...), which reads the
    last field as the label and the rest as the path (spaces in paths are fine; a line break,
    or whitespace at either end of a name, cannot be written)."""
    for path, _ in good:
        if "\n" in path or "\r" in path or path != path.strip():
            raise ValueError(f"--out: {path!r} holds a line break or starts or ends with "
                             "whitespace, which a DALI file list cannot hold (one 'path label' "
                             "per line); rename it.")
    with open(out + ".tmp", "w") as f:
        for path, label in good:
            f.write(f"{os.path.abspath(path)} {label}\n")
    os.replace(out + ".tmp", out)


def main(argv=None):
    """Returns the report (exit status: 0 nothing bad, 1 bad samples listed, 2 usage error)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:  # a decoding process of Decoder (internal)
        return worker_main(argv[1], int(argv[2]), int(argv[3]))
    ap = argparse.ArgumentParser(prog="python -m dali_msda.pipelines.scan", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("paths", nargs="+",
                    help="an ImageFolder tree, a 'path label' file list, or WebDataset .tar "
                         "shards")
    ap.add_argument("--out", default=None,
                    help="write the good files' list here (trees and file lists)")
    ap.add_argument("--num-classes", type=int_at_least(1), default=None,
                    help="labels must be below this (file lists, shards; a tree numbers its "
                         "folders itself)")
    ap.add_argument("--json", default=None, help="write the full report here")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="where DALI decodes (auto: the GPU when DALI sees one)")
    ap.add_argument("--workers", type=int_at_least(1), default=None,
                    help="decoding processes (default: one per core on the CPU, 1 on a GPU)")
    ap.add_argument("--threads", type=int_at_least(1), default=None,
                    help="DALI threads per worker (default: 1 on the CPU, all cores on a GPU)")
    ap.add_argument("--batch-size", type=int_at_least(1), default=32,
                    help="files a worker decodes at once (a failing batch is split)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--segmentation", action="store_true",
                    help="the path is segmentation data: images/ + masks/, or a pair list")
    ap.add_argument("--ignore-index", type=int, default=255,
                    help="--segmentation: the mask label that is not a class (-1: none)")
    ap.add_argument("--convert-masks", default=None, metavar="FOLDER",
                    help="--segmentation: write the masks that can be converted (palette PNGs "
                         "whose colours repeat, 16-bit PNGs of values below 256, grey-and-alpha "
                         "PNGs (their grey), RGB(A) PNGs with --palette) to FOLDER as index "
                         "PNGs, and FOLDER/pairs.txt: the good pairs with them")
    ap.add_argument("--palette", choices=["voc"], default=None,
                    help="--segmentation: RGB(A) masks show these colours, whose indices are the "
                         "classes (voc: Pascal VOC's colour map)")
    args = ap.parse_args(argv)
    shards = [p for p in args.paths if p.endswith(".tar")]
    if shards and len(shards) != len(args.paths):
        ap.error("give one ImageFolder tree, one file list, or only .tar shards")
    if not shards and len(args.paths) != 1:
        ap.error(f"give one ImageFolder tree or one file list; got {len(args.paths)} paths")
    if (args.convert_masks or args.palette) and not args.segmentation:
        ap.error("--convert-masks and --palette apply to --segmentation data")
    if shards and args.out:
        ap.error("--out writes a file list of an ImageFolder tree or a file list; shards are "
                 "fixed by repacking them without the samples listed")
    if args.segmentation and not -1 <= args.ignore_index <= 255:
        ap.error(f"--ignore-index must be in [0, 255] (a label of the uint8 masks), or -1 for "
                 f"none, as the segmentation pipelines take it; got {args.ignore_index}")
    if args.segmentation and args.num_classes is not None and args.num_classes > 256:
        ap.error(f"--num-classes must be <= 256 with --segmentation (uint8 masks, as the "
                 f"segmentation pipelines take them); got {args.num_classes}")
    check_output_paths(ap, files=[("--out", args.out), ("--json", args.json)],
                       folders=[("--convert-masks", args.convert_masks)])
    for flag, out in (("--out", args.out), ("--json", args.json)):
        if out and any(os.path.exists(p) and os.path.exists(out) and os.path.samefile(p, out)
                       for p in args.paths):
            ap.error(f"{flag} {out!r} is the file being scanned; write the list elsewhere (the "
                     "scanned list stays as it is)")
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        ap.error(f"not found: {missing}")
    file_list = None if shards or os.path.isdir(args.paths[0]) else args.paths[0]
    device = resolve_device(args.device)
    threads = args.threads or (1 if device == "cpu" else os.cpu_count() or 4)
    with Decoder(device, threads, args.batch_size, args.workers) as decoder:
        print(f"decoding with DALI on {decoder.device}: {decoder.workers} worker process(es) "
              f"of {threads} thread(s)", flush=True)
        try:
            if args.segmentation:
                report = scan_segmentation(args.paths[0], decoder, args.num_classes,
                                           args.ignore_index, not args.quiet,
                                           args.convert_masks,
                                           voc_palette() if args.palette == "voc" else None)
            elif shards:
                report = scan_shards(shards, decoder, args.num_classes, not args.quiet)
            elif file_list:
                report = scan_file_list(file_list, decoder, args.num_classes, not args.quiet)
            else:
                report = scan_tree(args.paths[0], decoder, not args.quiet)
        except (ValueError, FileNotFoundError) as e:
            print(f"scan: {e}", file=sys.stderr)
            raise SystemExit(2)
    n_good = report["good"] if shards else len(report["good"])
    for where, reason in report["bad"]:
        print(f"BAD {where}: {reason}")
    if not shards:
        for path in report["skipped"]:
            print(f"SKIPPED {path}: not read by the reader (extension)")
        for c in report["empty_classes"]:
            print(f"EMPTY class folder {c!r}: keeps its index, has no images")
        for note, paths in sorted(report["notes"].items()):
            if "truncated" not in note and "not an image" not in note:
                print(f"note: {len(paths)} file(s) decode fine but are a {note}, e.g. "
                      f"{paths[0]}")
    what = ("pairs" if args.segmentation else "samples" if shards else "lines" if file_list
            else "files")
    print(f"{report['files']} {what}: {n_good} good, {len(report['bad'])} bad" +
          ("" if shards or file_list or args.segmentation else
           f", {len(report['skipped'])} skipped by the reader, "
           f"{len(report['empty_classes'])} empty class folder(s)"))
    if args.segmentation and args.convert_masks:
        pairs = os.path.join(args.convert_masks, "pairs.txt")
        os.makedirs(args.convert_masks, exist_ok=True)
        with open(pairs, "w", encoding="utf-8") as f:
            f.writelines(f"{os.path.abspath(i)}\t{os.path.abspath(m)}\n"
                         for i, m in report["good"])
        print(f"converted {len(report['converted'])} mask(s) into {args.convert_masks}; wrote "
              f"{pairs}: {len(report['good'])} good pairs (with the converted masks); train with "
              f"segmentation_train(file_list={pairs!r}, ...)")
    if args.out and args.segmentation:
        with open(args.out, "w", encoding="utf-8") as f:
            f.writelines(f"{os.path.abspath(i)}\t{os.path.abspath(m)}\n"
                         for i, m in report["good"])
        print(f"wrote {args.out}: {len(report['good'])} pairs; train with "
              f"segmentation_train(file_list={args.out!r}, ...)")
    elif args.out:
        try:
            write_file_list(report["good"], args.out)
        except ValueError as e:
            print(str(e), file=sys.stderr)
            raise SystemExit(2)
        labels = (f"labels 0..{len(report['classes']) - 1} ({len(report['classes'])} classes)"
                  if report.get("classes") else "labels as listed")
        print(f"wrote {args.out}: {len(report['good'])} files, {labels}; "
              f"{train_hint(args.paths[0], args.out, file_list)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: v for k, v in report.items()}, f, indent=1)
    report["exit_status"] = 1 if report["bad"] else 0
    return report


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else result["exit_status"])
