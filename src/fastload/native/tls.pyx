# TLS in the native core (issue 14): the sessions' byte path over OpenSSL's C API on a BIO of
# our own, instead of uvloop's SSLProtocol (which moves each record through Python-level
# SSLObject.read/write calls and new bytes objects).
#
# The transport stays a plain uvloop TCP transport. The SSL's BIO is our own (bio_read,
# bio_write below), not a memory BIO: OpenSSL reads the ciphertext straight from what the
# transport handed over (HTTP/1.1: the bytes object of data_received; HTTP/2: the session's own
# receive buffer) and writes records into one growable C buffer, so there is no BUF_MEM
# growing, zeroing and copying on the way. SSL_read decrypts every record waiting into a C
# buffer and the parser sees the plaintext as if read from the socket, once per read. A write
# is SSL_write and one send(2) of the ciphertext (_Session.send, as on the plaintext path): a
# pipelined batch or an HTTP/2 flush becomes one TLS record and one system call.
#
# Built only where OpenSSL's headers are (setup.py); without it the engine uses uvloop's TLS
# (`--tls-path python`), and `fastload info` says which path a run takes.

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memmove

from fastload.native.clock cimport now_ns
from fastload.native.outcomes cimport ERROR_PROTOCOL
from fastload.native.sessions cimport READ_BUFFER_SIZE, H1Session, H2Session, _Session
from fastload.native.stats cimport WorkerStats


cdef extern from "openssl/ssl.h" nogil:
    ctypedef struct SSL_CTX
    ctypedef struct SSL
    ctypedef struct SSL_METHOD
    ctypedef struct BIO
    ctypedef struct BIO_METHOD
    ctypedef struct X509_VERIFY_PARAM

    const char* OpenSSL_version(int t)
    int OPENSSL_VERSION_CONST "OPENSSL_VERSION"

    const SSL_METHOD* TLS_client_method()
    SSL_CTX* SSL_CTX_new(const SSL_METHOD* meth)
    void SSL_CTX_free(SSL_CTX* ctx)
    int SSL_CTX_set_default_verify_paths(SSL_CTX* ctx)
    int SSL_CTX_load_verify_locations(SSL_CTX* ctx, const char* cafile, const char* capath)
    void SSL_CTX_set_verify(SSL_CTX* ctx, int mode, void* callback)
    int SSL_CTX_set_alpn_protos(SSL_CTX* ctx, const unsigned char* protos, unsigned int n)
    int SSL_CTX_set_min_proto_version(SSL_CTX* ctx, int version)
    uint64_t SSL_CTX_set_options(SSL_CTX* ctx, uint64_t options)
    uint64_t SSL_CTX_clear_options(SSL_CTX* ctx, uint64_t options)
    int SSL_CTX_set_cipher_list(SSL_CTX* ctx, const char* s)
    X509_VERIFY_PARAM* SSL_CTX_get0_param(SSL_CTX* ctx)

    SSL* SSL_new(SSL_CTX* ctx)
    void SSL_free(SSL* s)
    void SSL_set_bio(SSL* s, BIO* rbio, BIO* wbio)
    void SSL_set_connect_state(SSL* s)
    int SSL_do_handshake(SSL* s)
    int SSL_read(SSL* s, void* buf, int num)
    int SSL_has_pending(const SSL* s)
    int SSL_write(SSL* s, const void* buf, int num)
    int SSL_get_error(const SSL* s, int ret)
    int SSL_set_tlsext_host_name(SSL* s, const char* name)
    int SSL_set1_host(SSL* s, const char* hostname)
    X509_VERIFY_PARAM* SSL_get0_param(SSL* s)
    void SSL_get0_alpn_selected(const SSL* s, const unsigned char** data, unsigned int* n)
    long SSL_get_verify_result(const SSL* s)
    const char* SSL_get_version(const SSL* s)

    BIO* BIO_new(const BIO_METHOD* method)
    BIO_METHOD* BIO_meth_new(int type, const char* name)
    int BIO_meth_set_write(BIO_METHOD* m, int (*write)(BIO*, const char*, int) noexcept)
    int BIO_meth_set_read(BIO_METHOD* m, int (*read)(BIO*, char*, int) noexcept)
    int BIO_meth_set_ctrl(BIO_METHOD* m, long (*ctrl)(BIO*, int, long, void*) noexcept)
    int BIO_meth_set_create(BIO_METHOD* m, int (*create)(BIO*) noexcept)
    int BIO_get_new_index()
    void BIO_set_data(BIO* b, void* ptr)
    void* BIO_get_data(BIO* b)
    void BIO_set_init(BIO* b, int init)
    void BIO_set_retry_read(BIO* b)
    void BIO_clear_retry_flags(BIO* b)
    void SSL_CTX_set_read_ahead(SSL_CTX* ctx, int yes)

    enum:
        SSL_ERROR_NONE
        SSL_ERROR_SSL
        SSL_ERROR_WANT_READ
        SSL_ERROR_WANT_WRITE
        SSL_ERROR_SYSCALL
        SSL_ERROR_ZERO_RETURN
        SSL_VERIFY_NONE
        SSL_VERIFY_PEER
        TLS1_2_VERSION
        X509_V_OK
        BIO_TYPE_SOURCE_SINK
        BIO_CTRL_FLUSH
    uint64_t SSL_OP_ALL
    uint64_t SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS
    uint64_t SSL_OP_NO_COMPRESSION
    uint64_t SSL_OP_CIPHER_SERVER_PREFERENCE
    uint64_t SSL_OP_SINGLE_DH_USE
    uint64_t SSL_OP_SINGLE_ECDH_USE
    uint64_t SSL_OP_NO_SSLv2
    uint64_t SSL_OP_NO_SSLv3


