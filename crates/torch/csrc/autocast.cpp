// Mixed precision for embedrank-torch: libtorch's autocast with bfloat16 on a chosen device type.
// tch only exposes the deprecated CUDA switch (float16); this sets the dtype too. C linkage, no
// exceptions across the boundary.
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_type(int cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}  // namespace

// Turns bfloat16 autocast on or off for CPU (cuda = 0) or CUDA (cuda = 1) tensors. Returns the
// previous state (0/1), or -1 on error.
extern "C" int embedrank_autocast_bf16(int cuda, int enabled) {
  try {
    auto t = device_type(cuda);
    bool previous = at::autocast::is_autocast_enabled(t);
    if (enabled) {
      at::autocast::set_autocast_dtype(t, at::kBFloat16);
    }
    at::autocast::set_autocast_enabled(t, enabled != 0);
    return previous ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Whether autocast is on for the device type, and with which dtype (c10::ScalarType as int);
// -1 on error.
extern "C" int embedrank_autocast_state(int cuda, int* dtype) {
  try {
    auto t = device_type(cuda);
    *dtype = static_cast<int>(at::autocast::get_autocast_dtype(t));
    return at::autocast::is_autocast_enabled(t) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Enters / leaves an autocast region; leaving the outermost one clears the cast-weight cache.
extern "C" void embedrank_autocast_enter() { at::autocast::increment_nesting(); }
extern "C" void embedrank_autocast_exit() {
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
}
