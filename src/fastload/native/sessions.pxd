cpdef enum:
    # One uvloop read fills at most this much (HTTP/1.1 receive buffer, HTTP/2 get_buffer).
    READ_BUFFER_SIZE = 65536
