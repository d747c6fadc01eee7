"""Which OpenBLAS a process is using, and how: its build string, the kernel family ("core") it
picked for this CPU and its thread count.

Instrumentation for the peers benchmark, not part of any peer's training code. Three ways, best
first:

1. threadpoolctl, when it is importable: it inspects the libraries loaded in this process.
2. Otherwise the same idea by hand: find a libopenblas in /proc/self/maps (numpy and torch load
   it through libblas.so.3 on Debian) and ask it through ctypes. dlopen of a library that is
   already loaded returns the loaded instance, so the answers describe the live library, with
   the core it chose when it was initialised in this process's environment.
3. Otherwise "unknown".

Run as a script, `python3 blasinfo.py LIBRARY` loads LIBRARY (a path to libopenblas) into a fresh
process and prints the same description as one JSON line; the runner does that for backprop's
OpenBLAS, with backprop's environment.
"""

import ctypes
import json
import sys


def _ask_openblas(path):
    """Query the OpenBLAS at `path` through its own API; None if it is not OpenBLAS."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    info = {"library": path, "source": "ctypes"}
    for name in ("openblas_get_config", "openblas_get_corename"):
        fn = getattr(lib, name, None)
        if fn is None:
            return None  # a reference BLAS or another implementation
        fn.restype = ctypes.c_char_p
        info["config" if name.endswith("config") else "core"] = fn().decode(errors="replace")
    fn = getattr(lib, "openblas_get_num_threads", None)
    if fn is not None:
        fn.restype = ctypes.c_int
        info["num_threads"] = fn()
    # The version is the second word of the config string ("OpenBLAS 0.3.21 ...").
    words = info["config"].split()
    info["version"] = words[1] if len(words) > 1 and words[0] == "OpenBLAS" else "unknown"
    return info


def _loaded_openblas_paths():
    """Paths of the libopenblas files mapped into this process, in order of first mapping."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and "libopenblas" in fields[-1] and fields[-1] not in paths:
                    paths.append(fields[-1])
    except OSError:
        pass
    return paths


def describe_loaded():
    """Describe the OpenBLAS already loaded in this process (call after importing numpy/torch)."""
    try:
        import threadpoolctl  # optional
        for pool in threadpoolctl.threadpool_info():
            if pool.get("internal_api") == "openblas":
                return {"source": "threadpoolctl " + threadpoolctl.__version__,
                        "library": pool.get("filepath"), "version": pool.get("version"),
                        "core": pool.get("architecture"), "num_threads": pool.get("num_threads"),
                        "threading_layer": pool.get("threading_layer")}
    except Exception:  # not installed, or an old version with other keys: fall through
        pass
    for path in _loaded_openblas_paths():
        info = _ask_openblas(path)
        if info is not None:
            return info
    return {"source": "none", "core": "unknown", "version": "unknown"}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: blasinfo.py PATH/TO/libopenblas.so")
    found = _ask_openblas(sys.argv[1])
    print(json.dumps(found if found is not None
                     else {"library": sys.argv[1], "source": "none", "core": "unknown",
                           "version": "unknown"}))
