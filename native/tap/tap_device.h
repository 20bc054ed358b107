// A TAP file descriptor exposed to JS: uv_poll readable bursts delivered as one callback each,
// batched writes, a bounded native queue for EAGAIN, counters. All on the loop thread.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <set>
#include <vector>

#include "tap_open.h"

namespace chimney {

class TapDevice;

// Open devices and poll handles still closing, per environment (main thread or worker). At
// environment teardown an async cleanup hook closes what JS left open and keeps the addon loaded
// until every uv_close callback has run: the callbacks are code in this shared object, and a worker
// unloads it right after teardown.
struct Drain {
  std::set<TapDevice*> live;
  napi_async_cleanup_hook_handle hook = nullptr;
  int pending = 0;        // poll handles whose uv_close callback has not run yet
  bool draining = false;  // the cleanup hook has started
  struct AddonData* owner = nullptr;
};

struct AddonData {
  Napi::FunctionReference tapConstructor;
  Drain* drain = nullptr;  // cleared when the drain finishes first
  ~AddonData();
};

// Runs at environment teardown: closes live devices, finishes once no close is pending.
void OnEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg);

// Counters live in a Float64Array shared with JS, so reading them costs no native call.
// Byte counts are frame bytes (vnet header excluded).
enum Counter {
  kFramesIn,
  kBytesIn,
  kFramesOut,     // written to the fd
  kBytesOut,
  kDropsOut,      // not written: queue full, write error, closed
  kBursts,        // readable events that delivered at least one frame
  kBurstCapHits,  // bursts cut short by the frame/byte cap (backlog indicator)
  kMaxBurst,      // most frames delivered in one callback
  kEagainWrites,  // writes that hit EAGAIN (frame queued)
  kWriteErrors,   // writes that failed otherwise (frame dropped)
  kReadErrors,
  kQueued,        // frames waiting in the native queue now
  kCounterCount
};
extern const char* const kCounterNames[kCounterCount];

class TapDevice : public Napi::ObjectWrap<TapDevice> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Create(Napi::Env env, const TapOpenResult& opened);

  explicit TapDevice(const Napi::CallbackInfo& info);
  ~TapDevice() override;

  // Closes without calling into JS (finalizer and environment teardown).
  void CloseQuietly();
  Drain* drain_ = nullptr;      // cleared when the drain has finished (all devices closed)
  bool countersValid_ = true;   // false once the environment frees the shared counter memory

  // Per burst: at most this many frames, and reading stops once less than one slot of room is
  // left in the 1 MiB burst area, so one busy TAP cannot starve the event loop.
  static constexpr uint32_t kMaxBurstFrames = 256;
  static constexpr size_t kBurstBytes = 1 << 20;
  // Room for one read: a 64 KiB GSO frame plus vnet header, Ethernet header and alignment slack.
  static constexpr size_t kSlotBytes = 65536 + 128;
  static constexpr size_t kQueueMaxFrames = 1024;
  static constexpr size_t kQueueMaxBytes = 4 << 20;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value TestFailWrites(const Napi::CallbackInfo& info);
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetVnetHdrSize(const Napi::CallbackInfo& info);
  Napi::Value GetOffloads(const Napi::CallbackInfo& info);
  Napi::Value GetQueued(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value GetCounterArray(const Napi::CallbackInfo& info);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  void HandleReadable();
  void HandleWritable();
  void ReportError(int err, const char* what);
  // Poll for readable while started, writable while the queue is non-empty; keeps the JS object
  // alive (strong reference) while either is active.
  void UpdatePoll();
  // 0 written, EAGAIN, or another errno.
  int WriteOne(const uint8_t* hdr, const uint8_t* data, size_t len);
  bool Enqueue(const uint8_t* hdr, const uint8_t* data, size_t len);
  void FlushQueue();
  void ReleaseResources();
  void InvokeJs(const Napi::FunctionReference& fn, const std::initializer_list<napi_value>& args);

  int fd_ = -1;
  std::string name_;
  int hdrSize_ = 0;
  unsigned offloads_ = 0;
  bool reading_ = false;
  bool closed_ = false;
  bool inCallback_ = false;  // close() from inside a callback defers freeing the async context
  bool pinned_ = false;    // holds a strong reference to its JS object
  bool unrefed_ = false;   // uv_unref requested by JS
  uv_poll_t* poll_ = nullptr;
  int pollEvents_ = 0;

  Napi::FunctionReference onBatch_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;

  // Receive memory, allocated once and shared with JS as typed arrays.
  Napi::Reference<Napi::Uint8Array> bufRef_;
  Napi::Reference<Napi::Uint32Array> offsetsRef_;
  Napi::Reference<Napi::Uint32Array> lengthsRef_;
  uint8_t* buf_ = nullptr;
  size_t bufCap_ = 0;
  uint32_t* offsets_ = nullptr;
  uint32_t* lengths_ = nullptr;

  std::deque<std::vector<uint8_t>> queue_;  // vnet header (if any) + frame, in send order
  size_t queuedBytes_ = 0;
  uint8_t zeroHdr_[kVnetHdrSize] = {};

  uint32_t failWrites_ = 0;  // test hook: pretend the next N writes fail with failErrno_
  int failErrno_ = 0;
  int lastWriteErrno_ = 0;
  Napi::Reference<Napi::Float64Array> countersRef_;
  double* c_ = nullptr;
};

}  // namespace chimney
