// Data-parallel collectives for embedrank-torch: libtorch's c10d (TCPStore rendezvous + the Gloo
// process group) behind a small C ABI. tch has no binding for torch.distributed; this is the same
// engine PyTorch's `torch.distributed` uses, from the libraries we already link.
//
// Every entry point catches every C++ exception and returns it as a malloc'd message (freed with
// embedrank_dist_free_message); NULL means success. Tensors cross as `at::Tensor*` (tch's C_tensor).
// Each collective waits on its Work with the group's timeout, so a dead peer is an error, not a hang.
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
  int rank;
  int world;
};

char* message(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

// Runs `f`; any exception becomes the returned message (the c10 backtrace left out).
template <typename F>
char* guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return message(e.what());
  } catch (...) {
    return message("unknown C++ exception");
  }
}

// Waits for `work`; a failed or timed-out collective throws (with the peer's failure as cause).
void finish(const c10::intrusive_ptr<c10d::Work>& work, const Group& g, const char* what) {
  if (!work->wait(g.timeout)) {
    throw std::runtime_error(std::string(what) + " did not complete within " +
                             std::to_string(g.timeout.count()) + " ms");
  }
}

bool loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// One contiguous tensor holding `tensors` back to back (all of one dtype and device).
at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) {
    TORCH_CHECK(t.scalar_type() == tensors[0].scalar_type(), "a bucket mixes dtypes (",
                tensors[0].scalar_type(), " and ", t.scalar_type(), ")");
    TORCH_CHECK(t.device() == tensors[0].device(), "a bucket mixes devices (", tensors[0].device(),
                " and ", t.device(), ")");
    flat.push_back(t.detach().reshape({-1}));
  }
  return at::cat(flat).contiguous();
}

// Copies `flat` back into `tensors`, in order.
void unflatten(const at::Tensor& flat, std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& t : tensors) {
    auto n = t.numel();
    t.detach().copy_(flat.narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
}

std::vector<at::Tensor> list(at::Tensor** tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TORCH_CHECK(tensors[i] != nullptr && tensors[i]->defined(), "tensor ", i, " is undefined");
    out.push_back(*tensors[i]);
  }
  return out;
}

}  // namespace

extern "C" {

// Frees a message returned by any function below.
void embedrank_dist_free_message(char* m) { std::free(m); }

// Joins (rank 0: creates) the TCPStore at host:port and builds the Gloo group of `world` ranks on
// it. Returns the group, or NULL with *error set. `timeout_ms` bounds the rendezvous and every
// collective. The Gloo device binds to GLOO_SOCKET_IFNAME when set, to loopback when `host` is a
// loopback address (all ranks on this machine), and otherwise to this host's resolved address.
void* embedrank_dist_new_gloo(const char* host, int port, int rank, int world, int64_t timeout_ms,
                              char** error) {
  Group* group = nullptr;
  *error = guarded([&] {
    TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " is not in [0, ", world,
                ")");
    TORCH_CHECK(port > 0 && port < 65536, "port ", port, " is not in 1..65535");
    std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = true;
    opts.timeout = timeout;
    std::string h(host);
    auto store = c10::make_intrusive<c10d::TCPStore>(h, opts);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (loopback(h)) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    group = new Group{store, backend, timeout, rank, world};
  });
  return group;
}

// Frees a group made by embedrank_dist_new_gloo (NULL is allowed).
void embedrank_dist_free(void* group) {
  try {
    delete static_cast<Group*>(group);
  } catch (...) {
  }
}

// Sums the `n` tensors over all ranks, in place (one bucket: flattened into one buffer, reduced
// once, copied back). All tensors must share a dtype and device.
char* embedrank_dist_allreduce_sum(void* group, at::Tensor** tensors, size_t n) {
  return guarded([&] {
    auto& g = *static_cast<Group*>(group);
    if (n == 0) {
      return;
    }
    auto ts = list(tensors, n);
    std::vector<at::Tensor> bucket{flatten(ts)};
    finish(g.backend->allreduce(bucket), g, "allreduce");
    unflatten(bucket[0], ts);
  });
}

// Gathers `input` (same shape on every rank) from all ranks into `outputs[0..world)` (pre-made
// tensors of input's shape, dtype and device), in rank order.
char* embedrank_dist_allgather(void* group, at::Tensor* input, at::Tensor** outputs, size_t n) {
  return guarded([&] {
    auto& g = *static_cast<Group*>(group);
    TORCH_CHECK(n == static_cast<size_t>(g.world), "allgather needs ", g.world,
                " output tensors, got ", n);
    TORCH_CHECK(input != nullptr && input->defined(), "allgather input is undefined");
    std::vector<at::Tensor> in{input->detach().contiguous()};
    std::vector<std::vector<at::Tensor>> out(1);
    for (size_t i = 0; i < n; ++i) {
      TORCH_CHECK(outputs[i] != nullptr && outputs[i]->defined(), "output ", i, " is undefined");
      TORCH_CHECK(outputs[i]->sizes() == in[0].sizes() && outputs[i]->is_contiguous(), "output ",
                  i, " has shape ", outputs[i]->sizes(), ", the input ", in[0].sizes());
      out[0].push_back(outputs[i]->detach());
    }
    finish(g.backend->allgather(out, in), g, "allgather");
  });
}

// Overwrites the `n` tensors on every rank with rank `root`'s (one bucket, as allreduce).
char* embedrank_dist_broadcast(void* group, at::Tensor** tensors, size_t n, int root) {
  return guarded([&] {
    auto& g = *static_cast<Group*>(group);
    TORCH_CHECK(root >= 0 && root < g.world, "broadcast root ", root, " is not a rank");
    if (n == 0) {
      return;
    }
    auto ts = list(tensors, n);
    std::vector<at::Tensor> bucket{flatten(ts)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    finish(g.backend->broadcast(bucket, opts), g, "broadcast");
    unflatten(bucket[0], ts);
  });
}

// Returns when every rank has reached it (or the timeout has passed: an error).
char* embedrank_dist_barrier(void* group) {
  return guarded([&] {
    auto& g = *static_cast<Group*>(group);
    c10d::BarrierOptions opts;
    opts.timeout = g.timeout;
    finish(g.backend->barrier(opts), g, "barrier");
  });
}

}  // extern "C"
