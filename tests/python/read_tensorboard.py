#!/usr/bin/python3
"""Reads longtrain's TensorBoard event files and checks them against the run's metrics.jsonl.

Two independent readers:
  tensorboard  the `tensorboard` package's EventAccumulator, when it is importable;
  builtin      a minimal reader written here from the format's description: TFRecords
               (uint64 length, masked CRC32C of the length, data, masked CRC32C of the data;
               both CRCs checked) holding protobuf Events, decoded field by field. It applies
               TensorBoard's rule for restarts: a SessionLog START at step s drops the points
               at steps >= s read from earlier files.
With --reader auto (the default) the package is used when present, and then the builtin reader
must give the same scalars; otherwise the builtin reader alone. The reader used is printed.

--metrics FILE compares every scalar with the same run's metrics.jsonl: each train line's loss,
lr, grad_norm, tokens_per_s, model_tflops_per_s and mem_peak_* (memory/*), and each eval line's
loss, accuracy and exact_match, must equal the event's float32 value within one float32 ulp, and
the steps must be the same in both. --peak-tflops P --world N also checks train/mfu =
model_tflops_per_s / (N x P). --files K requires K event files (a resumed run adds one).

Usage: read_tensorboard.py EVENT_DIR [--metrics metrics.jsonl] [--reader auto|builtin|tensorboard]
                           [--peak-tflops P --world N] [--files K]
Without --metrics it prints every scalar. Exit status: 0 when every check passes, 1 otherwise.
"""
import argparse
import glob
import json
import os
import struct
import sys

TRAIN_FIELDS = ["loss", "lr", "grad_norm", "tokens_per_s", "model_tflops_per_s"]
EVAL_FIELDS = ["loss", "accuracy", "exact_match"]
MEMORY_PREFIX = "mem_peak_"


class CheckFailed(Exception):
    pass


# --- the builtin reader -----------------------------------------------------------------------

