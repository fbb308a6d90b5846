#!/usr/bin/env python3
"""Ferry as a user installs it: `cmake --install` into a fresh prefix, then a
C program built against that prefix alone (pkg-config, shared and static;
CMake's find_package(ferry), shared and static), the installed CLI and the
installed Python package, each run on the bundled mlp-s model. Also checks
that both libraries export nothing but ferry_ names.

Environment (set by CTest): FERRY_BUILD_DIR. Skips (passes) in sanitizer
builds, whose libraries a plain program cannot load.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

BUILD = os.environ.get("FERRY_BUILD_DIR", "")
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(BUILD, "models", "mlp-s.onnx")


def cache(var):
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(var + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


pytestmark = pytest.mark.skipif(bool(cache("FERRY_SANITIZE")) or not BUILD,
                                reason="sanitizer build (or no FERRY_BUILD_DIR)")


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (argv, p.returncode, p.stdout, p.stderr)
    return p.stdout


@pytest.fixture(scope="module")
def prefix():
    d = tempfile.mkdtemp(prefix="ferry-install-")
    run(["cmake", "--install", BUILD, "--prefix", d])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def libdir(prefix):
    for c in ("lib", "lib64", "lib/x86_64-linux-gnu"):
        if os.path.exists(os.path.join(prefix, c, "libferry.a")):
            return os.path.join(prefix, c)
    raise AssertionError("no libferry.a under " + prefix)




def check_consumer(exe):
    out = run([exe, MODEL]).split()
    assert out[0] == "ok" and out[1] == "0.1.0", out
    assert int(out[2]) == 3  # mlp-s: three fused Gemm steps
    return float(out[3])


def test_layout(prefix):
    ld = libdir(prefix)
    for f in ("include/ferry.h", "bin/ferry"):
        assert os.path.exists(os.path.join(prefix, f)), f
    for f in ("libferry.so", "libferry.a", "pkgconfig/ferry.pc", "cmake/ferry/ferryConfig.cmake"):
        assert os.path.exists(os.path.join(ld, f)), f
    soname = run(["readelf", "-d", os.path.join(ld, "libferry.so")])
    assert "Library soname: [libferry.so.0]" in soname
    assert os.path.realpath(os.path.join(ld, "libferry.so")).endswith("libferry.so.0.1.0")
    with open(os.path.join(ld, "pkgconfig", "ferry.pc")) as f:
        cuda = "cudart" in f.read()  # a GPU build: CUDA's libraries are named there
    if not cuda:  # a CPU-only build names no CUDA library
        assert "cuda" not in soname and "cublas" not in soname


def test_only_ferry_symbols(prefix):
    ld = libdir(prefix)
    dyn = run(["nm", "-D", "--defined-only", os.path.join(ld, "libferry.so")])
    names = [l.split()[-1] for l in dyn.splitlines() if l.strip()]
    assert "ferry_engine_create" in names and "ferry_version" in names
    assert [n for n in names if not n.startswith("ferry_")] == []
    # no internal ferry_ helpers either: only what ferry.h declares
    with open(os.path.join(prefix, "include", "ferry.h")) as f:
        header = f.read()
    assert [n for n in names if n not in header] == []
    st = run(["nm", "-g", "--defined-only", os.path.join(ld, "libferry.a")])
    gl = [l.split()[-1] for l in st.splitlines() if len(l.split()) == 3]
    assert "ferry_engine_create" in gl
    assert [n for n in gl if not n.startswith("ferry_")] == []
    assert sorted(gl) == sorted(names)


def test_pkg_config(prefix, tmp_path):
    ld = libdir(prefix)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(ld, "pkgconfig"))
    cflags = run(["pkg-config", "--cflags", "ferry"], env=env).split()
    libs = run(["pkg-config", "--libs", "ferry"], env=env).split()
    assert len(libs) == 2 and libs[1] == "-lferry", libs  # nothing private
    assert os.path.realpath(libs[0][2:]) == os.path.realpath(ld), libs
    exe = str(tmp_path / "consumer_pc")
    run(["cc", "-std=c11", "-Wall", "-Werror", os.path.join(HERE, "consumer.c"), "-o", exe]
        + cflags + libs + ["-Wl,-rpath," + ld], env=env)
    shared = check_consumer(exe)
    # static: the same program against libferry.a and its private libraries
    slibs = run(["pkg-config", "--static", "--libs", "ferry"], env=env).split()
    slibs = [os.path.join(ld, "libferry.a") if a == "-lferry" else a for a in slibs]
    sexe = str(tmp_path / "consumer_pc_static")
    run(["cc", "-std=c11", os.path.join(HERE, "consumer.c"), "-o", sexe] + cflags + slibs, env=env)
    assert "libferry" not in run(["ldd", sexe])
    assert check_consumer(sexe) == shared


def test_cmake_package(prefix, tmp_path):
    bdir = str(tmp_path / "b")
    run(["cmake", "-S", os.path.join(HERE, "cmake_consumer"), "-B", bdir,
         "-DCMAKE_PREFIX_PATH=" + prefix, "-DCONSUMER_SRC=" + os.path.join(HERE, "consumer.c")])
    run(["cmake", "--build", bdir])
    a = check_consumer(os.path.join(bdir, "consumer_shared"))
    b = check_consumer(os.path.join(bdir, "consumer_static"))
    assert a == b
    assert "libferry" not in run(["ldd", os.path.join(bdir, "consumer_static")])


def test_cli(prefix):
    out = run([os.path.join(prefix, "bin", "ferry"), "info", MODEL])
    assert "Gemm" in out


def test_python(prefix):
    if not os.path.exists(os.path.join(BUILD, "python", "ferry")):
        pytest.skip("this build has no Python package")
    pyd = [os.path.join(r, "") for r, ds, fs in os.walk(prefix) if "__init__.py" in fs
           and os.path.basename(r) == "ferry"]
    assert len(pyd) == 1, pyd
    site = os.path.dirname(os.path.dirname(pyd[0]))
    assert re.search(r"lib/python3\.\d+/dist-packages$", site), site
    code = ("import ferry, numpy as np; e = ferry.Engine(%r); "
            "print(ferry.__file__); print(float(e(np.ones((3, 256), np.float32)).sum()))" % MODEL)
    env = dict(os.environ, PYTHONPATH=site)
    out = run(["/usr/bin/python3", "-c", code], env=env, cwd=prefix).split()
    assert out[0].startswith(prefix), out
    assert abs(float(out[1]) - check_consumer_sum(prefix)) < 1e-2


def check_consumer_sum(prefix):
    exe = os.path.join(prefix, "consumer_for_py")
    ld = libdir(prefix)
    run(["cc", "-std=c11", os.path.join(HERE, "consumer.c"), "-o", exe, "-I" + prefix + "/include",
         "-L" + ld, "-lferry", "-Wl,-rpath," + ld])
    return check_consumer(exe)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
