"""TEST FIXTURE: a current ClickHouse engine (chdb) behind ClickHouse's HTTP interface.

This is part of Sluice's test harness, never a server for users: it has no
authentication beyond the passwordless `default` user, no TLS, no limits, and
it only listens on loopback. Users run a real ClickHouse server.

Why it exists: CI's ClickHouse server is Debian's 18.16 (2018), while users run
current releases. chdb-core (PyPI) is the current ClickHouse engine compiled as
an in-process library. The engine does all the SQL work; this file only
translates the part of the HTTP interface that the Rust `clickhouse` crate
(0.15, `lz4` feature) and the test harness use:

- GET/HEAD `/ping` and a bare GET `/` answer `Ok.`;
- the query comes in the `query` URL parameter, in the body, or both (then the
  body is the INSERT data, or the rest of the query, as in ClickHouse);
- `database`, `default_format` (or `X-ClickHouse-Format`), `param_*` query
  parameters, and any other URL parameter as a setting (`SET name = value`
  on this request's own connection);
- `INSERT ... FORMAT <fmt>` with the data in the body, plain or, with
  `decompress=1`, in ClickHouse's compressed blocks (CityHash128 v1.0.2
  checksum, then method 0x82 LZ4 or 0x02 none, sizes, data); checksums are
  verified;
- every output format the engine has (RowBinary, RowBinaryWithNamesAndTypes,
  TabSeparated by default, CSV, JSON, ...), sent uncompressed: a server may
  ignore `Accept-Encoding`, and the crate reads plain bodies;
- errors as ClickHouse sends them: status 400/403/404/500/501, the header
  `X-ClickHouse-Exception-Code`, and a body `Code: N. DB::Exception: ...`.

Not supported (answered with an error, never ignored): `compress=1` (block-
compressed responses), sessions (`session_id`), users other than `default`.

Usage: chdb_http_fixture.py --port 8124 --path DIR [--host 127.0.0.1]
"""

import argparse
import base64
import os
import re
import signal
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# DateTime values render in the server's time zone; deploy/stack.sh runs
# clickhouse-server in UTC, so the second engine must agree.
os.environ["TZ"] = "UTC"
time.tzset()

import chdb  # noqa: E402
import lz4.block  # noqa: E402
from clickhouse_cityhash.cityhash import CityHash128  # noqa: E402

ENGINE_VERSION = chdb.engine_version

# Error codes (ClickHouse's src/Common/ErrorCodes.cpp) that the fixture raises itself.
UNKNOWN_EXCEPTION = 1002
CHECKSUM_DOESNT_MATCH = 40
NOT_IMPLEMENTED = 48
UNKNOWN_COMPRESSION_METHOD = 89
CANNOT_DECOMPRESS = 271
AUTHENTICATION_FAILED = 516
HTTP_LENGTH_REQUIRED = 381

# The HTTP status ClickHouse's HTTPHandler gives each error code; 500 otherwise.
STATUS_OF_CODE = {
    **dict.fromkeys(
        # CANNOT_PARSE_*, SYNTAX_ERROR, TYPE_MISMATCH, INCORRECT_DATA, and friends
        (6, 26, 27, 38, 41, 53, 62, 72, 117, 167, 168, 169, 321),
        HTTPStatus.BAD_REQUEST,
    ),
    **dict.fromkeys((192, 193, 194, 516), HTTPStatus.FORBIDDEN),
    **dict.fromkeys(
        # UNKNOWN_{FUNCTION,IDENTIFIER,TYPE,STORAGE,TABLE,AGGREGATE_FUNCTION,FORMAT,DATABASE,SETTING}
        (46, 47, 50, 56, 60, 63, 73, 81, 115),
        HTTPStatus.NOT_FOUND,
    ),
    NOT_IMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    HTTP_LENGTH_REQUIRED: HTTPStatus.LENGTH_REQUIRED,
}

CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "json": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}

# Parameters that steer the HTTP layer rather than being settings.
HTTP_PARAMS = {"query", "database", "default_format", "decompress", "compress", "user", "password",
               "query_id", "enable_http_compression", "http_zlib_compression_level"}