cdef extern from "openssl/err.h" nogil:
    unsigned long ERR_get_error()
    void ERR_error_string_n(unsigned long e, char* buf, size_t n)
    void ERR_clear_error()


cdef extern from "openssl/x509v3.h" nogil:
    const char* X509_verify_cert_error_string(long n)
    int X509_VERIFY_PARAM_set1_ip_asc(X509_VERIFY_PARAM* param, const char* ipasc)
    void X509_VERIFY_PARAM_set_hostflags(X509_VERIFY_PARAM* param, unsigned int flags)
    enum:
        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS


# What Python's ssl.create_default_context() sets on a client context (CPython 3.11, _ssl.c and
# ssl.py), so that both TLS paths offer the same ciphers and check the same things.
cdef const char* PY_DEFAULT_CIPHERS = (
    b"@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM")

# TlsLink.read results besides a byte count.
cpdef enum:
    TLS_WANT_READ = 0
    TLS_FAILED = -1
    TLS_CLOSE_NOTIFY = -2


# The BIO between OpenSSL and a session: input is a window on the bytes just read (or, for
# what a step left unread, the link's own carry buffer); output is appended to a C buffer.
ctypedef struct LinkIO:
    const uint8_t* in_p
    Py_ssize_t in_n
    uint8_t* out
    Py_ssize_t out_len
    Py_ssize_t out_cap


cdef int bio_read(BIO* b, char* buf, int size) noexcept nogil:
    cdef LinkIO* io = <LinkIO*>BIO_get_data(b)
    cdef Py_ssize_t n = io.in_n
    BIO_clear_retry_flags(b)
    if n == 0:
        BIO_set_retry_read(b)  # "try again": SSL_read reports WANT_READ
        return -1
    if n > size:
        n = size
    memcpy(buf, io.in_p, n)
    io.in_p += n
    io.in_n -= n
    return <int>n


cdef int bio_write(BIO* b, const char* data, int size) noexcept nogil:
    cdef LinkIO* io = <LinkIO*>BIO_get_data(b)
    cdef Py_ssize_t need = io.out_len + size, cap
    cdef uint8_t* grown
    BIO_clear_retry_flags(b)
    if need > io.out_cap:
        cap = io.out_cap * 2 if io.out_cap else 16384
        while cap < need:
            cap *= 2
        grown = <uint8_t*>realloc(io.out, cap)
        if grown == NULL:
            return -1
        io.out = grown
        io.out_cap = cap
    memcpy(io.out + io.out_len, data, size)
    io.out_len = need
    return size


