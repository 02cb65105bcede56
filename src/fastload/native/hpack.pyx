# HPACK decoder (RFC 7541): static + dynamic table, size updates, Huffman, integer/string limits.
#
# CONTRACT:
# cdef class HpackDecoder:
#     __cinit__(self, size_t max_table_size=4096, size_t max_header_list_size=65536)
#         max_table_size: the SETTINGS_HEADER_TABLE_SIZE we advertise; it is also the initial
#         dynamic table size, and size updates above it are errors. Advertise 4096 (the
#         protocol default) or more: a smaller value only binds the peer once it has seen
#         our SETTINGS, which this decoder does not track.
#         max_header_list_size: limit on sum(len(name) + len(value) + 32) of one block
#         (RFC 9113 SETTINGS_MAX_HEADER_LIST_SIZE accounting); larger blocks are errors.
#     cdef public int status            # :status of the last decoded block, -1 if absent or
#                                       # not exactly 3 digits (a trailers block resets it to -1)
#     cdef public int64_t content_length  # content-length of the last block, -1 if absent,
#                                         # -2 if malformed or repeated with different values
#     cdef int decode(self, const uint8_t* data, Py_ssize_t n) noexcept
#         decodes one complete header block (HEADERS+CONTINUATION payload already joined).
#         0 on success, -1 on a decoding error (the connection must then be torn down:
#         COMPRESSION_ERROR; the dynamic table is then in an undefined state).
#         err_c (const char*, static string) / error_msg() -> str describe the error.
#         A block equal to the previous one is not decoded again where that one either left
#         the dynamic table unchanged or did not read it (and did not resize it): the previous
#         outcome stands and its insertions are replayed (most servers repeat their headers).
#     cdef const char* err_c            # NULL or a static message after decode() returned -1
#     After success, until the next decode() (buf may move when a larger block arrives):
#     cdef Py_ssize_t nfields
#     cdef uint8_t* buf       # all decoded names and values (static-table strings live at its start)
#     cdef uint32_t* f_noff, f_nlen, f_voff, f_vlen   # field i: name = buf[f_noff[i]:+f_nlen[i]]
#     cdef void field(self, Py_ssize_t i, const uint8_t** name, size_t* name_len,
#                     const uint8_t** value, size_t* value_len) noexcept
#     cdef int find(self, const char* name, size_t name_len,
#                   const uint8_t** value, size_t* value_len) noexcept
#         1 and the first field with that (lowercase) name, or 0 if absent.
#     def decode_py(self, bytes block) -> list[tuple[bytes, bytes]]  # raises ProtocolError
#     def error_msg(self) -> str
#     def _find_py(self, bytes name) -> bytes | None          # find() for tests
#     table_size, table_entries (properties, for tests): RFC size and (name, value) newest first
#
# Memory: about max_table_size + 3.3 KB per decoder (plus 272 KB of Huffman tables shared by all);
# the scratch grows on demand up to max_header_list_size, so one decoder per connection is cheap.
#
# Deliberate difference from python-hyper hpack (which accepts unbounded integers): integers
# with more than 5 continuation octets, or above 2**32 - 1, are decoding errors (RFC 7541 5.1
# allows implementation limits). Everything else (acceptance, output, table state) matches it,
# which tests/test_hpack.py checks with hypothesis.

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

from fastload.errors import ProtocolError as _HpProtocolError
from fastload.workload.hpack import HUFFMAN_CODES as _HP_HUFFMAN_CODES
from fastload.workload.hpack import STATIC_TABLE as _HP_STATIC_TABLE

cdef enum:
    _HP_STATIC_LEN = 61
    _HP_FAIL8 = 0x4000000
    # Flags in bits 16+ of a Huffman transition; bits 0-7 next state, 8-15 emitted symbol.
    _HP_EMIT = 0x10000
    _HP_FAIL = 0x20000

