"""IR versions and file magic.

Policy: IR_VERSION is bumped whenever a field of ir/pcir.proto changes
meaning or a new required field appears. Readers accept every version in
[MIN_SUPPORTED_IR_VERSION, IR_VERSION]; older supported versions are upgraded
in place on load; a newer version is refused with a clear error.
"""

IR_VERSION = 1
MIN_SUPPORTED_IR_VERSION = 1

# 8-byte file prefixes: 4 ASCII letters, a NUL, then the 3-byte big-endian
# file format version. The protobuf bytes follow.
MODEL_MAGIC = b"PCIR\x00"
LAYOUT_MAGIC = b"PCLY\x00"
FILE_FORMAT_VERSION = 1
