// A pool of per-thread workspaces reused across calls (internal header).
//
// Kernels get their scratch memory from workspaces that the drivers size before the parallel
// region (kernels never allocate). Keeping the workspaces in a pool owned by the descriptor or
// model means an MD run allocates them once, in its first step, not every step. The pool is
// thread-safe: concurrent evaluations each take their own workspaces.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

namespace atomforge {

template <class W>
class WorkspacePool {
 public:
  WorkspacePool() = default;
  // Copies of an object holding a pool start with an empty pool of their own.
  WorkspacePool(const WorkspacePool&) {}
  WorkspacePool& operator=(const WorkspacePool&) { return *this; }

  /// n workspaces (reused ones first), returned to the pool when the lease ends.
  class Lease {
   public:
    Lease(WorkspacePool& pool, int n) : pool_(pool) {
      std::lock_guard<std::mutex> lock(pool_.mutex_);
      while (static_cast<int>(items_.size()) < n && !pool_.free_.empty()) {
        items_.push_back(std::move(pool_.free_.back()));
        pool_.free_.pop_back();
      }
      while (static_cast<int>(items_.size()) < n) items_.push_back(std::make_unique<W>());
    }
    ~Lease() {
      std::lock_guard<std::mutex> lock(pool_.mutex_);
      for (auto& w : items_) pool_.free_.push_back(std::move(w));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    W& operator[](int k) { return *items_[k]; }
    int size() const { return static_cast<int>(items_.size()); }

   private:
    WorkspacePool& pool_;
    std::vector<std::unique_ptr<W>> items_;
  };

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<W>> free_;
};

}  // namespace atomforge
