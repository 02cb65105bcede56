"""Builds the native core. Switches (environment):

FASTLOAD_DEBUG_BUILD=1   line tracing and assertions, no -O3, for profiling/coverage of fastload.native
FASTLOAD_ANNOTATE=1      writes cython -a HTML next to the sources to find Python calls on the hot path
"""

import glob
import os
import sysconfig

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTLOAD_DEBUG_BUILD") == "1"
directives = {
    "language_level": "3",
    "boundscheck": debug,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": debug,
    "embedsignature": True,
}
macros = []
if debug:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

optimize = ["-O3"]
if "gcc" in (sysconfig.get_config_var("CC") or ""):
    # The hot path is written as small `cdef inline` steps that must be inlined into the loops
    # that call them. With GCC's default limits the HTTP/1.1 parser's value_byte stayed out of
    # line once feed() was split into steps: +180 instructions per response (callgrind), about
    # 5% of an HTTP/1.1 request's client CPU against nginx.
    optimize += ["--param", "max-inline-insns-single=400", "--param", "large-function-growth=400"]

# One extension module per unit of src/fastload/native; they share C declarations through
# their .pxd files (cimport), so the build order does not matter.
extensions = [
    Extension(
        "fastload.native." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=["-O0", "-g"] if debug else optimize,
        define_macros=macros,
    )
    for path in sorted(glob.glob("src/fastload/native/*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["src"],
        annotate=os.environ.get("FASTLOAD_ANNOTATE") == "1",
    )
)
