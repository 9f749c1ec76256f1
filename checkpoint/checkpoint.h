// The checkpoint storage layer, in one include: CRC32C, safetensors files, the manifest, the
// directory protocol (save, commit, prune) and verification (choosing the checkpoint to resume
// from). It knows nothing of the trainer: the trainer decides which tensors to save and how
// they are sharded, and describes them with these types.
#pragma once

#include "checkpoint/crc32c.h"              // IWYU pragma: export
#include "checkpoint/directory.h"           // IWYU pragma: export
#include "checkpoint/error.h"               // IWYU pragma: export
#include "checkpoint/manifest.h"            // IWYU pragma: export
#include "checkpoint/posix_file.h"          // IWYU pragma: export
#include "checkpoint/safetensors_header.h"  // IWYU pragma: export
#include "checkpoint/safetensors_reader.h"  // IWYU pragma: export
#include "checkpoint/safetensors_writer.h"  // IWYU pragma: export
#include "checkpoint/shape.h"               // IWYU pragma: export
#include "checkpoint/tensor_dtype.h"        // IWYU pragma: export
#include "checkpoint/verify.h"              // IWYU pragma: export
