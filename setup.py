"""Build of dali-msda: a DALI operator plugin (libdali_msda.so) inside a Python package.

The plugin is a plain shared library that DALI dlopens (no Python extension module), so the
build is a custom step run by build_py: g++ compiles the .cc files and nvcc the .cu files under
dali_msda/csrc/ (every file found there, no list to edit), with the flags of
nvidia.dali.sysconfig, and g++ links them with DALI and the static CUDA runtime.

Environment knobs:
  DALI_MSDA_NVCC        nvcc to use. Default: $CUDA_HOME/bin/nvcc, else nvcc on PATH, else the
                        nvcc of the nvidia-cuda-nvcc wheel.
  DALI_MSDA_CUDA_ARCHS  semicolon-separated SM versions (default "75;80;86;89;90"); PTX of the
                        last one is embedded too, for newer GPUs.
  CXX                   host C++ compiler (default g++).
  DALI_MSDA_JOBS        parallel compile jobs (default: CPU count).
  DALI_MSDA_SANITIZE    1: the host C++ (.cc) compiled and linked with AddressSanitizer and
                        UndefinedBehaviorSanitizer, for tests/sanitize.sh (such a plugin loads
                        only in a process started with the sanitizer runtime preloaded).

`python setup.py build_plugin` builds dali_msda/libdali_msda.so in place (for development).
"""

import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Command, Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "dali_msda" / "csrc"
LIB_NAME = "libdali_msda.so"
DEFAULT_ARCHS = "75;80;86;89;90"


