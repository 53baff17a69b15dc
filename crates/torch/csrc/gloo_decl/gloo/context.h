// Declarations only (see README.md): gloo::Context as far as ProcessGroupGloo.hpp uses it.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  virtual ~Context();
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo
