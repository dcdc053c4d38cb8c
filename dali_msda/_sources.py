"""What the operator's build reads from its C++/CUDA sources (dali_msda/csrc), and fingerprints
of it. setup.py keys each compiled object by the files that object reads and records the
fingerprint of everything the build reads in _build_info.py; importing dali_msda from a source
checkout compares that with the checkout's sources, so that a plugin built from other sources
is not used silently, and a file no object reads (the kernel benchmark's copies of DALI headers,
a README) does not count. Standard library only: setup.py loads this file without importing the
package."""

import hashlib
import os
import re

_QUOTED_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.M)
_OTHER_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*[^"<\s]', re.M)
SOURCE_SUFFIXES = (".cc", ".cu")


def _files(csrc):
    """Every file under csrc, as absolute paths in a fixed order."""
    out = []
    for folder, dirs, files in os.walk(csrc):
        dirs.sort()
        out.extend(os.path.join(folder, name) for name in sorted(files))
    return [os.path.realpath(p) for p in out]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def include_closure(src):
    """The files that compiling `src` reads from the source tree: `src` and, transitively, every
    quoted #include found beside the file that names it (where the compiler looks first). An
    include found nowhere there is DALI's or CUDA's (an -isystem folder), keyed by their
    versions instead. Conditional includes count as taken; an include in a block comment too
    (at worst an object compiles again for nothing)."""
    seen, todo = set(), [os.path.realpath(src)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _QUOTED_INCLUDE.findall(_read(path)):
            cand = os.path.realpath(os.path.join(os.path.dirname(path), name.decode()))
            if os.path.isfile(cand):
                todo.append(cand)
    return sorted(seen)


def includes_by_macro(csrc):
    """Whether a file under csrc includes by macro (`#include NAME`), which include_closure
    cannot follow: then every object is taken to read every file of the tree."""
    return any(_OTHER_INCLUDE.search(_read(p)) for p in _files(csrc))


def compiled_sources(csrc):
    """The translation units of the build: every .cc and .cu file under csrc."""
    return [p for p in _files(csrc) if p.endswith(SOURCE_SUFFIXES)]


def files_digest(paths, csrc):
    """SHA-256 over the paths (relative to csrc) and contents of `paths`, in sorted order."""
    csrc = os.path.realpath(csrc)
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(os.path.relpath(path, csrc).replace(os.sep, "/").encode() + b"\0")
        h.update(_read(path) + b"\0")
    return h.hexdigest()


def build_inputs(csrc, by_macro=None):
    """The files under csrc that building the plugin reads: the include closures of its
    translation units, or the whole tree where a file includes by macro."""
    if by_macro is None:
        by_macro = includes_by_macro(csrc)
    if by_macro:
        return _files(csrc)
    return sorted(set().union(*(include_closure(s) for s in compiled_sources(csrc))))


def sources_digest(csrc, by_macro=None):
    """SHA-256 over the relative paths and contents of the files the plugin's build reads from
    `csrc` (build_inputs), or None when the folder does not exist (an installed package
    carries no sources). `by_macro`: includes_by_macro(csrc), where the caller has it."""
    if not os.path.isdir(csrc):
        return None
    return files_digest(build_inputs(csrc, by_macro), csrc)


def sanitize_flags():
    """The host compiler's flags of a sanitizer build (tests/sanitize.sh): AddressSanitizer and
    UndefinedBehaviorSanitizer where DALI_MSDA_SANITIZE is set and not 0, else none. One list
    for the plugin's .cc files (setup.py) and the test harness libraries (tests/conftest.py),
    so that both are instrumented alike."""
    if os.environ.get("DALI_MSDA_SANITIZE", "") in ("", "0"):
        return []
    return ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
