from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef enum:
    LAST_BLOCK_MAX = 256
    LAST_INSERTS_MAX = 16


cdef class HpackDecoder:
    cdef public int status
    cdef public int64_t content_length
    cdef const char* err_c
    cdef size_t max_table_size
    cdef size_t max_header_list_size
    # Decoded block: names/values copied into buf, because a later insertion in the same block
    # may evict a dynamic entry an earlier field referenced.
    cdef uint8_t* buf
    cdef size_t buf_cap
    cdef size_t buf_limit
    cdef size_t buf_base
    cdef size_t used
    cdef size_t list_size
    cdef Py_ssize_t nfields
    cdef Py_ssize_t fields_cap
    cdef Py_ssize_t fields_limit
    cdef uint32_t* f_noff
    cdef uint32_t* f_nlen
    cdef uint32_t* f_voff
    cdef uint32_t* f_vlen
    # Dynamic table: entries are FIFO, so their bytes are contiguous in a byte ring (wrapping
    # at dt_cap) and never need compaction. Entry metadata is a second ring.
    cdef uint8_t* dt_buf
    cdef size_t dt_cap
    cdef uint32_t* dt_off
    cdef uint32_t* dt_nlen
    cdef uint32_t* dt_vlen
    cdef size_t dt_ecap
    cdef size_t dt_first
    cdef size_t dt_count
    cdef size_t dt_size
    cdef size_t dt_wpos
    cdef size_t dt_max
    # The last block decoded, if decoding it again would do the same: a server that sends the
    # same response headers every time gets each later copy answered by one memcmp, the outcome
    # (fields, status, content_length) standing, instead of Huffman-decoding the same strings
    # again. That holds for a block that left the dynamic table as it was (h2o: references to
    # entries it inserted once), and for one that did not read the table: its insertions are
    # replayed, so the table moves as a decode would move it (nginx inserts server, date,
    # content-type and content-length in every response and never refers back to them). A
    # block that does both, or updates the table size, is not kept.
    cdef bint dyn_ref               # this block referred to a dynamic entry
    cdef bint unrepeatable          # this block updated the table size, or inserted too often
    cdef Py_ssize_t last_n          # -1: no block to repeat
    cdef Py_ssize_t n_ins           # insertions of the last block; ins_field[k]: which field
    cdef Py_ssize_t ins_field[LAST_INSERTS_MAX]
    cdef uint8_t last_block[LAST_BLOCK_MAX]

    cdef inline void _ring_read(self, size_t off, size_t n, uint8_t* dst) noexcept
    cdef inline void _ring_write(self, const uint8_t* src, size_t n) noexcept
    cdef inline void _evict_to(self, size_t limit) noexcept
    cdef void _insert(self, const uint8_t* name, size_t nlen, const uint8_t* value,
                      size_t vlen) noexcept
    cdef int _grow_buf(self, size_t need) noexcept
    cdef inline int _reserve(self, size_t need) noexcept
    cdef int _grow_fields(self) noexcept
    cdef inline int _fail(self, const char* msg) noexcept
    cdef inline int _int_fail(self, int rc) noexcept
    cdef int _copy_indexed(self, uint64_t idx, bint with_value, uint32_t* noff, uint32_t* nlen,
                           uint32_t* voff, uint32_t* vlen) noexcept
    cdef int _string(self, const uint8_t* data, Py_ssize_t n, Py_ssize_t* pos, uint32_t* off,
                     uint32_t* length) noexcept
    cdef int _emit(self, uint32_t noff, uint32_t nlen, uint32_t voff, uint32_t vlen) noexcept
    cdef int decode(self, const uint8_t* data, Py_ssize_t n) noexcept
    cdef int _decode(self, const uint8_t* data, Py_ssize_t n) noexcept
    cdef void field(self, Py_ssize_t i, const uint8_t** name, size_t* name_len,
                    const uint8_t** value, size_t* value_len) noexcept
    cdef int find(self, const char* name, size_t name_len, const uint8_t** value,
                  size_t* value_len) noexcept


# RFC 7541 Huffman decoding of src[0:n] into dst: the length, -1 for an invalid string (EOS,
# bad padding), -2 if it does not fit in cap (with cap >= 2n it always fits). QPACK strings use
# the same code (native/h3.pyx).
cdef Py_ssize_t huffman_decode(const uint8_t* src, size_t n, uint8_t* dst, size_t cap) noexcept
