# The Python view of outcomes.pxd: the ERROR_* indexes and limits are module ints (cpdef enum);
# the names tuple is built from the same declaration.

ERROR_CLASS_NAMES = error_class_names()
assert len(ERROR_CLASS_NAMES) == N_ERROR_CLASSES
