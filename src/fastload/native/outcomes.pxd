# What a request's outcome can be, as counted by WorkerStats (whole run) and RequestMix (per
# variant): one list of error classes, the status-code range, the gRPC status range.

# Error classes: indexes of the error counters. Same names in the same order as
# fastload.errors.ERROR_CLASSES (pure Python, for merging without the extension); a test holds
# error_class_names() equal to it.
cpdef enum:
    ERROR_CONNECT = 0
    ERROR_TIMEOUT = 1
    ERROR_RESET = 2
    ERROR_PROTOCOL = 3
    ERROR_CHECK = 4         # check_failed: a sampled response failed a check (--check-*, scenario)
    ERROR_CHECK_ERROR = 5   # check_error: the check itself raised (a defect in the check)
    N_ERROR_CLASSES = 6


cdef inline tuple error_class_names():
    return ("connect", "timeout", "reset", "protocol", "check_failed", "check_error")


cpdef enum:
    MAX_STATUS = 600        # status codes outside 0..MAX_STATUS-1 are counted as 0
    # gRPC status codes 0..16; a call that ended without grpc-status is counted at GRPC_MISSING.
    GRPC_CODES = 17
    GRPC_MISSING = 17
