// Declarations only (see README.md): gloo's transport types as far as ProcessGroupGloo.hpp uses them.
#pragma once

namespace gloo {
namespace transport {
class Device {
 public:
  virtual ~Device();
};
class UnboundBuffer {
 public:
  virtual ~UnboundBuffer();
};
}  // namespace transport
}  // namespace gloo
