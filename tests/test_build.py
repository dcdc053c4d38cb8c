"""The build (setup.py): the plugin shares DALI's C++ runtime, and a rebuild compiles exactly
the objects that read an edited file; and which plugin a source checkout loads (and when it
warns or refuses).

A GCC installed outside the system may link libstdc++ statically into shared libraries. A plugin
built so carries a second C++ runtime beside DALI's; on a GPU machine whose CXX was such a
compiler, the first error message the op formatted crashed the process. `link_shared` must
relink such a library against the process's libstdc++."""

import ctypes
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CXX = os.environ.get("CXX", "g++")

SOURCE = r"""
#include <cstring>
#include <sstream>
extern "C" int format_number(long value, char *buf, int size) {
  std::ostringstream s;
  s << "value " << value << " and " << 0.5;
  std::strncpy(buf, s.str().c_str(), size - 1);
  buf[size - 1] = 0;
  return static_cast<int>(s.str().size());
}
"""

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None or shutil.which(CXX) is None,
                                reason="needs a C++ compiler and readelf (binutils)")


def load_setup():
    spec = importlib.util.spec_from_file_location("dali_msda_setup", os.path.join(ROOT, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def static_toolchain(tmp_path):
    """A compiler wrapper that links libstdc++ statically into shared libraries, as such
    toolchains do, and an object file to link."""
    wrapper = tmp_path / "cxx-static"
    wrapper.write_text('#!/bin/sh\ncase " $* " in *" -shared "*) exec %s "$@" -static-libstdc++ ;;'
                       ' *) exec %s "$@" ;; esac\n' % (CXX, CXX))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    src, obj = tmp_path / "fmt.cc", tmp_path / "fmt.o"
    src.write_text(SOURCE)
    subprocess.run([CXX, "-std=c++20", "-fPIC", "-c", str(src), "-o", str(obj)], check=True)
    return str(wrapper), str(obj)


def test_the_wrapper_does_link_libstdcxx_statically(static_toolchain, tmp_path):
    # control: without the build's check, such a toolchain gives a library with no libstdc++.so
    setup = load_setup()
    wrapper, obj = static_toolchain
    lib = tmp_path / "plain.so"
    subprocess.run([wrapper, "-shared", "-o", str(lib), obj], check=True)
    assert not any(n.startswith("libstdc++.so") for n in setup.needed_libraries(lib))


def test_link_shared_relinks_against_the_process_libstdcxx(static_toolchain, tmp_path):
    setup = load_setup()
    wrapper, obj = static_toolchain
    lib = tmp_path / "fixed.so"
    setup.link_shared(wrapper, lib, [obj], [])
    assert "libstdc++.so.6" in setup.needed_libraries(lib)
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                             text=True, check=True).stdout
    assert "_M_insert" not in symbols  # stream code comes from the shared runtime
    so = ctypes.CDLL(str(lib))
    buf = ctypes.create_string_buffer(64)
    assert so.format_number(123456789, buf, 64) == len("value 123456789 and 0.5")
    assert buf.value == b"value 123456789 and 0.5"


def test_a_normal_toolchain_links_once(static_toolchain, tmp_path, capsys):
    setup = load_setup()
    _, obj = static_toolchain
    plain = tmp_path / "plain.so"
    subprocess.run([CXX, "-shared", "-o", str(plain), obj], check=True)
    if not any(n.startswith("libstdc++.so") for n in setup.needed_libraries(plain)):
        pytest.skip(f"CXX={CXX} links libstdc++ statically itself (the case tested above)")
    lib = tmp_path / "normal.so"
    setup.link_shared(CXX, lib, [obj], [])
    assert "libstdc++.so.6" in setup.needed_libraries(lib)
    assert "relinking" not in capsys.readouterr().out


# The object cache: an object is compiled again exactly when a file it reads changed.

def csrc_files(module):
    return [p for p in sorted(module.CSRC.rglob("*")) if p.suffix in (".cc", ".cu")]


def test_each_object_reads_the_headers_it_includes_and_no_others():
    setup = load_setup()
    closure = {p.relative_to(setup.CSRC).as_posix():
               {f.relative_to(setup.CSRC.resolve()).as_posix() for f in setup.include_closure(p)}
               for p in csrc_files(setup)}
    assert closure["label_map/label_map.cc"] == {"label_map/label_map.cc", "label_map/png_info.h"}
    assert closure["image_check/image_check.cc"] == {"image_check/image_check.cc",
                                                     "label_map/png_info.h"}
    assert closure["mix/fmix.cc"] == {"mix/fmix.cc", "mix/fmix.h",
                                      "third_party/pocketfft/pocketfft_hdronly.h"}
    # the kernel's headers are the CUDA object's alone; the op's coordinator is in both
    for header in ("mix/kernel.h", "mix/launch.h", "mix/access.h"):
        assert header in closure["mix/mix.cu"] and header not in closure["mix/mix.cc"]
    for header in ("mix/mix.h", "mix/plan.h", "mix/mask.h", "mix/inputs.h", "mix/boxes.h"):
        assert header in closure["mix/mix.cu"] and header in closure["mix/mix.cc"]
    # DALI's headers (and the kernel benchmark's copies of four of them) are not the tree's
    assert not any(f.startswith("third_party/dali") for c in closure.values() for f in c)
    # every header of the operators is read by some object: none is missed by the scan
    headers = {p.relative_to(setup.CSRC).as_posix() for p in setup.CSRC.rglob("*.h")
               if "third_party" not in p.parts}
    assert headers <= set().union(*closure.values())


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """setup.build_plugin over a copy of csrc/ with stand-in compilers: returns the module and
    a function that builds and returns the sources it compiled."""
    setup = load_setup()
    root = tmp_path / "checkout"
    shutil.copytree(setup.CSRC, root / "dali_msda" / "csrc")
    monkeypatch.setattr(setup, "ROOT", root)
    monkeypatch.setattr(setup, "CSRC", root / "dali_msda" / "csrc")
    monkeypatch.setattr(setup, "dali_config", lambda: ("2.4.0", "/dali/include", [], []))
    monkeypatch.setattr(setup, "find_nvcc", lambda: ("/cuda/bin/nvcc", "test"))
    monkeypatch.setattr(setup, "nvcc_paths", lambda nvcc: (["/cuda/include"], [], "13.0"))
    monkeypatch.setattr(setup, "compiler_version", lambda cxx: "13.2.0")
    monkeypatch.setattr(setup, "link_shared", lambda cxx, lib, objects, libs: None)
    compiled = []

    def run_compile(cmd, what):
        compiled.append(Path(cmd[cmd.index("-c") + 1]).relative_to(setup.CSRC).as_posix())
        Path(cmd[cmd.index("-o") + 1]).write_bytes(b"object")
        return ""

    monkeypatch.setattr(setup, "run_compile", run_compile)

    def build():
        compiled.clear()
        setup.build_plugin(root / "out")
        return set(compiled)

    return setup, build


def test_an_edit_compiles_only_the_objects_that_read_the_edited_file(fake_build):
    setup, build = fake_build
    everything = {p.relative_to(setup.CSRC).as_posix() for p in csrc_files(setup)}
    assert len(everything) == 8 and build() == everything
    assert build() == set()  # nothing changed: every object reused

    def edit(rel):
        path = setup.CSRC / rel
        path.write_bytes(path.read_bytes() + b"\n// edited\n")

    edit("label_map/png_info.h")
    assert build() == {"label_map/label_map.cc", "image_check/image_check.cc"}
    edit("mix/kernel.h")
    assert build() == {"mix/mix.cu"}
    edit("mix/plan.h")
    assert build() == {"mix/mix.cc", "mix/mix.cu", "mix/fmix_noise.cc"}
    edit("class_label/class_label.cc")
    assert build() == {"class_label/class_label.cc"}
    edit("third_party/dali/dali/core/float16.h")  # the benchmark's copy: no object reads it
    assert build() == set()
    # a new include of a header is followed, and an edit to that header then reaches the object
    edit("pair_check/pair_check.cc")
    path = setup.CSRC / "pair_check" / "pair_check.cc"
    path.write_text('#include "../mix/methods.h"\n' + path.read_text())
    assert build() == {"pair_check/pair_check.cc"}
    edit("mix/methods.h")
    assert build() == {"pair_check/pair_check.cc", "mix/mix.cc", "mix/mix.cu",
                       "mix/fmix_noise.cc"}


def test_an_include_by_macro_keys_every_object_by_the_whole_tree(fake_build):
    setup, build = fake_build
    build()
    path = setup.CSRC / "pair_check" / "pair_check.cc"
    path.write_text("#define HEADER \"../mix/methods.h\"\n#include HEADER\n" + path.read_text())
    assert len(build()) == 8  # the scan cannot follow it: every object depends on every file
    (setup.CSRC / "mix" / "kernel.h").write_text("// edited\n")
    assert len(build()) == 8


def test_after_a_failed_compile_only_what_failed_compiles_again(fake_build, monkeypatch):
    setup, build = fake_build
    build()
    (setup.CSRC / "mix" / "plan.h").write_text("// edited\n")
    real = setup.run_compile

    def failing(cmd, what):
        if what == "mix.cu":
            raise RuntimeError("compile failed")
        return real(cmd, what)

    monkeypatch.setattr(setup, "run_compile", failing)
    with pytest.raises(RuntimeError, match="compile failed"):
        build()
    monkeypatch.setattr(setup, "run_compile", real)
    assert build() == {"mix/mix.cu"}  # mix.cc compiled and was stamped; mix.cu was not
    assert build() == set()


# The plugin a source checkout loads (dali_msda/__init__.py): `python -m dali_msda...` run in
# the checkout's root after `pip install .` imports the checkout's package, which loads the
# installed plugin, and must say so when the checkout's sources are not those it was built from.

LOAD = ("import os, sys, warnings\n"
        "import nvidia.dali\n"
        "# the test's installed package only: no other dali_msda on the path (the real install)\n"
        "sys.path[:] = [p for p in sys.path if p in ('', os.environ['PYTHONPATH'])\n"
        "               or not os.path.isdir(os.path.join(p, 'dali_msda'))]\n"
        "warnings.simplefilter('always')\n"
        "import dali_msda\n"
        "from nvidia.dali import fn\n"
        "print('loaded', dali_msda.library_path, callable(fn.msda.mix))\n")


@pytest.fixture
def checkout_and_install(tmp_path):
    """A source checkout without a plugin of its own (the package's Python files and csrc/ and a
    setup.py) and, on the path after it, an "installed" package: the plugin this test session
    loads, with a _build_info.py written here (what it was built from). Returns the two folders
    and a function running LOAD in the checkout's root."""
    import dali_msda

    checkout, site = tmp_path / "checkout", tmp_path / "site"
    shutil.copytree(os.path.join(ROOT, "dali_msda"), checkout / "dali_msda", symlinks=True,
                    ignore=shutil.ignore_patterns("*.so", "_build_info.py", "__pycache__"))
    shutil.copy(os.path.join(ROOT, "setup.py"), checkout)
    installed = site / "dali_msda"
    installed.mkdir(parents=True)
    (installed / "libdali_msda.so").symlink_to(dali_msda.library_path)

    def build_info(dali_version, digest):
        (installed / "_build_info.py").write_text(
            f"DALI_VERSION = {dali_version!r}\nSOURCES_SHA256 = {digest!r}\n")

    def load():
        env = dict(os.environ, PYTHONPATH=str(site))
        return subprocess.run([sys.executable, "-c", LOAD], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=300)

    return checkout, installed, build_info, load


def test_a_checkout_loads_the_installed_plugin_built_from_its_sources(checkout_and_install):
    import nvidia.dali

    from dali_msda._sources import sources_digest

    checkout, installed, build_info, load = checkout_and_install
    build_info(nvidia.dali.__version__, sources_digest(checkout / "dali_msda" / "csrc"))
    proc = load()
    assert proc.returncode == 0, proc.stderr
    assert f"loaded {installed / 'libdali_msda.so'} True" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr


def test_a_checkout_whose_sources_changed_warns_that_the_plugin_runs_others(
        checkout_and_install):
    import nvidia.dali

    from dali_msda._sources import sources_digest

    checkout, installed, build_info, load = checkout_and_install
    csrc = checkout / "dali_msda" / "csrc"
    build_info(nvidia.dali.__version__, sources_digest(csrc))
    header = csrc / "mix" / "mask.h"
    header.write_text(header.read_text() + "// edited after the build\n")
    proc = load()
    assert proc.returncode == 0, proc.stderr
    assert f"loaded {installed / 'libdali_msda.so'} True" in proc.stdout  # still usable
    warning = " ".join(proc.stderr.split())
    assert "RuntimeWarning" in warning
    assert (f"the plugin {installed / 'libdali_msda.so'} was built from other C++/CUDA sources "
            f"than those in {checkout}/dali_msda/csrc") in warning
    assert "python setup.py build_plugin" in warning


def test_a_checkout_edited_where_no_object_reads_loads_without_a_warning(checkout_and_install):
    """The fingerprint covers what the build reads: the kernel benchmark's copies of DALI
    headers and the READMEs under csrc/ are not compiled, so an edit there does not warn, while
    a new translation unit (compiled into the plugin) does."""
    import nvidia.dali

    from dali_msda._sources import sources_digest

    checkout, installed, build_info, load = checkout_and_install
    csrc = checkout / "dali_msda" / "csrc"
    build_info(nvidia.dali.__version__, sources_digest(csrc))
    for rel in ("third_party/dali/dali/core/float16.h", "third_party/pocketfft/README.md"):
        (csrc / rel).write_text((csrc / rel).read_text() + "// edited after the build\n")
    proc = load()
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr
    (csrc / "extra.cc").write_text("// a new source: part of the plugin\n")
    proc = load()
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" in proc.stderr and "was built from other" in proc.stderr


def test_the_fingerprint_reads_what_the_objects_read():
    """sources_digest covers the union of the objects' include closures (the object cache's
    keys): every translation unit and header the operators include, not the benchmark's copies
    of DALI's headers; with an include by macro, the whole tree."""
    from dali_msda import _sources

    setup = load_setup()
    csrc = str(setup.CSRC)
    inputs = {os.path.relpath(p, os.path.realpath(csrc)) for p in _sources.build_inputs(csrc)}
    closures = set().union(*({os.path.relpath(f, os.path.realpath(csrc))
                              for f in setup.include_closure(p)} for p in csrc_files(setup)))
    assert inputs == closures
    assert {p.relative_to(setup.CSRC).as_posix() for p in csrc_files(setup)} <= inputs
    assert "third_party/pocketfft/pocketfft_hdronly.h" in inputs
    assert not any(f.startswith("third_party/dali") or f.endswith(".md") for f in inputs)
    everything = _sources.build_inputs(csrc, by_macro=True)
    assert len(everything) == sum(1 for p in setup.CSRC.rglob("*") if p.is_file())


def test_a_checkout_refuses_a_plugin_of_another_dali(checkout_and_install):
    import nvidia.dali

    checkout, _, build_info, load = checkout_and_install
    build_info("1.99.0", None)
    proc = load()
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert (f"built against NVIDIA DALI 1.99.0 but DALI {nvidia.dali.__version__} is installed"
            in message)
    assert f"pip install --force-reinstall . in the dali-msda source folder ({checkout})" in (
        message.replace("`", ""))


def test_a_checkout_without_any_plugin_says_how_to_build_one(checkout_and_install):
    checkout, installed, _, load = checkout_and_install
    (installed / "libdali_msda.so").unlink()  # the installed package lacks it: nothing to load
    proc = load()
    assert proc.returncode != 0
    message = " ".join(proc.stderr.split())
    assert (f"the operator plugin is not built: neither this source checkout ({checkout}) nor an "
            "installed dali-msda holds libdali_msda.so") in message
    assert "python setup.py build_plugin" in message


def test_the_package_asks_for_the_pythons_its_dali_runs_on():
    """pyproject's requires-python is that of the DALI it pins (the README says it too): DALI
    2.4.0 runs on Python 3.10 to 3.15, and the package claimed 3.9 and up, where pip can only
    fail (on DALI's missing wheel)."""
    import importlib.metadata
    import re

    with open(os.path.join(ROOT, "pyproject.toml")) as f:  # (tomllib: Python 3.11 and up)
        text = f.read()
    project = text[text.index("[project]"):]
    project = project[:project.index("\n[", 1)]
    name, version = re.search(r'"(nvidia-dali-[\w-]+)==([\w.]+)"', project).groups()
    assert importlib.metadata.version(name) == version  # the DALI these tests run with
    requires = re.search(r'^requires-python = "([^"]+)"', project, re.M).group(1)
    ours = set(requires.replace(" ", "").split(","))
    assert ours == set(importlib.metadata.metadata(name)["Requires-Python"].replace(" ", "")
                       .split(","))
    low = re.search(r">=3\.(\d+)", requires).group(1)
    high = int(re.search(r"<3\.(\d+)", requires).group(1)) - 1
    with open(os.path.join(ROOT, "README.md")) as f:
        assert f"Python 3.{low} to 3.{high}," in f.read()
