// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum the manifest records for
// every checkpoint file. It runs at disk speed: the SSE4.2 crc32 instruction when the CPU has it
// (checked at run time, so a portable build still uses it), slice-by-8 tables otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace lt::ckpt {

// The CRC32C of `data`, continuing from `crc` (the result of the preceding bytes, 0 to start):
// crc32c(b, crc32c(a)) == crc32c(a + b).
std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0);

// The table-driven implementation alone, whatever the CPU (for tests of the dispatch).
std::uint32_t crc32c_portable(std::span<const std::byte> data, std::uint32_t crc = 0);

}  // namespace lt::ckpt