cdef long bio_ctrl(BIO* b, int cmd, long num, void* ptr) noexcept nogil:
    # Only FLUSH needs an answer (writes are whole at once); everything else is "not supported".
    return 1 if cmd == BIO_CTRL_FLUSH else 0


cdef int bio_create(BIO* b) noexcept nogil:
    BIO_set_init(b, 1)
    return 1


cdef BIO_METHOD* LINK_BIO = NULL


cdef BIO_METHOD* link_bio_method() except NULL:
    global LINK_BIO
    if LINK_BIO == NULL:
        LINK_BIO = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, b"fastload link")
        if LINK_BIO == NULL:
            raise MemoryError("BIO_meth_new failed")
        BIO_meth_set_read(LINK_BIO, bio_read)
        BIO_meth_set_write(LINK_BIO, bio_write)
        BIO_meth_set_ctrl(LINK_BIO, bio_ctrl)
        BIO_meth_set_create(LINK_BIO, bio_create)
    return LINK_BIO


def openssl_version():
    """The OpenSSL this unit runs on (the library loaded, not the headers it was built with)."""
    return OpenSSL_version(OPENSSL_VERSION_CONST).decode()


cdef bytes alpn_wire(list protocols):
    return b"".join(bytes([len(p)]) + p.encode() for p in protocols)


cdef class TlsContext:
    """One SSL_CTX per engine: verification (system CAs, or only --ca's file, as Python's
    create_default_context(cafile=...) does), hostname check and SNI for `host`, ALPN."""

    cdef SSL_CTX* ctx
    cdef readonly bytes host
    cdef readonly bint host_is_ip
    cdef readonly bint verify
    cdef readonly list alpn

    def __init__(self, str host, bint host_is_ip, bint verify, str cafile=None, list alpn=None):
        cdef bytes wire
        self.host = host.encode("idna") if not host_is_ip else host.encode()
        self.host_is_ip = host_is_ip
        self.verify = verify
        self.alpn = list(alpn or [])
        self.ctx = SSL_CTX_new(TLS_client_method())
        if self.ctx == NULL:
            raise MemoryError("SSL_CTX_new failed")
        SSL_CTX_set_options(self.ctx, (SSL_OP_ALL & ~SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS)
                            | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE
                            | SSL_OP_SINGLE_DH_USE | SSL_OP_SINGLE_ECDH_USE
                            | SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3)
        SSL_CTX_set_min_proto_version(self.ctx, TLS1_2_VERSION)
        # Let a record read take everything waiting in one BIO read, not header then body.
        SSL_CTX_set_read_ahead(self.ctx, 1)
        if not SSL_CTX_set_cipher_list(self.ctx, PY_DEFAULT_CIPHERS):
            raise ValueError("OpenSSL refused Python's default cipher list")
        X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(self.ctx),
                                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS)
        if verify:
            SSL_CTX_set_verify(self.ctx, SSL_VERIFY_PEER, NULL)
            if cafile is not None:
                if not SSL_CTX_load_verify_locations(self.ctx, cafile.encode(), NULL):
                    ERR_clear_error()
                    raise ValueError(f"cannot load CA certificates from {cafile}")
            else:
                SSL_CTX_set_default_verify_paths(self.ctx)
        else:
            SSL_CTX_set_verify(self.ctx, SSL_VERIFY_NONE, NULL)
        if self.alpn:
            wire = alpn_wire(self.alpn)
            if SSL_CTX_set_alpn_protos(self.ctx, <const unsigned char*>PyBytes_AS_STRING(wire),
                                       len(wire)) != 0:
                raise ValueError(f"bad ALPN list {self.alpn!r}")
        ERR_clear_error()

    def __dealloc__(self):
        if self.ctx != NULL:
            SSL_CTX_free(self.ctx)