# nghttp2-style nibble automaton: the 256 internal nodes of the Huffman tree are the states;
# a transition consumes 4 bits and emits at most one symbol (the shortest code has 5 bits).
cdef uint32_t _hp_huff[256 * 16]
# The same automaton a byte at a time (composed from the nibble table at import): one dependent
# table load per input byte instead of two halves the latency chain that bounds decode speed.
# Entry: bits 0-7 next state, 8-15 and 16-23 up to two symbols, 24-25 symbol count,
# bit 26 EOS seen.
cdef uint32_t _hp_huff8[256 * 256]
# States where the string may end: root, or a prefix of EOS (all ones) no longer than 7 bits.
cdef uint8_t _hp_huff_accept[256]

cdef const uint8_t* _hp_static_ptr = NULL
cdef size_t _hp_static_total = 0
cdef uint32_t _hp_static_noff[_HP_STATIC_LEN + 1]
cdef uint32_t _hp_static_nlen[_HP_STATIC_LEN + 1]
cdef uint32_t _hp_static_voff[_HP_STATIC_LEN + 1]
cdef uint32_t _hp_static_vlen[_HP_STATIC_LEN + 1]


def _hp_build_tables():
    global _hp_static_ptr, _hp_static_total
    cdef uint8_t* static_copy
    cdef bytes blob_bytes
    children = [[None, None]]
    for sym, (code, length) in enumerate(_HP_HUFFMAN_CODES):
        node = 0
        for i in range(length - 1, -1, -1):
            bit = (code >> i) & 1
            if i == 0:
                children[node][bit] = -1 - sym
            else:
                c = children[node][bit]
                if c is None:
                    children.append([None, None])
                    c = len(children) - 1
                    children[node][bit] = c
                node = c
    if len(children) != 256:
        raise AssertionError("Huffman code is not a complete prefix code")
    for s in range(256):
        _hp_huff_accept[s] = 0
    node = 0
    _hp_huff_accept[0] = 1
    for _ in range(7):
        node = children[node][1]
        _hp_huff_accept[node] = 1
    for s in range(256):
        for v in range(16):
            node = s
            flags = 0
            sym = 0
            for k in range(3, -1, -1):
                c = children[node][(v >> k) & 1]
                if c < 0:
                    if -1 - c == 256:
                        flags = _HP_FAIL
                        node = 0
                        break
                    sym = -1 - c
                    flags = _HP_EMIT
                    node = 0
                else:
                    node = c
            _hp_huff[s * 16 + v] = node | (sym << 8) | flags

    blob = bytearray()
    for i, (name, value) in enumerate(_HP_STATIC_TABLE, 1):
        _hp_static_noff[i] = len(blob)
        _hp_static_nlen[i] = len(name)
        blob += name
        _hp_static_voff[i] = len(blob)
        _hp_static_vlen[i] = len(value)
        blob += value
    # A C copy that lives as long as the process: the hot path never touches Python objects.
    blob_bytes = bytes(blob)
    static_copy = <uint8_t*>malloc(len(blob_bytes))
    if static_copy == NULL:
        raise MemoryError()
    memcpy(static_copy, <const char*>blob_bytes, len(blob_bytes))
    _hp_static_ptr = static_copy
    _hp_static_total = len(blob_bytes)


cdef void _hp_build_huff8() noexcept:
    cdef uint32_t s, b, e1, e2, out, cnt
    for s in range(256):
        for b in range(256):
            e1 = _hp_huff[(s << 4) | (b >> 4)]
            e2 = _hp_huff[((e1 & 0xFF) << 4) | (b & 0x0F)]
            out = e2 & 0xFF
            cnt = 0
            if e1 & _HP_EMIT:
                out |= ((e1 >> 8) & 0xFF) << 8
                cnt = 1
            if e2 & _HP_EMIT:
                out |= ((e2 >> 8) & 0xFF) << (8 + 8 * cnt)
                cnt += 1
            out |= cnt << 24
            if (e1 | e2) & _HP_FAIL:
                out |= _HP_FAIL8
            _hp_huff8[(s << 8) | b] = out


_hp_build_tables()
_hp_build_huff8()


