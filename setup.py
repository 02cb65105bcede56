"""Builds the native core. Switches (environment):

FASTLOAD_DEBUG_BUILD=1   line tracing and assertions, no -O3, for profiling/coverage of _core
FASTLOAD_ANNOTATE=1      writes cython -a HTML next to the sources to find Python calls on the hot path
"""

import os

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

extensions = [
    Extension(
        "fastload._core",
        ["src/fastload/_core.pyx"],
        extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
        define_macros=macros,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=os.environ.get("FASTLOAD_ANNOTATE") == "1",
    )
)
