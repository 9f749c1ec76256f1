#!/usr/bin/env python3
"""Reads the safetensors file test_checkpoint_format writes (SafetensorsInterop.WritesTheSample-
ForPython) with the Python standard library alone, applying the rules of HuggingFace's reader,
and checks every value. Usage: check_safetensors.py FILE. Exits non-zero with a message on any
mismatch."""
import json
import struct
import sys

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
         "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def fail(message):
    sys.exit(f"{sys.argv[1]}: {message}")


def main():
    blob = open(sys.argv[1], "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8 or 8 + n > len(blob):
        fail(f"header length {n}")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    if header.pop("__metadata__", None) != {"format": "pt"}:
        fail("metadata")
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        if begin != end or stop - begin != count * SIZES[info["dtype"]]:
            fail(f"{name}: offsets {info['data_offsets']}")
        end = stop
    if end != len(data):
        fail(f"data section of {len(data)} bytes, tensors end at {end}")

    def values(name, fmt):
        begin, stop = header[name]["data_offsets"]
        return list(struct.unpack("<" + fmt * ((stop - begin) // struct.calcsize(fmt)),
                                  data[begin:stop]))

    expected = {
        "model.f32": ("F32", [2, 3], "f", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        "model.i64": ("I64", [2], "q", [-1, 1 << 40]),
        "model.bf16": ("BF16", [2], "H", [0x3F80, 0xC000]),
        "model.empty": ("U8", [0], "B", []),
    }
    if set(header) != set(expected):
        fail(f"tensors {sorted(header)}")
    for name, (dtype, shape, fmt, want) in expected.items():
        if header[name]["dtype"] != dtype or header[name]["shape"] != shape:
            fail(f"{name}: {header[name]}")
        if values(name, fmt) != want:
            fail(f"{name}: values {values(name, fmt)}")
    print(f"ok: {len(header)} tensors, header {n} bytes")


if __name__ == "__main__":
    main()