cdef class TlsLink:
    """One connection's TLS state: an SSL on the link BIO (bio_read, bio_write). Bytes in,
    bytes out, no I/O: the session feeds what the transport read and writes what comes out."""

    cdef SSL* ssl
    cdef BIO* bio
    cdef LinkIO io
    cdef uint8_t* carry             # input a step left unread, kept for the next one
    cdef Py_ssize_t carry_len
    cdef Py_ssize_t carry_cap
    cdef TlsContext context
    cdef readonly bint established
    cdef public object handshake    # a future: None once established, else the reason it failed
    cdef str _error

    def __init__(self, TlsContext context):
        self.context = context
        self.ssl = SSL_new(context.ctx)
        if self.ssl == NULL:
            raise MemoryError("SSL_new failed")
        self.bio = BIO_new(link_bio_method())
        if self.bio == NULL:
            raise MemoryError("BIO_new failed")
        BIO_set_data(self.bio, &self.io)
        SSL_set_bio(self.ssl, self.bio, self.bio)  # the SSL owns it from here
        SSL_set_connect_state(self.ssl)
        # As CPython's _ssl does: SNI and the name check for a host name, an address check
        # (and no SNI, RFC 6066 §3) for an IP address.
        if not context.host_is_ip:
            SSL_set_tlsext_host_name(self.ssl, context.host)
            if context.verify:
                SSL_set1_host(self.ssl, context.host)
        elif context.verify:
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(self.ssl), context.host)
        ERR_clear_error()

    def __dealloc__(self):
        if self.ssl != NULL:
            SSL_free(self.ssl)
        free(self.io.out)
        free(self.carry)

    cdef int feed(self, const uint8_t* p, Py_ssize_t n) noexcept:
        """Ciphertext from the peer, read in place until settle(): p must stay valid until
        then (the caller's bytes object or buffer, for the length of one read)."""
        if self.io.in_n == 0:
            self.io.in_p = p
            self.io.in_n = n
            return 0
        # Unread input from before: append (rare: a handshake step that stopped early).
        if self.settle() < 0:
            return -1
        if self.carry_reserve(self.carry_len + n) < 0:
            return -1
        memcpy(self.carry + self.carry_len, p, n)
        self.carry_len += n
        self.io.in_p = self.carry
        self.io.in_n = self.carry_len
        return 0

    cdef int carry_reserve(self, Py_ssize_t need) noexcept:
        cdef uint8_t* grown
        if need <= self.carry_cap:
            return 0
        grown = <uint8_t*>realloc(self.carry, need)
        if grown == NULL:
            return -1
        self.carry = grown
        self.carry_cap = need
        return 0

    cdef int settle(self) noexcept:
        """End of a read: whatever OpenSSL left unread is copied into the carry buffer, so
        that nothing points into the caller's memory any more."""
        cdef Py_ssize_t n = self.io.in_n
        if n == 0:
            self.carry_len = 0
            return 0
        if self.carry != NULL and self.carry <= self.io.in_p < self.carry + self.carry_cap:
            memmove(self.carry, self.io.in_p, n)
            self.carry_len = n
            self.io.in_p = self.carry
            return 0
        if self.carry_reserve(n) < 0:
            return -1
        memcpy(self.carry, self.io.in_p, n)
        self.carry_len = n
        self.io.in_p = self.carry
        return 0

    cdef int step(self) noexcept:
        """Advances the handshake: 1 done, 0 waiting for the peer, -1 failed (see error)."""
        cdef int r, e
        if self.established:
            return 1
        r = SSL_do_handshake(self.ssl)
        if r == 1:
            self.established = True
            return 1
        e = SSL_get_error(self.ssl, r)
        if e == SSL_ERROR_WANT_READ or e == SSL_ERROR_WANT_WRITE:
            return 0
        self._error = self.describe_error(e)
        return -1

    cdef str describe_error(self, int e):
        cdef unsigned long code
        cdef long v
        cdef char buf[256]
        v = SSL_get_verify_result(self.ssl)
        if v != X509_V_OK and self.context.verify:
            ERR_clear_error()
            return "certificate verify failed: " + X509_verify_cert_error_string(v).decode()
        code = ERR_get_error()
        ERR_clear_error()
        if code != 0:
            ERR_error_string_n(code, buf, sizeof(buf))
            return buf.decode(errors="replace")
        if e == SSL_ERROR_ZERO_RETURN:
            return "the peer closed the TLS session"
        return f"TLS error {e}"

    cdef Py_ssize_t read(self, uint8_t* buf, Py_ssize_t cap) noexcept:
        """Decrypts into buf: the byte count, or TLS_WANT_READ, TLS_CLOSE_NOTIFY, TLS_FAILED."""
        cdef int r, e
        r = SSL_read(self.ssl, buf, <int>cap)
        if r > 0:
            return r
        e = SSL_get_error(self.ssl, r)
        if e == SSL_ERROR_WANT_READ:
            return TLS_WANT_READ
        if e == SSL_ERROR_ZERO_RETURN:
            return TLS_CLOSE_NOTIFY
        self._error = self.describe_error(e)
        return TLS_FAILED

    cdef (Py_ssize_t, Py_ssize_t) read_all(self, uint8_t* buf, Py_ssize_t cap) noexcept:
        """Decrypts every record waiting, up to cap bytes, so that the parser (and the writes
        it triggers) run once per read, not once per record: (bytes decrypted, last read()
        result), the latter > 0 when the buffer filled before the records ran out."""
        cdef Py_ssize_t got = 0, n = 0
        while got < cap:
            if got and self.io.in_n == 0 and not SSL_has_pending(self.ssl):
                # Nothing left to decrypt: spare the SSL_read that would only say WANT_READ.
                return got, TLS_WANT_READ
            n = self.read(buf + got, cap - got)
            if n <= 0:
                return got, n
            got += n
        return got, 1

    cdef int write(self, const void* p, Py_ssize_t n) noexcept:
        """Encrypts n bytes into the output buffer (bio_write never makes it wait)."""
        cdef int r
        if n == 0:
            return 0
        r = SSL_write(self.ssl, p, <int>n)
        if r <= 0:
            self._error = self.describe_error(SSL_get_error(self.ssl, r))
            return -1
        return 0

    cdef object take_output(self):
        """The ciphertext waiting to be written, as one bytes object, or None."""
        cdef Py_ssize_t n = self.io.out_len
        if n == 0:
            return None
        self.io.out_len = 0
        return PyBytes_FromStringAndSize(<char*>self.io.out, n)

    cdef bytes selected_alpn(self):
        cdef const unsigned char* p = NULL
        cdef unsigned int n = 0
        SSL_get0_alpn_selected(self.ssl, &p, &n)
        return (<const char*>p)[:n] if n else b""

    @property
    def version(self):
        return SSL_get_version(self.ssl).decode()


