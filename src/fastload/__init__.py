"""fastload: a load generator with a native hot path.

    from fastload import run, compare, Result
    result = run("http://127.0.0.1:8080/", connections=8, duration="5s", slo=["p99<50ms"])
"""

__version__ = "0.1.0"

# The submodule fastload.compare is imported first on purpose: importing a submodule for the
# first time sets the package attribute of its name, which would replace the compare()
# function below with the module. Once it is in sys.modules that no longer happens.
from . import compare as _compare_module  # noqa: E402, F401
from .api import Result, Verdict, compare, run  # noqa: E402
from .errors import FastloadError, RunError, UsageError  # noqa: E402

__all__ = ["run", "compare", "Result", "Verdict", "FastloadError", "UsageError", "RunError",
           "__version__"]
