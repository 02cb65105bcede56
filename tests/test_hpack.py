"""HPACK: native decoder (fastload.native.HpackDecoder) and stateless encoder (hpack_encode).

python-hyper hpack is the reference: RFC 7541 Appendix C vectors pin the bytes, hypothesis
checks that both decoders agree on everything the reference encoder can produce and on
corrupted input.
"""

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastload import native
from fastload.errors import ProtocolError
from fastload.workload.hpack import STATIC_TABLE, _encode_int, encode_block, huffman_encode

HpackDecoder = native.HpackDecoder
_ref_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])



def _ref_decoder(max_table_size=4096, max_header_list_size=65536):
    d = hpack.Decoder(max_header_list_size=max_header_list_size)
    d.header_table_size = max_table_size
    d.max_allowed_table_size = max_table_size
    return d


def _ref_entries(ref):
    return [(bytes(n), bytes(v)) for n, v in ref.header_table.dynamic_entries]


# ---- RFC 7541 Appendix C ----

REQ = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
       (b":authority", b"www.example.com")]
REQ2 = REQ + [(b"cache-control", b"no-cache")]
REQ3 = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
        (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
RESP1 = [(b":status", b"302"), (b"cache-control", b"private"),
         (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"location", b"https://www.example.com")]
RESP2 = [(b":status", b"307")] + RESP1[1:]
RESP3 = [(b":status", b"200"), (b"cache-control", b"private"),
         (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"), (b"location", b"https://www.example.com"),
         (b"content-encoding", b"gzip"),
         (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")]

REQ_TABLES = [
    (57, [(b":authority", b"www.example.com")]),
    (110, [(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")]),
    (164, [(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
           (b":authority", b"www.example.com")]),
]
RESP_TABLES = [
    (222, [(b"location", b"https://www.example.com"),
           (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"cache-control", b"private"),
           (b":status", b"302")]),
    (222, [(b":status", b"307"), (b"location", b"https://www.example.com"),
           (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"cache-control", b"private")]),
    (215, [(RESP3[5]), (b"content-encoding", b"gzip"),
           (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT")]),
]

C2 = [
    ("400a637573746f6d2d6b65790d637573746f6d2d686561646572",
     [(b"custom-key", b"custom-header")], 55),
    ("040c2f73616d706c652f70617468", [(b":path", b"/sample/path")], 0),
    ("100870617373776f726406736563726574", [(b"password", b"secret")], 0),
    ("82", [(b":method", b"GET")], 0),
]
C3 = ["828684410f7777772e6578616d706c652e636f6d",
      "828684be58086e6f2d6361636865",
      "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
C4 = ["828684418cf1e3c2e5f23a6ba0ab90f4ff",
      "828684be5886a8eb10649cbf",
      "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
C5 = ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a3231"
      "20474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
      "4803333037c1c0bf",
      "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970"
      "7738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167"
      "653d333630303b2076657273696f6e3d31"]
C6 = ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad1718"
      "63c78f0b97c8e9ae82ae43d3",
      "4883640effc1c0bf",
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7"
      "b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"]


@pytest.mark.parametrize("hexblock,headers,size", C2)
def test_rfc_c2(hexblock, headers, size):
    d = HpackDecoder()
    assert d.decode_py(bytes.fromhex(hexblock)) == headers
    assert d.table_size == size
    assert d.table_entries == (headers if size else [])


@pytest.mark.parametrize(
    "blocks,expected,tables,table_max",
    [
        (C3, [REQ, REQ2, REQ3], REQ_TABLES, 4096),
        (C4, [REQ, REQ2, REQ3], REQ_TABLES, 4096),
        (C5, [RESP1, RESP2, RESP3], RESP_TABLES, 256),
        (C6, [RESP1, RESP2, RESP3], RESP_TABLES, 256),
    ],
    ids=["C.3", "C.4", "C.5", "C.6"],
)
def test_rfc_sequences(blocks, expected, tables, table_max):
    d = HpackDecoder(max_table_size=table_max)
    ref = _ref_decoder(table_max)
    for hexblock, headers, (size, entries) in zip(blocks, expected, tables, strict=True):
        block = bytes.fromhex(hexblock)
        assert ref.decode(block, raw=True) == headers  # the vectors are transcribed right
        assert d.decode_py(block) == headers
        assert d.table_size == size
        assert d.table_entries == entries
        assert _ref_entries(ref) == entries
    if table_max == 256:
        assert d.status == 200
        assert d.content_length == -1


def test_rfc_c4_huffman_strings():
    assert huffman_encode(b"www.example.com") == bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")
    assert huffman_encode(b"no-cache") == bytes.fromhex("a8eb10649cbf")
    assert huffman_encode(b"custom-key") == bytes.fromhex("25a849e95ba97d7f")
    assert huffman_encode(b"") == b""


# ---- hot-path accessors ----

def test_status_content_length_find():
    d = HpackDecoder()
    block = encode_block([(b":status", b"404"), (b"content-length", b"1234"),
                          (b"grpc-status", b"14"), (b"x-a", b"")])
    assert d.decode_py(block) == [(b":status", b"404"), (b"content-length", b"1234"),
                                  (b"grpc-status", b"14"), (b"x-a", b"")]
    assert d.status == 404
    assert d.content_length == 1234
    assert d._find_py(b"grpc-status") == b"14"
    assert d._find_py(b"x-a") == b""
    assert d._find_py(b"grpc-message") is None
    # A trailers block has no :status: the values describe the last block only.
    d.decode_py(encode_block([(b"grpc-status", b"0")]))
    assert d.status == -1
    assert d.content_length == -1
    assert d._find_py(b"grpc-status") == b"0"


@pytest.mark.parametrize("status,expected", [(b"20", -1), (b"2000", -1), (b"2x0", -1),
                                             (b"599", 599), (b"", -1)])
def test_status_parse(status, expected):
    d = HpackDecoder()
    d.decode_py(encode_block([(b":status", status)]))
    assert d.status == expected


@pytest.mark.parametrize("values,expected", [([b"0"], 0), ([b"12", b"12"], 12),
                                             ([b"12", b"13"], -2), ([b"-1"], -2),
                                             ([b""], -2), ([b"1" * 19], -2)])
def test_content_length_parse(values, expected):
    d = HpackDecoder()
    d.decode_py(encode_block([(b"content-length", v) for v in values]))
    assert d.content_length == expected


# ---- specific errors ----

def _raises(block, **kw):
    with pytest.raises(ProtocolError):
        HpackDecoder(**kw).decode_py(block)


def test_errors():
    _raises(b"\x80")                                  # index 0
    _raises(b"\xbe")                                  # dynamic index into an empty table
    _raises(b"\xff")                                  # truncated integer
    _raises(b"\xff" + b"\xff" * 6 + b"\x00")          # integer beyond our limit
    _raises(b"\x3f\xe2\x1f")                          # size update 4097 > advertised 4096
    _raises(b"\x82\x20")                              # size update after a field
    _raises(b"\x00\x05abc")                           # name longer than the block
    _raises(b"\x04\x85ab")                            # value longer than the block
    _raises(b"\x04")                                  # missing value
    # EOS (30 ones) inside a Huffman string.
    _raises(b"\x04\x84\xff\xff\xff\xff")
    # 'a' = 00011 then 11 padding bits of ones: padding longer than 7 bits.
    _raises(b"\x04\x82\x1f\xff")
    # 'a' then padding 110: not all ones.
    _raises(b"\x04\x81\x1e")
    # Eight 'a' fill 5 bytes exactly; a whole 0xff byte of padding is one bit too many.
    eight = huffman_encode(b"aaaaaaaa")
    assert len(eight) == 5
    _raises(b"\x04\x86" + eight + b"\xff")
    with pytest.raises(hpack.HPACKDecodingError):
        decode_huffman(eight + b"\xff")
    # Five 'a' (25 bits) + 7 bits of padding is the longest allowed.
    five = huffman_encode(b"aaaaa")
    assert len(five) == 4
    assert HpackDecoder().decode_py(b"\x04\x84" + five) == [(b":path", b"aaaaa")]
    # 65536 max list size: one field of 65505 bytes + 32 overhead is over.
    _raises(encode_block([(b"x", b"a" * 65504)], huffman=False))
    HpackDecoder().decode_py(encode_block([(b"x", b"a" * 65503)], huffman=False))
    _raises(encode_block([(b"x", b"a" * 100)] * 10), max_header_list_size=1000)


def test_many_fields_grow_scratch():
    # Scratch and field arrays start small and must grow inside one block without losing
    # earlier fields; the second decode reuses the grown arrays.
    headers = [(b"x-%d" % i, b"v" * (i % 50)) for i in range(300)]
    block = encode_block(headers)
    d = HpackDecoder()
    assert d.decode_py(block) == headers
    assert d.decode_py(block) == headers
    assert d.decode_py(b"\x88") == [(b":status", b"200")]


def test_size_updates_and_eviction():
    d = HpackDecoder(max_table_size=100)
    # Two size updates at the start are allowed (RFC 7541 4.2): shrink to 0 then grow.
    assert d.decode_py(b"\x20\x3f\x45" + b"\x40\x01a\x01b") == [(b"a", b"b")]
    assert d.table_entries == [(b"a", b"b")]
    d.decode_py(b"\x40\x01c\x01d")
    assert d.table_size == 68
    d.decode_py(b"\x40\x01e\x01f")  # 102 > 100: evicts a
    assert d.table_entries == [(b"e", b"f"), (b"c", b"d")]
    assert d.decode_py(b"\xbe\xbf") == [(b"e", b"f"), (b"c", b"d")]
    d.decode_py(b"\x3f\x02")  # size 33: evicts everything
    assert d.table_entries == []
    d.decode_py(b"\x3f\x45\x40\x01x\x7f\x00" + b"v" * 127)  # larger than the table: not added
    assert d.table_entries == []
    zero = HpackDecoder(max_table_size=0)
    assert zero.decode_py(b"\x40\x01a\x01b") == [(b"a", b"b")]
    assert zero.table_entries == []


def test_ring_wraps():
    # Entries of odd sizes cycle through a small table so that entry bytes straddle the end of
    # the byte ring; the reference decoder's table is the oracle.
    d = HpackDecoder(max_table_size=150)
    ref = _ref_decoder(150)
    enc = hpack.Encoder()
    enc.header_table_size = 150
    for i in range(200):
        headers = [(b"k%d" % (i % 7), b"v" * (i % 23)), (b"k%d" % ((i + 3) % 7), b"w" * (i % 5))]
        block = enc.encode(headers, huffman=bool(i & 1))
        assert d.decode_py(block) == ref.decode(block, raw=True) == headers
        assert d.table_entries == _ref_entries(ref)


# ---- hypothesis: reference encoder -> both decoders ----

_NAMES = [n for n, _ in STATIC_TABLE[:20]] + [b"x-custom", b"grpc-status", b"set-cookie"]
names = st.one_of(st.sampled_from(_NAMES), st.binary(max_size=12))
values = st.one_of(st.sampled_from([b"", b"200", b"GET", b"gzip", b"x" * 40]),
                   st.binary(max_size=30), st.binary(min_size=100, max_size=400))
header_lists = st.lists(st.tuples(names, values, st.booleans()), max_size=10)
block_specs = st.lists(
    st.tuples(header_lists, st.booleans(), st.one_of(st.none(), st.integers(0, 4096))),
    min_size=1, max_size=5,
)


def _ref_encode_blocks(enc, specs):
    for headers, huffman, new_size in specs:
        if new_size is not None:
            enc.header_table_size = new_size
        tuples = [NeverIndexedHeaderTuple(n, v) if s else (n, v) for n, v, s in headers]
        yield enc.encode(tuples, huffman=huffman), [(n, v) for n, v, _ in headers]


@FAST
@given(block_specs)
def test_reference_encoder_roundtrip(specs):
    d = HpackDecoder()
    ref = _ref_decoder()
    for block, headers in _ref_encode_blocks(hpack.Encoder(), specs):
        assert d.decode_py(block) == headers
        assert ref.decode(block, raw=True) == headers
        assert d.table_entries == _ref_entries(ref)
        assert d.table_size == ref.header_table._current_size


@FAST
@given(block_specs, st.integers(0, 3000), st.sampled_from([0, 64, 256, 4096]))
def test_limits_match_reference(specs, max_list, table_max):
    # Small list limits and tables: both decoders must reject exactly the same blocks.
    d = HpackDecoder(max_table_size=table_max, max_header_list_size=max_list)
    ref = _ref_decoder(table_max, max_list)
    enc = hpack.Encoder()
    enc.header_table_size = table_max
    specs = [(h, huff, None if size is None else size % (table_max + 1))
             for h, huff, size in specs]
    for block, _ in _ref_encode_blocks(enc, specs):
        expected, got = _both(d, ref, block)
        assert got == expected
        if expected is None:
            break
        assert d.table_entries == _ref_entries(ref)


# ---- hypothesis: stateless encoder ----

lower_names = st.one_of(st.sampled_from([n for n, _ in STATIC_TABLE]),
                        st.binary(max_size=16).map(bytes.lower))
static_values = st.sampled_from(sorted({v for _, v in STATIC_TABLE}))


@FAST
@given(st.lists(st.tuples(lower_names, st.one_of(static_values, st.binary(max_size=60))),
                max_size=12),
       st.booleans())
def test_encode_block_stateless(headers, huffman):
    block = encode_block(headers, huffman=huffman)
    for _ in range(2):  # the same block must decode identically every time on one connection
        ref_headers = _ref_decoder().decode(block, raw=True)
        assert ref_headers == headers
    ref = _ref_decoder()
    ref.decode(block, raw=True)
    assert _ref_entries(ref) == []
    d = HpackDecoder()
    assert d.decode_py(block) == headers
    assert d.decode_py(block) == headers
    assert d.table_entries == []


def test_encode_block_representations():
    assert encode_block([(b":method", b"GET")]) == b"\x82"
    assert encode_block([(b":path", b"/x")], huffman=False) == b"\x04\x02/x"
    assert encode_block([(b"x-a", b"b")], huffman=False) == b"\x00\x03x-a\x01b"
    # Static index 58 (user-agent) needs the 4-bit prefix continuation.
    assert encode_block([(b"user-agent", b"z")], huffman=False) == b"\x0f\x2b\x01z"
    assert encode_block([(b"x-long", b"www.example.com")]) == (
        b"\x00\x85" + huffman_encode(b"x-long") + b"\x8c" + huffman_encode(b"www.example.com"))
    with pytest.raises(ValueError):
        encode_block([(b"User-Agent", b"x")])


@FAST
@given(st.binary(max_size=300))
def test_huffman_roundtrip(data):
    encoded = huffman_encode(data)
    assert encoded == _ref_huffman.encode(data)
    block = b"\x00\x01a" + bytes(_encode_int(len(encoded), 7, 0x80)) + encoded
    assert HpackDecoder().decode_py(block) == [(b"a", data)]


@FAST
@given(st.binary(max_size=40))
def test_huffman_arbitrary_strings_match_reference(raw):
    # Random bytes as a Huffman string exercise EOS and padding rules; the reference decoder
    # implements them too, so acceptance and output must agree exactly.
    block = b"\x00\x01a" + bytes(_encode_int(len(raw), 7, 0x80)) + raw
    try:
        expected = decode_huffman(raw)
    except hpack.HPACKDecodingError:
        expected = None
    try:
        got = HpackDecoder().decode_py(block)[0][1]
    except ProtocolError:
        got = None
    assert got == expected
    if expected is not None:
        # A list limit that the field fits exactly leaves less than 2 bytes of scratch per
        # input byte: this takes the bounds-checked Huffman loop instead of the fast one.
        tight = HpackDecoder(max_header_list_size=1 + len(expected) + 32)
        assert tight.decode_py(block) == [(b"a", expected)]
        with pytest.raises(ProtocolError):
            HpackDecoder(max_header_list_size=len(expected) + 32).decode_py(block)


# ---- fuzz ----

def _both(d, ref, block):
    try:
        expected = ref.decode(block, raw=True)
    except Exception:  # noqa: BLE001 - the reference signals bad input with several types
        expected = None
    try:
        got = d.decode_py(block)
    except ProtocolError:
        got = None
    return expected, got


def _check_agreement(expected, got, d):
    if expected is None:
        assert got is None
    elif got is None:
        # The one deliberate difference: our integer limit (<= 5 continuation octets, < 2**32).
        assert d.error_msg() == "HPACK integer above the implementation limit"
    else:
        assert got == expected


@FAST
@given(block_specs, st.data())
def test_repeated_blocks_match_reference(specs, data):
    """Blocks sent again, in any order, as a server repeating its response headers does: a
    repeat decoded from the previous outcome must still be what the reference decodes, including
    when a block in between changed the dynamic table that the repeat refers to."""
    d = HpackDecoder()
    ref = _ref_decoder()
    blocks = [block for block, _ in _ref_encode_blocks(hpack.Encoder(), specs)]
    picks = data.draw(st.lists(st.integers(0, len(blocks) - 1), min_size=1, max_size=10))
    for i in picks:
        expected, got = _both(d, ref, blocks[i])
        _check_agreement(expected, got, d)
        if expected is None or got is None:
            break
        assert d.table_entries == _ref_entries(ref)
        fields = dict(reversed(expected))
        assert d._find_py(b":status") == fields.get(b":status")
        assert d._find_py(b"content-length") == fields.get(b"content-length")


def test_a_repeat_sees_the_table_change_under_it():
    """The same bytes mean something else once the dynamic entry they index has changed."""
    d = HpackDecoder()
    insert_a = bytes([0x40, 1]) + b"x" + bytes([1]) + b"a"   # x: a, with incremental indexing
    insert_b = bytes([0x40, 1]) + b"x" + bytes([1]) + b"b"   # x: b, now index 62
    use = bytes([0x88, 0x80 | 62])                             # :status 200 and index 62
    assert d.decode_py(insert_a) == [(b"x", b"a")]
    assert d.decode_py(insert_a) == [(b"x", b"a")]             # a repeat that inserts again
    assert d.table_entries == [(b"x", b"a"), (b"x", b"a")]
    assert d.decode_py(use) == [(b":status", b"200"), (b"x", b"a")]
    assert d.decode_py(use) == [(b":status", b"200"), (b"x", b"a")]
    assert d.decode_py(insert_b) == [(b"x", b"b")]
    assert d.decode_py(use) == [(b":status", b"200"), (b"x", b"b")]
    assert d.decode_py(bytes([0x20])) == []                    # table size 0: empties it
    with pytest.raises(ProtocolError):
        d.decode_py(use)
    assert d.error_msg() == "HPACK index beyond the dynamic table"
    # A repeat whose own insertion changes what its reference means (index 62, then y: z).
    d1 = HpackDecoder()
    ref_then_insert = bytes([0x80 | 62, 0x40, 1]) + b"y" + bytes([1]) + b"z"
    assert d1.decode_py(insert_a) == [(b"x", b"a")]
    assert d1.decode_py(ref_then_insert) == [(b"x", b"a"), (b"y", b"z")]
    assert d1.decode_py(ref_then_insert) == [(b"y", b"z"), (b"y", b"z")]
    # A repeat that empties the table first (size 0, then 4096 again) before inserting.
    resize_then_insert = bytes([0x20, 0x3F, 0xE1, 0x1F]) + insert_a
    assert d1.decode_py(resize_then_insert) == [(b"x", b"a")]
    assert d1.decode_py(resize_then_insert) == [(b"x", b"a")]
    assert d1.table_entries == [(b"x", b"a")]
    # More insertions than a repeat replays (16): such a block is decoded again each time.
    many = b"".join(bytes([0x40, 1, 0x61 + k, 1]) + b"v" for k in range(17))
    d3 = HpackDecoder()
    assert d3.decode_py(many) == d3.decode_py(many) == [(bytes([0x61 + k]), b"v")
                                                        for k in range(17)]
    assert len(d3.table_entries) == 34
    # A block that fails half-way overwrites the outcome: the one before it is decoded afresh.
    d2 = HpackDecoder()
    assert d2.decode_py(bytes([0x89])) == [(b":status", b"204")]
    with pytest.raises(ProtocolError):
        d2.decode_py(bytes([0x88, 0xFF]))                      # :status 200, then truncated
    assert d2.decode_py(bytes([0x89])) == [(b":status", b"204")]
    assert d2.status == 204


@FAST
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_fuzz_random_bytes(blocks):
    d = HpackDecoder()
    ref = _ref_decoder()
    for block in blocks:
        expected, got = _both(d, ref, block)
        _check_agreement(expected, got, d)
        if expected is None or got is None:
            break  # HPACK state is undefined after an error
        assert d.table_entries == _ref_entries(ref)


@FAST
@given(block_specs, st.data())
def test_fuzz_mutated_blocks(specs, data):
    d = HpackDecoder()
    ref = _ref_decoder()
    for block, _ in _ref_encode_blocks(hpack.Encoder(), specs):
        block = bytearray(block)
        if block and data.draw(st.booleans()):
            for _ in range(data.draw(st.integers(1, 3))):
                i = data.draw(st.integers(0, len(block) - 1))
                block[i] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            block = block[: data.draw(st.integers(0, len(block)))]
        expected, got = _both(d, ref, bytes(block))
        _check_agreement(expected, got, d)
        if expected is None or got is None:
            break
        assert d.table_entries == _ref_entries(ref)
