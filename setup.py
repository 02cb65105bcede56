"""Builds the native core. Switches (environment):

FASTLOAD_DEBUG_BUILD=1   line tracing and assertions, no -O3, for profiling/coverage of fastload.native
FASTLOAD_ANNOTATE=1      writes cython -a HTML next to the sources to find Python calls on the hot path
"""

import glob
import os
import sysconfig
import tempfile

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



def have_openssl_headers() -> bool:
    """Whether the system OpenSSL's headers can be compiled against (Debian: libssl-dev)."""
    if os.environ.get("FASTLOAD_NO_NATIVE_TLS") == "1":
        return False
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CompileError
    from setuptools._distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "probe.c")
        with open(src, "w") as f:
            f.write("#include <openssl/ssl.h>\nint main(void) { return SSL_ERROR_WANT_READ; }\n")
        try:
            cc.compile([src], output_dir=d)
        except CompileError:
            return False
    return True


# The native TLS unit links the system OpenSSL. Without its headers the package still builds
# and runs, with TLS on uvloop's path (fastload info says which).
native_tls = have_openssl_headers()
if not native_tls:
    print("setup.py: OpenSSL headers not found (apt install libssl-dev): building without "
          "fastload.native.tls; https:// runs use uvloop's TLS")

# One extension module per unit of src/fastload/native; they share C declarations through
# their .pxd files (cimport), so the build order does not matter.
extensions = [
    Extension(
        "fastload.native." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=["-O0", "-g"] if debug else optimize,
        define_macros=macros,
        libraries=["ssl", "crypto"] if path.endswith("/tls.pyx") else [],
    )
    for path in sorted(glob.glob("src/fastload/native/*.pyx"))
    if native_tls or not path.endswith("/tls.pyx")
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["src"],
        annotate=os.environ.get("FASTLOAD_ANNOTATE") == "1",
    )
)
