"""Checks of the test fixture's own translation work, the parts the Rust suite
cannot reach: corrupted or unknown compressed blocks, and error framing.
Run by deploy/test.sh before the suite's chdb run."""

import struct
import unittest

import lz4.block

import chdb_http_fixture as fixture


def frame(data, method=fixture.METHOD_LZ4):
    payload = lz4.block.compress(data, store_size=False) if method == fixture.METHOD_LZ4 else data
    block = struct.pack("<BII", method, fixture.HEADER_SIZE + len(payload), len(data)) + payload
    return fixture.block_checksum(block) + block


class CompressedBlocks(unittest.TestCase):
    def test_blocks_in_sequence_decompress_to_their_concatenation(self):
        body = frame(b"a" * 1000) + frame(b"plain", fixture.METHOD_NONE) + frame(b"end")
        self.assertEqual(fixture.decompress_blocks(body), b"a" * 1000 + b"plain" + b"end")

    def test_a_flipped_bit_is_a_checksum_error(self):
        body = bytearray(frame(b"hello, world"))
        body[-1] ^= 1
        with self.assertRaises(fixture.ClickHouseError) as caught:
            fixture.decompress_blocks(bytes(body))
        self.assertEqual(caught.exception.code, fixture.CHECKSUM_DOESNT_MATCH)

    def test_unknown_methods_and_truncation_are_refused(self):
        cases = [
            (frame(b"zstd?", 0x90), fixture.UNKNOWN_COMPRESSION_METHOD),
            (frame(b"hello")[:-2], fixture.CANNOT_DECOMPRESS),
            (b"\x00" * 10, fixture.CANNOT_DECOMPRESS),
        ]
        for body, code in cases:
            with self.assertRaises(fixture.ClickHouseError) as caught:
                fixture.decompress_blocks(body)
            self.assertEqual(caught.exception.code, code)


class Errors(unittest.TestCase):
    def test_the_engine_code_is_taken_from_the_message(self):
        error = fixture.engine_error(RuntimeError("Query failed: Code: 60. DB::Exception: no table. (UNKNOWN_TABLE)"))
        self.assertEqual(error.code, 60)
        self.assertTrue(str(error).startswith("Code: 60. DB::Exception"))
        self.assertEqual(fixture.STATUS_OF_CODE[60], 404)
        self.assertEqual(fixture.engine_error(RuntimeError("boom")).code, fixture.UNKNOWN_EXCEPTION)

    def test_inserts_are_split_from_their_data(self):
        match = fixture.INSERT_WITH_FORMAT.match("INSERT INTO t(`a`,`b`) FORMAT RowBinary\nDATA")
        self.assertEqual(match.groups(), ("INSERT INTO t(`a`,`b`)", "RowBinary", "DATA"))
        self.assertIsNone(fixture.INSERT_WITH_FORMAT.match("INSERT INTO t VALUES (1)"))


if __name__ == "__main__":
    unittest.main()