def _load_sources_module():
    """dali_msda/_sources.py, loaded by path: importing the package would load the plugin."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_dali_msda_sources",
                                                  ROOT / "dali_msda" / "_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_sources = _load_sources_module()
sources_digest = _sources.sources_digest


def include_closure(src):
    """The files of the source tree that compiling `src` reads (dali_msda/_sources.py)."""
    return [Path(p) for p in _sources.include_closure(src)]


def object_sources_digest(src, csrc, by_macro=None):
    """What an object of `src` is keyed by: a digest of the files include_closure finds (paths
    relative to `csrc`, contents), so that an edit recompiles only the objects that read the
    edited file. Where a file of the tree includes by macro (`#include NAME`, which the scan
    cannot follow; `by_macro`, found once a build), every object is keyed by the whole tree."""
    if by_macro is None:
        by_macro = _sources.includes_by_macro(csrc)
    if by_macro:
        return sources_digest(csrc, by_macro)
    return _sources.files_digest(_sources.include_closure(src), csrc)


def log(msg):
    print(f"[dali-msda build] {msg}", flush=True)


def find_nvcc():
    """The nvcc to use and where it came from."""
    env = os.environ.get("DALI_MSDA_NVCC")
    if env:
        return env, "DALI_MSDA_NVCC"
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        return str(Path(cuda_home) / "bin" / "nvcc"), "CUDA_HOME"
    on_path = shutil.which("nvcc")
    if on_path:
        return on_path, "PATH"
    try:
        import nvidia.cu13 as cu13  # the nvidia-cuda-nvcc wheel (CUDA 13)

        for base in cu13.__path__:
            cand = Path(base) / "bin" / "nvcc"
            if cand.exists():
                return str(cand), "nvidia-cuda-nvcc wheel"
    except ImportError:
        pass
    raise RuntimeError(
        "dali-msda: no nvcc found. Set DALI_MSDA_NVCC or CUDA_HOME, put nvcc on PATH, or "
        "`pip install nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt nvidia-cuda-cccl`."
    )


def nvcc_paths(nvcc):
    """Include and library folders of this nvcc's toolkit, read from `nvcc --dryrun`, so that
    g++ and the linker use the same CUDA headers and cudart as nvcc does."""
    out = subprocess.run(
        [nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
        capture_output=True, text=True,
    )
    text = out.stdout + out.stderr
    incs, libs = [], []
    for line in text.splitlines():
        m = re.match(r"#\$ (INCLUDES|SYSTEM_INCLUDES|LIBRARIES)=(.*)", line)
        if not m:
            continue
        toks = [t for t in shlex.split(m.group(2)) if t not in ("-isystem",)]
        for t in toks:
            path = t[2:] if t.startswith(("-I", "-L")) else t
            path = os.path.normpath(path)
            if not os.path.isdir(path):
                continue
            (libs if m.group(1) == "LIBRARIES" else incs).append(path)
    version = re.search(r"release (\d+\.\d+)", subprocess.run(
        [nvcc, "--version"], capture_output=True, text=True).stdout)
    if not incs:
        raise RuntimeError(f"dali-msda: could not read the include folders of {nvcc}:\n{text}")
    return incs, [p for p in libs if not p.endswith("stubs")], version.group(1) if version else "?"


def dali_config():
    try:
        import nvidia.dali as dali
        import nvidia.dali.sysconfig as sc
    except ImportError as e:
        raise RuntimeError(
            "dali-msda: building needs NVIDIA DALI installed (pip install "
            "nvidia-dali-cuda130==2.4.0), or a build with build isolation, which installs it."
        ) from e
    return dali.__version__, sc.get_include_dir(), sc.get_compile_flags(), sc.get_link_flags()


def compiler_version(cxx):
    """The host compiler's full version (part of what an object is keyed by)."""
    try:
        return subprocess.run([cxx, "-dumpfullversion", "-dumpversion"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "unknown"


def run_compile(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"dali-msda: compiling {what} failed (exit {proc.returncode}).\n"
            f"command: {shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stderr


def needed_libraries(lib):
    """The DT_NEEDED entries of a shared library (readelf, from binutils, which g++ needs)."""
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)


def loaded_libstdcxx():
    """Path of the libstdc++ this Python process runs with (loaded by DALI's Python module):
    the one the plugin will share with DALI at run time."""
    import nvidia.dali.backend  # noqa: F401  (a C++ extension: maps libstdc++ into the process)

    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libstdc++.so"):
                return path
    return None


def link_shared(cxx, lib, objects, libs):
    """Link a shared library that uses the process's libstdc++ rather than a copy of its own.

    Some toolchains (a GCC installed outside the system, whose own libstdc++ is static or not
    on the loader's path) link libstdc++ statically into shared libraries. The plugin would then
    carry a second C++ runtime beside the one DALI uses, whose locale is never initialised: seen
    on a GPU machine whose CXX was such a GCC, where formatting the first error message crashed
    the process. When the first link lacks libstdc++.so.6, relink against the libstdc++ this
    Python runs with; if that cannot be done, fail the build with what to change.
    """
    cmd = [cxx, "-shared", "-o", str(lib), *objects, *libs]
    run_compile(cmd, Path(lib).name)
    if any(n.startswith("libstdc++.so") for n in needed_libraries(lib)):
        return
    runtime = loaded_libstdcxx()
    log(f"{cxx} linked libstdc++ statically into {Path(lib).name}; relinking against the "
        f"libstdc++ of this Python ({runtime})")
    if runtime:
        try:
            run_compile([cxx, "-shared", "-o", str(lib), *objects, runtime, *libs],
                        Path(lib).name)
        except RuntimeError as e:
            log(f"relink failed: {e}")
    if not any(n.startswith("libstdc++.so") for n in needed_libraries(lib)):
        Path(lib).unlink(missing_ok=True)
        raise RuntimeError(
            f"dali-msda: the C++ compiler {cxx!r} links libstdc++ statically into shared "
            "libraries, and relinking against the process's libstdc++ "
            f"({runtime or 'not found'}) failed. The plugin must share DALI's C++ runtime. "
            "Build with the system compiler (e.g. CXX=/usr/bin/g++) or one whose libstdc++ is "
            "the one Python loads.")


def build_plugin(out_dir):
    """Compile and link libdali_msda.so into out_dir; write _build_info.py beside it."""
    out_dir = Path(out_dir)
    obj_dir = ROOT / "build" / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    dali_version, dali_inc, dali_cflags, dali_lflags = dali_config()
    nvcc, nvcc_from = find_nvcc()
    cuda_incs, cuda_libs, cuda_version = nvcc_paths(nvcc)
    archs = [a.strip() for a in os.environ.get("DALI_MSDA_CUDA_ARCHS", DEFAULT_ARCHS).split(";")
             if a.strip()]
    cxx = os.environ.get("CXX", "g++")
    dali_defs = [f for f in dali_cflags if not f.startswith("-I")]
    common = ["-std=c++20", "-O3", "-isystem", dali_inc, *dali_defs]
    san_flags = _sources.sanitize_flags()  # DALI_MSDA_SANITIZE
    sanitize = bool(san_flags)
    # no FP contraction: the same rounding as the reference and the GPU; -fno-trapping-math lets
    # the vectoriser turn the clamps of uint8 conversion into selects (values are unchanged)
    cc_flags = [*common, "-fPIC", "-ffp-contract=off", "-fno-trapping-math", "-Wall",
                *[x for inc in cuda_incs for x in ("-isystem", inc)], *san_flags]
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
    cu_flags = [*common, "-Xcompiler", "-fPIC", "-fmad=false", "-diag-suppress", "20012",
                "-ccbin", cxx, *gencode]

    # the translation units as the fingerprint counts them (_sources.py), the .cc files first
    sources = sorted((Path(p) for p in _sources.compiled_sources(CSRC)),
                     key=lambda p: (p.suffix != ".cc", p))
    log(f"DALI {dali_version} ({dali_inc})")
    log(f"nvcc {nvcc} (CUDA {cuda_version}, from {nvcc_from}); CUDA include {cuda_incs}, "
        f"lib {cuda_libs}")
    log(f"host compiler {cxx}; GPU archs sm_{', sm_'.join(archs)} + PTX compute_{archs[-1]}")
    if sanitize:
        log("DALI_MSDA_SANITIZE: the .cc files with " + " ".join(san_flags))
    log(f"sources: {', '.join(str(s.relative_to(ROOT)) for s in sources)}")

    jobs = int(os.environ.get("DALI_MSDA_JOBS", os.cpu_count() or 1))
    cmds = []
    for src in sources:
        # (a sanitizer build's host objects beside the others, not over them)
        suffix = ".san.o" if sanitize and src.suffix == ".cc" else ".o"
        obj = obj_dir / (src.relative_to(CSRC.resolve()).as_posix().replace("/", "_") + suffix)
        if src.suffix == ".cu":
            cmds.append(([nvcc, *cu_flags, "-c", str(src), "-o", str(obj)], src, obj))
        else:
            cmds.append(([cxx, *cc_flags, "-c", str(src), "-o", str(obj)], src, obj))
    # An object is reused when it was built from the same sources (the file and the headers of
    # the tree it includes: object_sources_digest), the same command and compilers, and the same
    # DALI: a second `pip install ".[extra]"` then links instead of compiling again, and an edit
    # compiles only the objects that read the edited file. pip builds in an environment of its
    # own each time, so DALI's include folder (installed there) is keyed by DALI's version
    # instead; nvcc and the CUDA headers by their paths, so another nvcc (the wheel's) compiles
    # again.
    stamp_base = [dali_version, cuda_version, compiler_version(cxx)]

    def normalised(arg):
        return arg.replace(dali_inc, "<dali include>")

    by_macro = _sources.includes_by_macro(CSRC)
    todo = []
    for cmd, src, obj in cmds:
        key = json.dumps([object_sources_digest(src, CSRC, by_macro), *stamp_base] +
                         [normalised(a) for a in cmd])
        stamp = obj.with_suffix(obj.suffix + ".stamp")
        if obj.exists() and stamp.exists() and stamp.read_text() == key:
            log(f"{src.name}: up to date ({obj.relative_to(ROOT)}), not compiled again")
            continue
        stamp.unlink(missing_ok=True)
        todo.append((cmd, src, stamp, key))
    # each object's stamp is written once it has compiled, so that after a failure (reported
    # when every compile has ended) the next build compiles only what failed or changed
    error = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        futures = [ex.submit(run_compile, cmd, src.name) for cmd, src, _, _ in todo]
        for f, (_, _, stamp, key) in zip(futures, todo):
            try:
                f.result()
                stamp.write_text(key)
            except RuntimeError as e:
                error = error or e
    if error:
        raise error

    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / LIB_NAME
    link_shared(cxx, lib, [str(o) for _, _, o in cmds],
                [*san_flags, *dali_lflags, "-ldali_core", *[f"-L{p}" for p in cuda_libs],
                 "-l:libcudart_static.a", "-lrt", "-ldl", "-lpthread", "-Wl,--no-undefined"])
    (out_dir / "_build_info.py").write_text(
        "# Written by setup.py at build time: what this plugin was built against.\n"
        f"DALI_VERSION = {dali_version!r}\n"
        f"CUDA_VERSION = {cuda_version!r}\n"
        f"CUDA_ARCHS = {archs!r}\n"
        f"NVCC = {nvcc!r}\n"
        f"SOURCES_SHA256 = {sources_digest(CSRC, by_macro)!r}\n"
        f"SANITIZE = {sanitize!r}\n"
    )
    log(f"built {lib}")
    return lib


class BuildPy(build_py):
    def run(self):
        super().run()
        # an editable install (pip install -e .) imports the sources: build the plugin there
        editable = getattr(self, "editable_mode", False)
        build_plugin(ROOT / "dali_msda" if editable else Path(self.build_lib) / "dali_msda")


class BuildPlugin(Command):
    description = "build dali_msda/libdali_msda.so in place (development)"
    user_options = []

    def initialize_options(self):
        pass

    def finalize_options(self):
        pass

    def run(self):
        build_plugin(ROOT / "dali_msda")


class BinaryDistribution(Distribution):
    """The wheel holds a native library: tag it for this platform and Python."""

    def has_ext_modules(self):
        return True


if __name__ == "__main__":
    try:
        setup(cmdclass={"build_py": BuildPy, "build_plugin": BuildPlugin},
              distclass=BinaryDistribution)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        raise
