# HPACK decoder (RFC 7541): static + dynamic table, size updates, Huffman, integer/string limits.
#
# CONTRACT:
# cdef class HpackDecoder:
#     __cinit__(self, size_t max_table_size=4096, size_t max_header_list_size=65536)
#     cdef public int status            # :status of the last decoded block, -1 if absent
#     cdef public int64_t content_length  # content-length of the last block, -1 if absent
#     cdef int decode(self, const uint8_t* data, Py_ssize_t n) noexcept
#         decodes one complete header block (HEADERS+CONTINUATION payload already joined).
#         0 on success, -1 on a decoding error (the connection must then be torn down:
#         COMPRESSION_ERROR). After success nfields/field(i) expose the decoded fields.
#     def decode_py(self, bytes block) -> list[tuple[bytes, bytes]]  # raises ProtocolError
cdef class HpackDecoder:
    pass
