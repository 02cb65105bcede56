import fastload
from fastload import _core


def test_version_and_extension_import():
    assert fastload.__version__
    assert _core.__file__.endswith(".so")