# The connection life cycle shared by both sessions. A session is handed to the engine only
# once its handshake completed (as uvloop does with ssl=): until then the engine awaits
# link.handshake and a lost connection is a failed connect, not a lost session.

cdef int tls_flush(_Session s, TlsLink t) noexcept:
    """Sends the ciphertext waiting (a handshake flight, records): 0, or -1 if that failed."""
    cdef Py_ssize_t n = t.io.out_len
    if n == 0:
        return 0
    t.io.out_len = 0
    return s.send(t.io.out, n, None)


cdef void tls_begin(_Session s, TlsLink t, object transport) noexcept:
    s.attach(transport)
    try:
        t.handshake = s.engine.loop.create_future()
    except Exception:
        s.drop()
        return
    if t.step() < 0:
        tls_abandon(s, t, t._error)
        return
    if tls_flush(s, t) < 0:
        tls_abandon(s, t, "cannot write the TLS ClientHello")


cdef void tls_handshake_failed(TlsLink t, str reason) noexcept:
    """Tells the engine's connect, which awaits t.handshake, why there is no session."""
    try:
        if t.handshake is not None and not t.handshake.done():
            t.handshake.set_result(reason)
    except Exception:
        pass


cdef void tls_abandon(_Session s, TlsLink t, str reason) noexcept:
    """The handshake failed: tell the engine's connect, close the transport."""
    tls_handshake_failed(t, reason)
    s.drop()