cdef Py_ssize_t huffman_decode(const uint8_t* src, size_t n, uint8_t* dst, size_t cap) noexcept:
    """-1: invalid code (EOS or bad padding); -2: output does not fit in cap."""
    cdef uint32_t state = 0
    cdef uint32_t e
    cdef uint32_t seen = 0
    cdef size_t i
    cdef size_t o = 0
    cdef uint8_t b
    if cap >= 2 * n:
        # A byte emits at most two symbols, so 2n bytes of room allow a branch-free loop: both
        # symbol bytes are always stored and the cursor advances by the count. EOS is sticky in
        # seen; the transitions after it are harmless because the string is then rejected.
        for i in range(n):
            e = _hp_huff8[(state << 8) | src[i]]
            seen |= e
            dst[o] = <uint8_t>(e >> 8)
            dst[o + 1] = <uint8_t>(e >> 16)
            o += (e >> 24) & 3
            state = e & 0xFF
        if seen & _HP_FAIL8:
            return -1
    else:
        for i in range(n):
            b = src[i]
            e = _hp_huff[(state << 4) | (b >> 4)]
            if e & (_HP_EMIT | _HP_FAIL):
                if e & _HP_FAIL:
                    return -1
                if o >= cap:
                    return -2
                dst[o] = <uint8_t>(e >> 8)
                o += 1
            e = _hp_huff[((e & 0xFF) << 4) | (b & 0x0F)]
            if e & (_HP_EMIT | _HP_FAIL):
                if e & _HP_FAIL:
                    return -1
                if o >= cap:
                    return -2
                dst[o] = <uint8_t>(e >> 8)
                o += 1
            state = e & 0xFF
    if not _hp_huff_accept[state]:
        return -1
    return <Py_ssize_t>o


cdef inline void _hp_copy(uint8_t* dst, const uint8_t* src, size_t n) noexcept:
    # Header names/values are mostly a few bytes: an inline loop beats a libc memcpy call.
    cdef size_t i
    if n > 32:
        memcpy(dst, src, n)
    else:
        for i in range(n):
            dst[i] = src[i]


cdef inline size_t _hp_wrap(size_t x, size_t cap) noexcept:
    # Ring positions stay below 2 * cap; a compare is cheaper than a division.
    return x - cap if x >= cap else x


cdef inline int _hp_int(const uint8_t* data, Py_ssize_t n, Py_ssize_t* pos, int prefix,
                        uint64_t* out) noexcept:
    """-1: truncated; -2: beyond our integer limit. Caller guarantees pos < n."""
    cdef Py_ssize_t p = pos[0]
    cdef uint64_t mask = (<uint64_t>1 << prefix) - 1
    cdef uint64_t v = data[p] & mask
    cdef int shift = 0
    cdef uint8_t b
    p += 1
    if v == mask:
        while True:
            if p >= n:
                return -1
            if shift > 28:
                return -2
            b = data[p]
            p += 1
            v += <uint64_t>(b & 0x7F) << shift
            shift += 7
            if not (b & 0x80):
                break
        if v > 0xFFFFFFFF:
            return -2
    pos[0] = p
    out[0] = v
    return 0