def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path):
    with open(path, "rb") as f:
        blob = f.read()
    at = 0
    while at < len(blob):
        if len(blob) - at < 12:
            raise CheckFailed(f"{path}: truncated record header at byte {at}")
        header = blob[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", blob[at + 8:at + 12])
        if length_crc != masked_crc32c(header):
            raise CheckFailed(f"{path}: bad length CRC at byte {at}")
        data = blob[at + 12:at + 12 + length]
        if len(data) != length or len(blob) < at + 16 + length:
            raise CheckFailed(f"{path}: truncated record at byte {at}")
        (data_crc,) = struct.unpack("<I", blob[at + 12 + length:at + 16 + length])
        if data_crc != masked_crc32c(data):
            raise CheckFailed(f"{path}: bad data CRC at byte {at}")
        yield data
        at += 16 + length


def read_varint(buf, at):
    value, shift = 0, 0
    while True:
        if at >= len(buf):
            raise CheckFailed("varint runs past the end of a message")
        b = buf[at]
        at += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, at
        shift += 7


def decode(buf):
    """(field number, wire type, value) of every field: an int, or bytes for wire type 2."""
    at = 0
    while at < len(buf):
        key, at = read_varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = read_varint(buf, at)
        elif wire == 1:
            (value,) = struct.unpack("<Q", buf[at:at + 8])
            at += 8
        elif wire == 2:
            n, at = read_varint(buf, at)
            value = buf[at:at + n]
            at += n
        elif wire == 5:
            (value,) = struct.unpack("<I", buf[at:at + 4])
            at += 4
        else:
            raise CheckFailed(f"unexpected protobuf wire type {wire}")
        yield number, wire, value


def decode_summary(buf):
    for number, _, value in decode(buf):
        if number != 1:  # Summary.value
            continue
        tag, simple = None, None
        for n, wire, v in decode(value):
            if n == 1:
                tag = v.decode("utf-8")
            elif n == 2 and wire == 5:
                (simple,) = struct.unpack("<f", struct.pack("<I", v))
        if tag is not None and simple is not None:
            yield tag, simple


def decode_event(buf):
    event = {"step": 0, "scalars": [], "file_version": None, "session_start": False}
    for number, _, value in decode(buf):
        if number == 1:
            (event["wall_time"],) = struct.unpack("<d", struct.pack("<Q", value))
        elif number == 2:
            event["step"] = value
        elif number == 3:
            event["file_version"] = value.decode("utf-8")
        elif number == 5:
            event["scalars"] = list(decode_summary(value))
        elif number == 7:
            event["session_start"] = any(n == 1 and v == 1 for n, _, v in decode(value))
    return event


def event_files(directory):
    files = sorted(glob.glob(os.path.join(directory, "*tfevents*")))
    if not files:
        raise CheckFailed(f"no event files (*tfevents*) in {directory}")
    return files


def builtin_scalars(directory):
    """{tag: {step: value}}, files in name order, restarts applied as TensorBoard does."""
    scalars = {}
    for path in event_files(directory):
        for i, record in enumerate(read_records(path)):
            event = decode_event(record)
            if i == 0 and event["file_version"] != "brain.Event:2":
                raise CheckFailed(f"{path}: first event's file_version is "
                                  f"{event['file_version']!r}, expected 'brain.Event:2'")
            if event["session_start"]:
                for points in scalars.values():
                    for step in [s for s in points if s >= event["step"]]:
                        del points[step]
            for tag, value in event["scalars"]:
                scalars.setdefault(tag, {})[event["step"]] = value
    return scalars


# --- the tensorboard package --------------------------------------------------------------------

def package_scalars(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(directory, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def package_available():
    try:
        import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
        return True
    except ImportError:
        return False


def load_scalars(directory, reader):
    if reader == "builtin" or (reader == "auto" and not package_available()):
        why = "" if reader == "builtin" else " (the tensorboard package is not importable)"
        print(f"reader: builtin TFRecord + protobuf reader{why}")
        return builtin_scalars(directory)
    import tensorboard
    print(f"reader: tensorboard {tensorboard.__version__} EventAccumulator")
    scalars = package_scalars(directory)
    if reader == "auto":
        if builtin_scalars(directory) != scalars:
            raise CheckFailed("the builtin reader and the tensorboard package disagree")
        print("reader: the builtin reader gives the same scalars")
    return scalars


# --- checks against metrics.jsonl ----------------------------------------------------------------

def same_float32(event_value, json_value):
    """The event holds float32(x); the JSONL x to 9 significant digits: one float32 ulp apart."""
    if json_value is None:
        return event_value != event_value  # null is a non-finite value; NaN != NaN
    return abs(event_value - json_value) <= 1.2e-7 * abs(json_value)


def expected_scalars(metrics_path, peak_tflops, world):
    expected = {}
    with open(metrics_path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines:
        raise CheckFailed(f"{metrics_path} is empty")
    for line in lines:
        step = line["step"]
        if line["split"] == "train":
            fields = {f"train/{k}": line[k] for k in TRAIN_FIELDS}
            for key, value in line.items():
                if key.startswith(MEMORY_PREFIX):
                    fields["memory/" + key[len(MEMORY_PREFIX):]] = value
            if peak_tflops:
                fields["train/mfu"] = line["model_tflops_per_s"] / (world * peak_tflops)
        else:
            fields = {f"eval/{k}": line[k] for k in EVAL_FIELDS}
        for tag, value in fields.items():
            expected.setdefault(tag, {})[step] = value
    return expected


def compare(scalars, expected):
    for tag in sorted(set(scalars) | set(expected)):
        got, want = scalars.get(tag, {}), expected.get(tag, {})
        if sorted(got) != sorted(want):
            raise CheckFailed(f"{tag}: event steps {sorted(got)}, metrics.jsonl steps {sorted(want)}")
        for step in sorted(want):
            if not same_float32(got[step], want[step]):
                raise CheckFailed(f"{tag} at step {step}: event {got[step]!r}, "
                                  f"metrics.jsonl {want[step]!r}")
    points = sum(len(v) for v in expected.values())
    print(f"{len(expected)} tags, {points} points: every value equals metrics.jsonl")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--metrics")
    parser.add_argument("--reader", choices=["auto", "builtin", "tensorboard"], default="auto")
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    parser.add_argument("--world", type=int, default=1)
    parser.add_argument("--files", type=int)
    args = parser.parse_args()
    try:
        files = event_files(args.directory)
        print(f"{len(files)} event file(s): " + ", ".join(os.path.basename(f) for f in files))
        if args.files is not None and len(files) != args.files:
            raise CheckFailed(f"expected {args.files} event files, found {len(files)}")
        scalars = load_scalars(args.directory, args.reader)
        if args.metrics:
            compare(scalars, expected_scalars(args.metrics, args.peak_tflops, args.world))
        else:
            for tag in sorted(scalars):
                for step, value in sorted(scalars[tag].items()):
                    print(f"{tag}\t{step}\t{value:.9g}")
    except (CheckFailed, OSError, KeyError, ValueError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
