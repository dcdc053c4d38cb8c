"""dali-msda: Mixup, CutMix, HMix and GMix as NVIDIA DALI operators.

Importing the package loads the operator plugin (once per process), after which the operator is
available as ``nvidia.dali.fn.msda.mix`` (and ``nvidia.dali.ops.msda.Mix``)::

    import dali_msda  # noqa: F401  (registers fn.msda.mix)
    from nvidia.dali import fn
    mixed, targets = fn.msda.mix(images, labels, method="cutmix", num_classes=1000)

``dali_msda.reference`` is a NumPy-only reference of the operator (the specification in code).
"""

import os as _os

__version__ = "0.1.0"
__all__ = ["library_path", "load_plugin", "has_gpu", "to_numpy", "METHODS", "MODES"]

METHODS = ("mixup", "cutmix", "hmix", "gmix")
MODES = ("batch", "elem")

library_path = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "libdali_msda.so")
_REBUILD = ("pip install --no-build-isolation --no-deps --force-reinstall "
            "<path to the dali-msda source>")
_loaded = False


def _check_build():
    try:
        from . import _build_info
    except ImportError as e:
        raise ImportError(
            f"dali_msda: the operator plugin has not been built ({library_path} or its "
            f"_build_info.py is missing). Build it with `{_REBUILD}`, or in a source checkout "
            "with `python setup.py build_plugin`.") from e
    if not _os.path.exists(library_path):
        raise ImportError(f"dali_msda: {library_path} is missing; rebuild with `{_REBUILD}`.")
    import nvidia.dali as dali

    if dali.__version__ != _build_info.DALI_VERSION:
        raise ImportError(
            f"dali_msda was built against NVIDIA DALI {_build_info.DALI_VERSION} but DALI "
            f"{dali.__version__} is installed; DALI plugins must be rebuilt for each DALI "
            f"release. Rebuild it against the installed DALI with `{_REBUILD}`.")


def load_plugin():
    """Load the operator plugin into DALI (idempotent). Called on import."""
    global _loaded
    if _loaded:
        return
    _check_build()
    from nvidia.dali import plugin_manager

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
    """A DALI TensorList (CPU or GPU) of uniform samples as one stacked NumPy array."""
    if hasattr(tensor_list, "as_cpu"):
        tensor_list = tensor_list.as_cpu()
    import numpy as np

    return np.stack([np.array(tensor_list[i]) for i in range(len(tensor_list))])


load_plugin()