cdef int tls_input(_Session s, TlsLink t, const uint8_t* p, Py_ssize_t n, bint want_h2) noexcept:
    """Ciphertext read from the transport: 1 if application data may be waiting, 0 if not
    (handshake in progress, or the session closed), -1 if the connection failed."""
    cdef int r
    cdef bytes proto
    if s.closed:
        return 0
    if t.feed(p, n) < 0:
        s.drop()
        return -1
    if t.established:
        return 1
    r = t.step()
    if tls_flush(s, t) < 0:
        tls_abandon(s, t, "write failed during the TLS handshake")
        return -1
    if r == 0:
        return 0
    if r < 0:
        tls_abandon(s, t, t._error)
        return -1
    proto = t.selected_alpn()
    if want_h2 and proto != b"h2":
        tls_abandon(s, t, "the server did not negotiate h2 by ALPN (got "
                    + (proto.decode(errors="replace") or "nothing") + ")")
        return -1
    if not want_h2 and proto == b"h2":
        tls_abandon(s, t, "the server negotiated h2 by ALPN on an HTTP/1.1 connection")
        return -1
    try:
        t.handshake.set_result(None)
        s.on_connected()
        s.engine.on_connected(s)
    except Exception:
        s.drop()
        return -1
    return 0 if s.closed else 1


cdef void tls_write(_Session s, TlsLink t, const void* p, Py_ssize_t n) noexcept:
    if s.closed:
        return
    if t.write(p, n) < 0 or tls_flush(s, t) < 0:
        s.drop()


cdef bint tls_lost(_Session s, TlsLink t, object exc) noexcept:
    """connection_lost: True if the session was established (the engine's on_lost follows);
    otherwise the handshake is failed here and the engine never saw the session."""
    if t.established:
        return True
    reason = "the connection closed during the TLS handshake"
    if exc is not None:
        reason += f" ({exc})"
    tls_handshake_failed(t, reason)
    s.closed = True
    s.detach()
    return False


