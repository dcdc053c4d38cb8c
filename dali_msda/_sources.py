"""Fingerprint of the operator's C++/CUDA sources (dali_msda/csrc). setup.py records it in
_build_info.py when it builds the plugin; importing dali_msda from a source checkout compares it
with the checkout's sources, so that a plugin built from other sources is not used silently.
Standard library only: setup.py loads this file without importing the package."""

import hashlib
import os


def sources_digest(csrc):
    """SHA-256 over the relative paths and contents of every file under `csrc`, or None when
    the folder does not exist (an installed package carries no sources)."""
    if not os.path.isdir(csrc):
        return None
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(csrc):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, csrc).replace(os.sep, "/").encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read() + b"\0")
    return h.hexdigest()
