"""The wire format of ``vqa-rt serve`` that server and client share (``docs/serve-protocol.md`` has all of it)."""

import struct

PROTOCOL_VERSION = 1
MESSAGE = struct.Struct("<4sI")  # magic, little-endian uint32 payload bytes
FRAME_MAGIC, DONE_MAGIC = b"FRAM", b"DONE"
HEADER_LIMIT = 65536  # bytes of the job header line