cdef class TlsH1Session(H1Session):
    """H1Session over native TLS: reads arrive as ciphertext bytes (data_received), the
    plaintext goes through the same on_data; writes go through SSL_write."""

    cdef TlsLink tls
    cdef uint8_t* plain

    def __init__(self, TlsContext context, WorkerStats stats, engine, bytes request, int pipeline,
                 bint head_method=False):
        H1Session.__init__(self, stats, engine, request, pipeline, head_method)
        self.tls = TlsLink(context)
        self.plain = <uint8_t*>malloc(READ_BUFFER_SIZE)
        if self.plain == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.plain)

    @property
    def handshake(self):
        return self.tls.handshake

    def connection_made(self, transport):
        tls_begin(self, self.tls, transport)

    def data_received(self, bytes data):
        if tls_input(self, self.tls, <const uint8_t*>PyBytes_AS_STRING(data),
                     PyBytes_GET_SIZE(data), False) > 0:
            self.pump()
        if self.tls.settle() < 0:
            self.drop()

    cdef void pump(self) noexcept:
        cdef Py_ssize_t n, got
        while not self.closed:
            got, n = self.tls.read_all(self.plain, READ_BUFFER_SIZE)
            if got > 0:
                self.on_data(self.plain, got)
            if n > 0:
                continue  # the buffer filled up: more records may be waiting
            if self.closed:
                break
            if n == TLS_CLOSE_NOTIFY:
                # close_notify: the end of the byte stream, as a FIN is in plaintext.
                self.on_eof()
                self.drop()
            elif n == TLS_FAILED:
                self.fail(ERROR_PROTOCOL, now_ns())
            break
        if not self.closed and tls_flush(self, self.tls) < 0:
            self.drop()

    def eof_received(self):
        if self.tls.established:
            self.on_eof()
        return False

    def connection_lost(self, exc):
        if tls_lost(self, self.tls, exc):
            H1Session.connection_lost(self, exc)

    cdef void write_obj(self, object data) noexcept:
        tls_write(self, self.tls, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef void write_buf(self, const uint8_t* p, Py_ssize_t n) noexcept:
        tls_write(self, self.tls, p, n)


cdef class TlsH2Session(H2Session):
    """H2Session over native TLS: uvloop reads ciphertext into this session's own buffer
    (no object per read), SSL_read decrypts into the HTTP/2 receive buffer."""

    cdef TlsLink tls
    cdef bytearray cbuf
    cdef object cview
    cdef uint8_t* cptr

    def __init__(self, TlsContext context, WorkerStats stats, engine, bytes header_block,
                 bytes body, int streams, bytes first_block=None, int64_t table_need=0,
                 bytes stateless_block=None, bint grpc=False):
        H2Session.__init__(self, stats, engine, header_block, body, streams, first_block,
                           table_need, stateless_block, grpc)
        self.tls = TlsLink(context)
        self.cbuf = bytearray(READ_BUFFER_SIZE)
        self.cview = memoryview(self.cbuf)
        self.cptr = <uint8_t*>PyByteArray_AS_STRING(self.cbuf)

    @property
    def handshake(self):
        return self.tls.handshake

    def connection_made(self, transport):
        tls_begin(self, self.tls, transport)

    def get_buffer(self, Py_ssize_t sizehint):
        return self.cview

    def buffer_updated(self, Py_ssize_t nbytes):
        if tls_input(self, self.tls, self.cptr, nbytes, True) > 0:
            self.pump()
        if self.tls.settle() < 0:
            self.drop()

    cdef void pump(self) noexcept:
        cdef Py_ssize_t n, got
        while not self.closed:
            got, n = self.tls.read_all(self.rptr, READ_BUFFER_SIZE)
            if got > 0:
                self.on_plain(self.rptr, got)
            if n > 0:
                continue
            if self.closed:
                break
            if n == TLS_CLOSE_NOTIFY:
                # The streams still open lose their connection: counted by on_lost as reset.
                self.drop()
            elif n == TLS_FAILED:
                self.fail_all(ERROR_PROTOCOL, now_ns())
            break
        if not self.closed and tls_flush(self, self.tls) < 0:
            self.drop()

    def connection_lost(self, exc):
        if tls_lost(self, self.tls, exc):
            H2Session.connection_lost(self, exc)

    cdef void write_buf(self, const uint8_t* p, Py_ssize_t n) noexcept:
        tls_write(self, self.tls, p, n)

    cdef void write_obj(self, object data) noexcept:
        tls_write(self, self.tls, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef class MemoryTlsClient:
    """A TlsLink driven from Python, for tests: the client side of a TLS session in memory
    (bytes in, bytes out), decrypting through the sessions' read path (read_all)."""

    cdef TlsLink tls
    cdef uint8_t* plain

    def __init__(self, TlsContext context):
        self.tls = TlsLink(context)
        self.plain = <uint8_t*>malloc(READ_BUFFER_SIZE)
        if self.plain == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.plain)

    def handshake(self, bytes data=b""):
        """Feeds data; returns (state, output): state 1 done, 0 in progress, -1 failed."""
        if data:
            self.tls.feed(<const uint8_t*>PyBytes_AS_STRING(data), len(data))
        r = self.tls.step()
        self.tls.settle()
        return r, self.tls.take_output() or b""

    def receive(self, bytes data):
        """Feeds ciphertext; returns (plaintext, state): state is "open", "close_notify" or
        the error text."""
        cdef Py_ssize_t n, got
        cdef list parts = []
        self.tls.feed(<const uint8_t*>PyBytes_AS_STRING(data), len(data))
        while True:
            got, n = self.tls.read_all(self.plain, READ_BUFFER_SIZE)
            if got > 0:
                parts.append(PyBytes_FromStringAndSize(<char*>self.plain, got))
            if n > 0:
                continue  # the buffer filled up: more records may be waiting
            self.tls.settle()
            if n == TLS_CLOSE_NOTIFY:
                return b"".join(parts), "close_notify"
            if n == TLS_FAILED:
                return b"".join(parts), self.tls._error
            return b"".join(parts), "open"

    def send(self, bytes data):
        """Encrypts data; returns the ciphertext."""
        if self.tls.write(PyBytes_AS_STRING(data), len(data)) < 0:
            raise ValueError(self.tls._error)
        return self.tls.take_output() or b""

    def output(self):
        return self.tls.take_output() or b""

    @property
    def alpn(self):
        return self.tls.selected_alpn().decode()

    @property
    def error(self):
        return self.tls._error

    @property
    def version(self):
        return self.tls.version