INSERT_WITH_FORMAT = re.compile(
    r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n)?(.*)$",
    re.IGNORECASE | re.DOTALL,
)
CODE_IN_MESSAGE = re.compile(r"Code: (\d+)\.")
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

CHECKSUM_SIZE = 16
HEADER_SIZE = 9
METHOD_NONE = 0x02
METHOD_LZ4 = 0x82


class ClickHouseError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def block_checksum(block):
    """CityHash128 v1.0.2 of header and data, as ClickHouse writes it: the two
    64-bit halves, each little-endian, the high half (as clickhouse-cityhash's
    integer has it) first. Checked against 18.16, which rejects the other order."""
    digest = CityHash128(block)
    return (digest >> 64).to_bytes(8, "little") + (digest & (2**64 - 1)).to_bytes(8, "little")


def decompress_blocks(body):
    """ClickHouse's native block framing, as sent with `decompress=1`."""
    out = []
    pos = 0
    while pos < len(body):
        if len(body) - pos < CHECKSUM_SIZE + HEADER_SIZE:
            raise ClickHouseError(CANNOT_DECOMPRESS, "truncated compressed block header")
        checksum = body[pos:pos + CHECKSUM_SIZE]
        method, compressed_size, plain_size = struct.unpack_from("<BII", body, pos + CHECKSUM_SIZE)
        block = body[pos + CHECKSUM_SIZE:pos + CHECKSUM_SIZE + compressed_size]
        if compressed_size < HEADER_SIZE or len(block) != compressed_size:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"compressed block of {compressed_size} bytes is truncated")
        if block_checksum(block) != checksum:
            raise ClickHouseError(CHECKSUM_DOESNT_MATCH, "checksum doesn't match: corrupted data")
        data = block[HEADER_SIZE:]
        if method == METHOD_LZ4:
            try:
                data = lz4.block.decompress(data, uncompressed_size=plain_size)
            except lz4.block.LZ4BlockError as error:
                raise ClickHouseError(CANNOT_DECOMPRESS, f"cannot decompress LZ4 block: {error}") from None
        elif method != METHOD_NONE:
            raise ClickHouseError(UNKNOWN_COMPRESSION_METHOD, f"unknown compression method 0x{method:02x}")
        if len(data) != plain_size:
            raise ClickHouseError(CANNOT_DECOMPRESS, "decompressed size differs from the block header")
        out.append(data)
        pos += CHECKSUM_SIZE + compressed_size
    return b"".join(out)


