// Element types shared by every layer. The numeric values are part of the TS <-> native contract
// (lib/dtype.ts holds the same table): change both or neither.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tf {

enum class DType : int {
  float32 = 0,
  float16 = 1,
  bfloat16 = 2,
  int8 = 3,
  uint8 = 4,
  int32 = 5,
};
constexpr int kNumDTypes = 6;

inline bool dtype_valid(int d) { return d >= 0 && d < kNumDTypes; }
inline bool dtype_is_float(DType d) {
  return d == DType::float32 || d == DType::float16 || d == DType::bfloat16;
}
inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::float32: return 4;
    case DType::float16: return 2;
    case DType::bfloat16: return 2;
    case DType::int8: return 1;
    case DType::uint8: return 1;
    case DType::int32: return 4;
  }
  return 0;
}
const char* dtype_name(DType d);

}  // namespace tf