# final: cdef methods are called directly (inlinable) instead of through the vtable.
@cython.final
cdef class HpackDecoder:
    def __cinit__(self, size_t max_table_size=4096, size_t max_header_list_size=65536):
        if max_table_size > 0xFFFFFFF or max_header_list_size > 0xFFFFFFF:
            raise ValueError("HPACK limits must be below 2**28")
        self.status = -1
        self.content_length = -1
        self.err_c = NULL
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        # Every field costs >= 32 towards the list size and its bytes count too, which bounds
        # both. They start small (one decoder per connection, thousands of connections) and
        # grow geometrically, so only the first unusually large block reallocates.
        # buf starts with a copy of the static table's strings, so a field from the static
        # table is just offsets into it: the common indexed field copies nothing.
        self.buf_base = _hp_static_total
        self.buf_limit = self.buf_base + max_header_list_size
        self.fields_limit = <Py_ssize_t>(max_header_list_size // 32 + 1)
        self.buf_cap = self.buf_base + min(<size_t>1024, max(max_header_list_size, <size_t>1))
        self.fields_cap = 32
        self.buf = <uint8_t*>malloc(self.buf_cap)
        if self.buf != NULL:
            memcpy(self.buf, _hp_static_ptr, self.buf_base)
        self.f_noff = <uint32_t*>malloc(self.fields_cap * sizeof(uint32_t))
        self.f_nlen = <uint32_t*>malloc(self.fields_cap * sizeof(uint32_t))
        self.f_voff = <uint32_t*>malloc(self.fields_cap * sizeof(uint32_t))
        self.f_vlen = <uint32_t*>malloc(self.fields_cap * sizeof(uint32_t))
        # Entry bytes total at most dt_max - 32 * count <= max_table_size.
        self.dt_cap = max_table_size if max_table_size > 0 else 1
        self.dt_ecap = max_table_size // 32 + 1
        self.dt_buf = <uint8_t*>malloc(self.dt_cap)
        self.dt_off = <uint32_t*>malloc(self.dt_ecap * sizeof(uint32_t))
        self.dt_nlen = <uint32_t*>malloc(self.dt_ecap * sizeof(uint32_t))
        self.dt_vlen = <uint32_t*>malloc(self.dt_ecap * sizeof(uint32_t))
        if (self.buf == NULL or self.f_noff == NULL or self.f_nlen == NULL
                or self.f_voff == NULL or self.f_vlen == NULL or self.dt_buf == NULL
                or self.dt_off == NULL or self.dt_nlen == NULL or self.dt_vlen == NULL):
            raise MemoryError()
        self.dt_first = 0
        self.dt_count = 0
        self.dt_size = 0
        self.dt_wpos = 0
        self.dt_max = max_table_size
        self.nfields = 0
        self.used = self.buf_base
        self.list_size = 0
        self.last_n = -1
        self.n_ins = 0
        self.dyn_ref = False
        self.unrepeatable = False

    def __dealloc__(self):
        free(self.buf)
        free(self.f_noff)
        free(self.f_nlen)
        free(self.f_voff)
        free(self.f_vlen)
        free(self.dt_buf)
        free(self.dt_off)
        free(self.dt_nlen)
        free(self.dt_vlen)

    # ---- dynamic table ----

    cdef inline void _ring_read(self, size_t off, size_t n, uint8_t* dst) noexcept:
        cdef size_t first = self.dt_cap - off
        if n <= first:
            _hp_copy(dst, self.dt_buf + off, n)
        else:
            _hp_copy(dst, self.dt_buf + off, first)
            _hp_copy(dst + first, self.dt_buf, n - first)

    cdef inline void _ring_write(self, const uint8_t* src, size_t n) noexcept:
        cdef size_t first = self.dt_cap - self.dt_wpos
        if n <= first:
            memcpy(self.dt_buf + self.dt_wpos, src, n)
        else:
            memcpy(self.dt_buf + self.dt_wpos, src, first)
            memcpy(self.dt_buf, src + first, n - first)
        self.dt_wpos = _hp_wrap(self.dt_wpos + n, self.dt_cap)

    cdef inline void _evict_to(self, size_t limit) noexcept:
        cdef size_t i
        while self.dt_size > limit and self.dt_count:
            i = self.dt_first
            self.dt_size -= self.dt_nlen[i] + self.dt_vlen[i] + 32
            self.dt_first = _hp_wrap(i + 1, self.dt_ecap)
            self.dt_count -= 1

    cdef void _insert(self, const uint8_t* name, size_t nlen, const uint8_t* value,
                      size_t vlen) noexcept:
        cdef size_t esize = nlen + vlen + 32
        cdef size_t slot
        if esize > self.dt_max:
            # RFC 7541 4.4: an entry larger than the table empties it and is not added.
            self._evict_to(0)
            return
        self._evict_to(self.dt_max - esize)
        slot = _hp_wrap(self.dt_first + self.dt_count, self.dt_ecap)
        self.dt_off[slot] = <uint32_t>self.dt_wpos
        self.dt_nlen[slot] = <uint32_t>nlen
        self.dt_vlen[slot] = <uint32_t>vlen
        self._ring_write(name, nlen)
        self._ring_write(value, vlen)
        self.dt_count += 1
        self.dt_size += esize

    # ---- decoding ----

    cdef int _grow_buf(self, size_t need) noexcept:
        """Room for need more bytes in buf; the caller has checked used + need <= buf_limit."""
        cdef size_t cap = self.buf_cap * 2
        cdef uint8_t* p
        if cap > self.buf_limit:
            cap = self.buf_limit
        if cap < self.used + need:
            cap = self.used + need
        p = <uint8_t*>realloc(self.buf, cap)
        if p == NULL:
            return self._fail("HPACK out of memory")
        self.buf = p
        self.buf_cap = cap
        return 0

    cdef inline int _reserve(self, size_t need) noexcept:
        if need <= self.buf_cap - self.used:
            return 0
        if self.used + need > self.buf_limit:
            return self._fail("HPACK header list too large")
        return self._grow_buf(need)

    cdef int _grow_fields(self) noexcept:
        cdef Py_ssize_t cap = self.fields_cap * 2
        cdef void* p
        if cap > self.fields_limit:
            cap = self.fields_limit
        p = realloc(self.f_noff, cap * sizeof(uint32_t))
        if p == NULL:
            return self._fail("HPACK out of memory")
        self.f_noff = <uint32_t*>p
        p = realloc(self.f_nlen, cap * sizeof(uint32_t))
        if p == NULL:
            return self._fail("HPACK out of memory")
        self.f_nlen = <uint32_t*>p
        p = realloc(self.f_voff, cap * sizeof(uint32_t))
        if p == NULL:
            return self._fail("HPACK out of memory")
        self.f_voff = <uint32_t*>p
        p = realloc(self.f_vlen, cap * sizeof(uint32_t))
        if p == NULL:
            return self._fail("HPACK out of memory")
        self.f_vlen = <uint32_t*>p
        self.fields_cap = cap
        return 0

    cdef inline int _fail(self, const char* msg) noexcept:
        self.err_c = msg
        return -1

    cdef inline int _int_fail(self, int rc) noexcept:
        return self._fail(b"HPACK integer truncated" if rc == -1
                          else b"HPACK integer above the implementation limit")

    cdef int _copy_indexed(self, uint64_t idx, bint with_value, uint32_t* noff, uint32_t* nlen,
                           uint32_t* voff, uint32_t* vlen) noexcept:
        cdef size_t nl, vl, slot, off
        if idx == 0:
            return self._fail("HPACK index 0")
        if idx <= _HP_STATIC_LEN:
            noff[0] = _hp_static_noff[idx]
            nlen[0] = _hp_static_nlen[idx]
            if with_value:
                voff[0] = _hp_static_voff[idx]
                vlen[0] = _hp_static_vlen[idx]
            return 0
        idx -= _HP_STATIC_LEN
        self.dyn_ref = True
        if idx > self.dt_count:
            return self._fail("HPACK index beyond the dynamic table")
        slot = _hp_wrap(self.dt_first + self.dt_count - <size_t>idx, self.dt_ecap)
        nl = self.dt_nlen[slot]
        vl = self.dt_vlen[slot] if with_value else 0
        if self._reserve(nl + vl) < 0:
            return -1
        off = self.dt_off[slot]
        self._ring_read(off, nl, self.buf + self.used)
        noff[0] = <uint32_t>self.used
        nlen[0] = <uint32_t>nl
        self.used += nl
        if with_value:
            self._ring_read(_hp_wrap(off + nl, self.dt_cap), vl, self.buf + self.used)
            voff[0] = <uint32_t>self.used
            vlen[0] = <uint32_t>vl
            self.used += vl
        return 0

    cdef int _string(self, const uint8_t* data, Py_ssize_t n, Py_ssize_t* pos, uint32_t* off,
                     uint32_t* length) noexcept:
        cdef uint64_t slen = 0
        cdef Py_ssize_t r
        cdef bint huff
        cdef int rc
        if pos[0] >= n:
            return self._fail("HPACK block truncated before a string")
        huff = (data[pos[0]] & 0x80) != 0
        rc = _hp_int(data, n, pos, 7, &slen)
        if rc < 0:
            return self._int_fail(rc)
        if slen > <uint64_t>(n - pos[0]):
            return self._fail("HPACK string longer than the block")
        if huff:
            # Up to 2 bytes per input byte lets the decoder skip per-symbol bounds checks; past
            # the list limit it runs checked against what is left.
            if self._reserve(min(2 * <size_t>slen,
                                 self.buf_limit - self.used if self.buf_limit > self.used else 0)) < 0:
                return -1
            r = huffman_decode(data + pos[0], <size_t>slen, self.buf + self.used,
                               self.buf_cap - self.used)
            if r < 0:
                return self._fail("HPACK invalid Huffman string" if r == -1
                                  else "HPACK header list too large")
        else:
            if self._reserve(<size_t>slen) < 0:
                return -1
            _hp_copy(self.buf + self.used, data + pos[0], <size_t>slen)
            r = <Py_ssize_t>slen
        off[0] = <uint32_t>self.used
        length[0] = <uint32_t>r
        self.used += <size_t>r
        pos[0] += <Py_ssize_t>slen
        return 0

    cdef int _emit(self, uint32_t noff, uint32_t nlen, uint32_t voff, uint32_t vlen) noexcept:
        cdef Py_ssize_t i = self.nfields
        cdef const uint8_t* v
        cdef int64_t cl
        cdef uint32_t k
        self.list_size += nlen + vlen + 32
        if self.list_size > self.max_header_list_size:
            return self._fail("HPACK header list too large")
        if i >= self.fields_cap and self._grow_fields() < 0:
            return -1
        self.f_noff[i] = noff
        self.f_nlen[i] = nlen
        self.f_voff[i] = voff
        self.f_vlen[i] = vlen
        self.nfields = i + 1
        if nlen == 7 and memcmp(self.buf + noff, b":status", 7) == 0:
            v = self.buf + voff
            if (vlen == 3 and 48 <= v[0] <= 57 and 48 <= v[1] <= 57 and 48 <= v[2] <= 57):
                self.status = (v[0] - 48) * 100 + (v[1] - 48) * 10 + (v[2] - 48)
            else:
                self.status = -1
        elif nlen == 14 and memcmp(self.buf + noff, b"content-length", 14) == 0:
            v = self.buf + voff
            cl = 0
            if vlen == 0 or vlen > 18:
                cl = -2
            else:
                for k in range(vlen):
                    if v[k] < 48 or v[k] > 57:
                        cl = -2
                        break
                    cl = cl * 10 + (v[k] - 48)
            if self.content_length == -1 or self.content_length == cl:
                self.content_length = cl
            else:
                self.content_length = -2
        return 0

    cdef int decode(self, const uint8_t* data, Py_ssize_t n) noexcept:
        cdef Py_ssize_t k, i
        if n == self.last_n and memcmp(data, self.last_block, <size_t>n) == 0:
            for k in range(self.n_ins):
                i = self.ins_field[k]
                self._insert(self.buf + self.f_noff[i], self.f_nlen[i],
                             self.buf + self.f_voff[i], self.f_vlen[i])
            return 0
        self.last_n = -1
        self.n_ins = 0
        self.dyn_ref = False
        self.unrepeatable = False
        if self._decode(data, n) < 0:
            return -1
        if n <= LAST_BLOCK_MAX and not self.unrepeatable and not (self.dyn_ref and self.n_ins):
            memcpy(self.last_block, data, <size_t>n)
            self.last_n = n
        return 0

    cdef int _decode(self, const uint8_t* data, Py_ssize_t n) noexcept:
        cdef Py_ssize_t pos = 0
        cdef uint8_t b
        cdef uint64_t v = 0
        cdef uint32_t noff = 0, nlen = 0, voff = 0, vlen = 0
        cdef int rc
        cdef bint indexing
        self.nfields = 0
        self.used = self.buf_base
        self.list_size = 0
        self.status = -1
        self.content_length = -1
        self.err_c = NULL
        while pos < n:
            b = data[pos]
            if b & 0x80:
                rc = _hp_int(data, n, &pos, 7, &v)
                if rc < 0:
                    return self._int_fail(rc)
                if self._copy_indexed(v, True, &noff, &nlen, &voff, &vlen) < 0:
                    return -1
                if self._emit(noff, nlen, voff, vlen) < 0:
                    return -1
            elif (b & 0xE0) == 0x20:
                if self.nfields:
                    return self._fail("HPACK table size update after a header field")
                rc = _hp_int(data, n, &pos, 5, &v)
                if rc < 0:
                    return self._int_fail(rc)
                if v > self.max_table_size:
                    return self._fail("HPACK table size update above our limit")
                self.dt_max = <size_t>v
                self.unrepeatable = True
                self._evict_to(self.dt_max)
            else:
                # 01xxxxxx incremental indexing (6-bit name index); 0000xxxx without indexing
                # and 0001xxxx never indexed (4-bit): same wire layout, differ only in indexing.
                indexing = (b & 0x40) != 0
                rc = _hp_int(data, n, &pos, 6 if indexing else 4, &v)
                if rc < 0:
                    return self._int_fail(rc)
                if v:
                    if self._copy_indexed(v, False, &noff, &nlen, &voff, &vlen) < 0:
                        return -1
                elif self._string(data, n, &pos, &noff, &nlen) < 0:
                    return -1
                if self._string(data, n, &pos, &voff, &vlen) < 0:
                    return -1
                if indexing:
                    self._insert(self.buf + noff, nlen, self.buf + voff, vlen)
                    if self.n_ins < LAST_INSERTS_MAX:
                        self.ins_field[self.n_ins] = self.nfields
                        self.n_ins += 1
                    else:
                        self.unrepeatable = True
                if self._emit(noff, nlen, voff, vlen) < 0:
                    return -1
        return 0

    cdef void field(self, Py_ssize_t i, const uint8_t** name, size_t* name_len,
                    const uint8_t** value, size_t* value_len) noexcept:
        name[0] = self.buf + self.f_noff[i]
        name_len[0] = self.f_nlen[i]
        value[0] = self.buf + self.f_voff[i]
        value_len[0] = self.f_vlen[i]

    cdef int find(self, const char* name, size_t name_len, const uint8_t** value,
                  size_t* value_len) noexcept:
        cdef Py_ssize_t i
        for i in range(self.nfields):
            if (self.f_nlen[i] == name_len
                    and memcmp(self.buf + self.f_noff[i], name, name_len) == 0):
                value[0] = self.buf + self.f_voff[i]
                value_len[0] = self.f_vlen[i]
                return 1
        return 0

    def _find_py(self, bytes name):
        """find() for tests: the value of the first field called name, or None."""
        cdef const uint8_t* v = NULL
        cdef size_t vl = 0
        if self.find(name, len(name), &v, &vl):
            return (<const char*>v)[:vl]
        return None

    def error_msg(self):
        if self.err_c == NULL:
            return ""
        return (<bytes>self.err_c).decode("ascii")

    def decode_py(self, bytes block):
        cdef const uint8_t* p = <const uint8_t*><const char*>block
        cdef Py_ssize_t i
        cdef char* s
        if self.decode(p, len(block)) < 0:
            raise _HpProtocolError(self.error_msg())
        s = <char*>self.buf
        return [
            (s[self.f_noff[i]:self.f_noff[i] + self.f_nlen[i]],
             s[self.f_voff[i]:self.f_voff[i] + self.f_vlen[i]])
            for i in range(self.nfields)
        ]

    @property
    def table_size(self):
        """Current dynamic table size by the RFC rule (for tests)."""
        return self.dt_size

    @property
    def table_entries(self):
        """Dynamic table, newest first, as (name, value) (for tests)."""
        cdef list out = []
        cdef size_t i, slot
        cdef bytearray nb, vb
        for i in range(1, self.dt_count + 1):
            slot = (self.dt_first + self.dt_count - i) % self.dt_ecap
            nb = bytearray(self.dt_nlen[slot])
            vb = bytearray(self.dt_vlen[slot])
            if self.dt_nlen[slot]:
                self._ring_read(self.dt_off[slot], self.dt_nlen[slot], <uint8_t*><char*>nb)
            if self.dt_vlen[slot]:
                self._ring_read((self.dt_off[slot] + self.dt_nlen[slot]) % self.dt_cap,
                                self.dt_vlen[slot], <uint8_t*><char*>vb)
            out.append((bytes(nb), bytes(vb)))
        return out
