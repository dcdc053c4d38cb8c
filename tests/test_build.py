"""The build's link step (setup.py): the plugin shares DALI's C++ runtime.

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