def sql_string(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """One embedded engine for the process; a connection per request keeps each
    request's database and settings to itself (chdb runs connections in parallel)."""

    def __init__(self, path):
        # Keeps the engine alive between requests: it shuts down with its last connection.
        self._anchor = chdb.connect(path)
        self._path = path

    def run(self, sql, data, database, settings, params, output_format):
        """Runs one request; returns the response body."""
        conn = chdb.connect(self._path)
        try:
            if database:
                self._execute(conn, f"USE `{database.replace('`', '``')}`")
            for name, value in settings.items():
                if not SETTING_NAME.match(name):
                    raise ClickHouseError(115, f"Unknown setting '{name}'. (UNKNOWN_SETTING)")
                self._execute(conn, f"SET {name} = {sql_string(value)}")
            insert = INSERT_WITH_FORMAT.match(sql)
            if insert:
                statement, input_format, inline = insert.groups()
                return self._insert(conn, statement, input_format, data if data is not None else inline.encode())
            if data:
                sql = sql + "\n" + data.decode("utf-8", "replace")
            return self._execute(conn, sql, output_format, params)
        finally:
            conn.close()

    @staticmethod
    def _execute(conn, sql, output_format="TabSeparated", params=None):
        try:
            result = conn.query(sql, output_format, params=params or {})
        except RuntimeError as error:
            raise engine_error(error) from None
        return result.bytes()

    @staticmethod
    def _insert(conn, statement, input_format, data):
        try:
            with conn.send_insert(statement, input_format) as inserter:
                if data:
                    inserter.append(data)
                inserter.finish()
        except RuntimeError as error:
            raise engine_error(error) from None
        return b""

    def close(self):
        self._anchor.close()


def engine_error(error):
    message = str(error)
    # chdb prefixes some messages with its Python-side context; ClickHouse's own text starts at "Code:".
    start = message.find("Code: ")
    if start > 0:
        message = message[start:]
    found = CODE_IN_MESSAGE.search(message)
    return ClickHouseError(int(found.group(1)) if found else UNKNOWN_EXCEPTION, message)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"sluice-chdb-test-fixture/{ENGINE_VERSION}"
    engine = None  # set by main()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/ping" or (url.path == "/" and not url.query):
            self._read_body()
            self._reply(HTTPStatus.OK, b"Ok.\n", "text/plain; charset=UTF-8")
            return
        self._handle_query(url)

    def do_POST(self):
        self._handle_query(urlsplit(self.path))

    def _handle_query(self, url):
        try:
            body = self._read_body()
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            self._authenticate(params)
            if params.get("compress", "0") not in ("", "0"):
                raise ClickHouseError(NOT_IMPLEMENTED, "the test fixture does not send compressed blocks (compress=1)")
            if "session_id" in params:
                raise ClickHouseError(NOT_IMPLEMENTED, "the test fixture has no HTTP sessions (session_id)")
            if params.get("decompress", "0") not in ("", "0"):
                body = decompress_blocks(body)
            if "query" in params:
                sql, data = params["query"], body
            else:
                sql, data = body.decode("utf-8", "replace"), None
            if not sql.strip():
                raise ClickHouseError(62, "Empty query. (SYNTAX_ERROR)")
            output_format = (self.headers.get("X-ClickHouse-Format") or params.get("default_format")
                             or "TabSeparated")
            database = self.headers.get("X-ClickHouse-Database") or params.get("database")
            query_params = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
            settings = {k: v for k, v in params.items() if k not in HTTP_PARAMS and not k.startswith("param_")}
            result = self.engine.run(sql, data, database, settings, query_params, output_format)
        except ClickHouseError as error:
            self._error(error)
            return
        except Exception as error:  # noqa: BLE001 - every failure must reach the client as an answer
            self._error(ClickHouseError(UNKNOWN_EXCEPTION, f"test fixture: {type(error).__name__}: {error}"))
            return
        content_type = CONTENT_TYPES.get(output_format.lower(), "application/octet-stream")
        self._reply(HTTPStatus.OK, result, content_type, {"X-ClickHouse-Format": output_format})

    def _authenticate(self, params):
        user, password = params.get("user", "default"), params.get("password", "")
        user = self.headers.get("X-ClickHouse-User", user)
        password = self.headers.get("X-ClickHouse-Key", password)
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        if user != "default" or password:
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: the test fixture knows only the passwordless user 'default'",
            )

    def _read_body(self):
        """The whole request body, so the connection stays usable whatever the answer."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _error(self, error):
        message = str(error)
        if not message.startswith("Code: "):
            message = f"Code: {error.code}. DB::Exception: {message}"
        if "(version " not in message:
            message += f" (version {ENGINE_VERSION})"
        status = STATUS_OF_CODE.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR)
        self.log_message("error %s: %s", error.code, message)
        self._reply(status, (message + "\n").encode(), "text/plain; charset=UTF-8",
                    {"X-ClickHouse-Exception-Code": str(error.code)})

    def _reply(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Server-Display-Name", "sluice-chdb-test-fixture")
        self.send_header("X-ClickHouse-Timezone", "UTC")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="directory for the engine's data")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the test fixture listens on loopback only")

    os.makedirs(args.path, exist_ok=True)
    Handler.engine = Engine(args.path)
    # Bound only after the engine is up, so /ping answering means queries will run.
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(signum, _frame):
        sys.stderr.write(f"chdb test fixture: signal {signum}, stopping\n")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(
        f"chdb test fixture (ClickHouse engine {ENGINE_VERSION}) on http://{args.host}:{args.port}, "
        f"data in {args.path}. A test fixture, not a server for users.\n"
    )
    sys.stderr.flush()
    server.serve_forever()
    server.server_close()
    Handler.engine.close()


if __name__ == "__main__":
    main()
