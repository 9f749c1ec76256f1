#include "checkpoint/tensor_dtype.h"

#include <array>

namespace lt::ckpt {
namespace {

struct DtypeInfo {
  TensorDtype dtype;
  std::string_view name;
  std::size_t size;
};

constexpr std::array<DtypeInfo, 15> kDtypes{{
    {TensorDtype::boolean, "BOOL", 1},
    {TensorDtype::u8, "U8", 1},
    {TensorDtype::i8, "I8", 1},
    {TensorDtype::f8_e5m2, "F8_E5M2", 1},
    {TensorDtype::f8_e4m3, "F8_E4M3", 1},
    {TensorDtype::i16, "I16", 2},
    {TensorDtype::u16, "U16", 2},
    {TensorDtype::f16, "F16", 2},
    {TensorDtype::bf16, "BF16", 2},
    {TensorDtype::i32, "I32", 4},
    {TensorDtype::u32, "U32", 4},
    {TensorDtype::f32, "F32", 4},
    {TensorDtype::i64, "I64", 8},
    {TensorDtype::u64, "U64", 8},
    {TensorDtype::f64, "F64", 8},
}};

constexpr std::array<TensorDtype, kDtypes.size()> make_dtype_list() {
  std::array<TensorDtype, kDtypes.size()> out{};
  for (std::size_t i = 0; i < kDtypes.size(); ++i) out[i] = kDtypes[i].dtype;
  return out;
}

constexpr auto kDtypeList = make_dtype_list();

// info() indexes the table by the enum's value.
static_assert([] {
  for (std::size_t i = 0; i < kDtypes.size(); ++i)
    if (static_cast<std::size_t>(kDtypes[i].dtype) != i) return false;
  return true;
}());

const DtypeInfo& info(TensorDtype dtype) {
  return kDtypes.at(static_cast<std::size_t>(dtype));
}

}  // namespace

std::string_view dtype_name(TensorDtype dtype) {
  return info(dtype).name;
}

std::size_t dtype_size(TensorDtype dtype) {
  return info(dtype).size;
}

std::optional<TensorDtype> dtype_from_name(std::string_view name) {
  for (const DtypeInfo& d : kDtypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

std::span<const TensorDtype> all_dtypes() {
  return kDtypeList;
}

}  // namespace lt::ckpt
