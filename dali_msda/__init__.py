"""dali-msda: Mixup, CutMix, HMix, GMix, FMix and ResizeMix as NVIDIA DALI operators.

Importing the package loads the operator plugin (once per process), after which the operator is
available as ``nvidia.dali.fn.msda.mix`` (and ``nvidia.dali.ops.msda.Mix``)::

    import dali_msda  # noqa: F401  (registers fn.msda.mix)
    from nvidia.dali import fn
    mixed, targets = fn.msda.mix(images, labels, method="cutmix", num_classes=1000)

``dali_msda.reference`` is a NumPy-only reference of the operator (the specification in code).
"""

import importlib.util as _ilu
import os as _os
import sys as _sys

from .methods import MAP_METHODS, METHODS, MODES  # the method table: dali_msda.methods

__version__ = "0.1.0"
__all__ = ["library_path", "load_plugin", "has_gpu", "to_numpy", "dali_error_reason", "child_env",
           "DataError", "METHODS", "MAP_METHODS", "MODES"]


class DataError(RuntimeError):
    """The data is not what training can use: a label that is not a class index, a file that
    does not decode, an incomplete WebDataset sample. The message names the file and line, or
    the shard and key, where that is known, and says how to find the rest."""


_LIB = "libdali_msda.so"
_HERE = _os.path.dirname(_os.path.abspath(__file__))
# A source checkout (setup.py beside the package, sources in csrc/), as opposed to an install.
_CHECKOUT = (_os.path.dirname(_HERE)
             if _os.path.isfile(_os.path.join(_os.path.dirname(_HERE), "setup.py"))
             and _os.path.isdir(_os.path.join(_HERE, "csrc")) else None)
library_path = _os.path.join(_HERE, _LIB)  # where the plugin is loaded from (set on import)
_loaded = False


def _plugin_dir():
    """The folder holding the plugin and its _build_info.py: this package's own, or, when this
    is a source checkout without a build of its own (``python -m dali_msda...`` run from the
    repository root after ``pip install .``, where the checkout shadows the installed
    package), the installed package's. None if there is neither."""
    candidates = [_HERE]
    if _CHECKOUT:
        candidates += [_os.path.join(_os.path.abspath(entry or _os.getcwd()), "dali_msda")
                       for entry in _sys.path]
    for folder in candidates:
        if all(_os.path.isfile(_os.path.join(folder, f)) for f in (_LIB, "_build_info.py")):
            return folder
    return None


def _not_built_message():
    if _CHECKOUT:
        return (f"dali_msda: the operator plugin is not built: neither this source checkout "
                f"({_CHECKOUT}) nor an installed dali-msda holds {_LIB}. In {_CHECKOUT}, run "
                "`pip install .` (builds and installs it; then any folder works, this one "
                "included), or `python setup.py build_plugin` to build it in place.")
    return (f"dali_msda: the operator plugin {library_path} (or its _build_info.py) is missing: "
            "the installation is incomplete. Reinstall from the dali-msda source folder with "
            "`pip install --force-reinstall .`.")


def _read_build_info(folder):
    """The _build_info module written beside the plugin by setup.py."""
    if folder == _HERE:
        from . import _build_info as info
        return info
    spec = _ilu.spec_from_file_location("dali_msda._build_info",
                                        _os.path.join(folder, "_build_info.py"))
    info = _ilu.module_from_spec(spec)
    spec.loader.exec_module(info)
    return info


def _check_build(folder=None):
    """Checks that the plugin in `folder` can be loaded here; returns its build information."""
    folder = folder or _plugin_dir()
    if folder is None:
        raise ImportError(_not_built_message())
    info = _read_build_info(folder)
    rebuild = ("`pip install --force-reinstall .` in the dali-msda source folder"
               + (f" ({_CHECKOUT})" if _CHECKOUT else ""))
    import nvidia.dali as dali

    if dali.__version__ != info.DALI_VERSION:
        raise ImportError(
            f"dali_msda was built against NVIDIA DALI {info.DALI_VERSION} but DALI "
            f"{dali.__version__} is installed; DALI plugins must be rebuilt for each DALI "
            f"release. Rebuild it against the installed DALI with {rebuild}.")
    if getattr(info, "SANITIZE", False) and not _sanitizer_runtime_loaded():
        raise ImportError(
            f"dali_msda: the plugin {_os.path.join(folder, _LIB)} was built with "
            "DALI_MSDA_SANITIZE=1 (AddressSanitizer): it loads only in a process started with "
            "the sanitizer's runtime preloaded, as tests/sanitize.sh starts its tests. For "
            f"normal use rebuild it without DALI_MSDA_SANITIZE: {rebuild}.")
    if _CHECKOUT and getattr(info, "SOURCES_SHA256", None):
        from ._sources import sources_digest

        if sources_digest(_os.path.join(_HERE, "csrc")) != info.SOURCES_SHA256:
            import warnings

            warnings.warn(
                f"dali_msda: the plugin {_os.path.join(folder, _LIB)} was built from other "
                f"C++/CUDA sources than those in {_CHECKOUT}/dali_msda/csrc; it runs the "
                f"sources it was built from. Rebuild with {rebuild}, or in place with "
                "`python setup.py build_plugin`.", RuntimeWarning, stacklevel=3)
    return info


def _sanitizer_runtime_loaded():
    """Whether AddressSanitizer's runtime is mapped into this process (LD_PRELOAD)."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def load_plugin():
    """Load the operator plugin into DALI (idempotent). Called on import."""
    global _loaded, library_path
    if _loaded:
        return
    folder = _plugin_dir()
    _check_build(folder)
    from nvidia.dali import plugin_manager

    library_path = _os.path.join(folder, _LIB)
    plugin_manager.load_library(library_path)
    _loaded = True


def has_gpu():
    """Whether DALI sees a CUDA device (False without a driver)."""
    try:
        from nvidia.dali import backend
        return backend.GetCUDADeviceCount() > 0
    except Exception:
        return False


def to_numpy(tensor_list):
    """A DALI TensorList (CPU or GPU) as NumPy: uniform samples as one stacked array, samples of
    different shapes (e.g. the op's per-sample boxes) as a list of arrays."""
    if hasattr(tensor_list, "as_cpu"):
        tensor_list = tensor_list.as_cpu()
    import numpy as np

    samples = [np.array(tensor_list[i]) for i in range(len(tensor_list))]
    if samples and any(s.shape != samples[0].shape for s in samples):
        return samples
    return np.stack(samples)


load_plugin()


def dali_error_reason(error):
    """The informative line of a DALI pipeline error (e.g. "nvImageCodec failure: '#3'"),
    without the traceback, operator and "pipeline no longer valid" lines around it."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    lines = [ln for ln in lines if "no longer valid" not in ln and "Critical error" not in ln
             and not ln.startswith(("File ", "Error in", "which was used", "encountered",
                                    "C++ context"))]
    return lines[-1] if lines else type(error).__name__


def child_env(environ=None):
    """An environment for a child Python process that imports this same dali_msda (its parent
    folder first on PYTHONPATH), e.g. a worker started with ``python -m dali_msda...``."""
    environ = dict(_os.environ if environ is None else environ)
    parent = _os.path.dirname(_HERE)
    rest = [p for p in environ.get("PYTHONPATH", "").split(_os.pathsep) if p]
    environ["PYTHONPATH"] = _os.pathsep.join([parent] + rest)
    return environ
