#include "tap_device.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

namespace chimney {

void MaybeFinishDrain(Drain* d);

const char* const kCounterNames[kCounterCount] = {
    "framesIn", "bytesIn", "framesOut", "bytesOut", "dropsOut", "bursts",
    "burstCapHits", "maxBurst", "eagainWrites", "writeErrors", "readErrors", "queued"};

namespace {

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// The IP header is the first thing the stack parses word-wise (checksums over Uint32Array), so
// frames start where (vnet header + 14-byte Ethernet header) ends 8-byte aligned.
size_t AlignedStart(size_t pos, size_t hdrSize) {
  size_t ip = pos + hdrSize + 14;
  return pos + ((8 - (ip & 7)) & 7);
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, ErrnoCode(err)));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}

}  // namespace

void MaybeFinishDrain(Drain* d) {
  if (!d->draining || d->pending > 0) return;
  for (TapDevice* dev : d->live) dev->drain_ = nullptr;
  if (d->owner) d->owner->drain = nullptr;
  napi_remove_async_cleanup_hook(d->hook);
  delete d;
}

void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) {
  auto* d = static_cast<Drain*>(arg);
  d->draining = true;
  std::vector<TapDevice*> open(d->live.begin(), d->live.end());
  for (TapDevice* dev : open) dev->CloseQuietly();
  MaybeFinishDrain(d);
}

AddonData::~AddonData() {
  if (!drain) return;
  drain->owner = nullptr;
  for (TapDevice* d : drain->live) {
    d->countersValid_ = false;  // first: the shared counter memory may already be gone
    d->CloseQuietly();
  }
}

Napi::Function TapDevice::Define(Napi::Env env) {
  return DefineClass(
      env, "TapDevice",
      {
          InstanceMethod<&TapDevice::Start>("start"),
          InstanceMethod<&TapDevice::Stop>("stop"),
          InstanceMethod<&TapDevice::Write>("write"),
          InstanceMethod<&TapDevice::Close>("close"),
          InstanceMethod<&TapDevice::Counters>("counters"),
          InstanceMethod<&TapDevice::Ref>("ref"),
          InstanceMethod<&TapDevice::Unref>("unref"),
          InstanceMethod<&TapDevice::TestFailWrites>("_testFailWrites"),
          InstanceAccessor<&TapDevice::GetName>("name"),
          InstanceAccessor<&TapDevice::GetVnetHdrSize>("vnetHdrSize"),
          InstanceAccessor<&TapDevice::GetOffloads>("offloads"),
          InstanceAccessor<&TapDevice::GetQueued>("queued"),
          InstanceAccessor<&TapDevice::GetClosed>("closed"),
          InstanceAccessor<&TapDevice::GetCounterArray>("counterArray"),
      });
}

Napi::Object TapDevice::Create(Napi::Env env, const TapOpenResult& opened) {
  // The constructor only accepts this External, so JS cannot build a device without openTap().
  TapOpenResult copy = opened;
  auto ext = Napi::External<TapOpenResult>::New(env, &copy);
  return Data(env)->tapConstructor.New({ext});
}

TapDevice::TapDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TapDevice>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) {
    Napi::TypeError::New(env, "TapDevice cannot be constructed directly: use openTap()")
        .ThrowAsJavaScriptException();
    closed_ = true;
    return;
  }
  const TapOpenResult* opened = info[0].As<Napi::External<TapOpenResult>>().Data();
  fd_ = opened->fd;
  name_ = opened->name;
  hdrSize_ = opened->vnetHdrSize;
  offloads_ = opened->offloads;

  bufCap_ = kBurstBytes + kSlotBytes;
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bufCap_);
  Napi::Uint8Array buf = Napi::Uint8Array::New(env, bufCap_, ab, 0);
  buf_ = static_cast<uint8_t*>(ab.Data());
  bufRef_ = Napi::Persistent(buf);
  Napi::Uint32Array offsets = Napi::Uint32Array::New(env, kMaxBurstFrames);
  Napi::Uint32Array lengths = Napi::Uint32Array::New(env, kMaxBurstFrames);
  offsets_ = offsets.Data();
  lengths_ = lengths.Data();
  offsetsRef_ = Napi::Persistent(offsets);
  lengthsRef_ = Napi::Persistent(lengths);
  Napi::Float64Array counters = Napi::Float64Array::New(env, kCounterCount);
  c_ = counters.Data();
  countersRef_ = Napi::Persistent(counters);

  drain_ = Data(env)->drain;
  if (drain_) drain_->live.insert(this);
}

TapDevice::~TapDevice() {
  CloseQuietly();
  if (drain_) drain_->live.erase(this);
}

void TapDevice::CloseQuietly() {
  if (closed_) return;
  closed_ = true;
  reading_ = false;
  if (poll_) {
    uv_poll_stop(poll_);
    // The handle outlives this object until libuv is done with it; its close callback frees it
    // and tells the drain (if any) that one close less is pending.
    poll_->data = drain_;
    if (drain_) drain_->pending++;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) {
      auto* d = static_cast<Drain*>(h->data);
      delete reinterpret_cast<uv_poll_t*>(h);
      if (d) {
        d->pending--;
        MaybeFinishDrain(d);
      }
    });
    poll_ = nullptr;
  }
  if (countersValid_) {  // else the environment is going away and the shared counters with it
    c_[kDropsOut] += queue_.size();
    c_[kQueued] = 0;
  }
  queue_.clear();
  queuedBytes_ = 0;
  if (fd_ >= 0) {
    close(fd_);  // safe: uv_poll_stop removed the fd from epoll first
    fd_ = -1;
  }
}

void TapDevice::ReleaseResources() {
  CloseQuietly();
  if (pinned_) {
    pinned_ = false;
    ObjectWrap::Unref();
  }
  onBatch_.Reset();
  onError_.Reset();
  if (!inCallback_) asyncContext_.reset();
}

void TapDevice::InvokeJs(const Napi::FunctionReference& fn, const std::initializer_list<napi_value>& args) {
  Napi::Env env = Env();
  inCallback_ = true;
  // napi_make_callback needs an object receiver; the device itself is the natural one.
  fn.MakeCallback(Value(), args, *asyncContext_);
  inCallback_ = false;
  if (closed_) asyncContext_.reset();
  if (env.IsExceptionPending()) {
    // Nobody up the stack can catch it here: make it an uncaughtException like any callback
    // from the event loop.
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

void TapDevice::UpdatePoll() {
  c_[kQueued] = static_cast<double>(queue_.size());
  if (closed_) return;
  int events = (reading_ ? UV_READABLE : 0) | (queue_.empty() ? 0 : UV_WRITABLE);
  if (events && !poll_) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(Env(), &loop);
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      return;
    }
    poll_->data = this;
    if (unrefed_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }
  if (poll_ && events != pollEvents_) {
    if (events) {
      uv_poll_start(poll_, events, OnPoll);
    } else {
      uv_poll_stop(poll_);
    }
    pollEvents_ = events;
  }
  bool active = events != 0;
  if (active && !pinned_) {
    pinned_ = true;
    ObjectWrap::Ref();
  } else if (!active && pinned_) {
    pinned_ = false;
    ObjectWrap::Unref();
  }
}

void TapDevice::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<TapDevice*>(handle->data);
  if (self->closed_) return;
  Napi::HandleScope scope(self->Env());
  if (status < 0) {
    self->ReportError(-status, "poll");
    return;
  }
  if ((events & UV_WRITABLE) && !self->closed_) self->HandleWritable();
  if ((events & UV_READABLE) && self->reading_ && !self->closed_) self->HandleReadable();
}

void TapDevice::HandleReadable() {
  size_t pos = 0;
  uint32_t count = 0;
  int err = 0;
  bool capped = true;
  while (count < kMaxBurstFrames) {
    size_t start = AlignedStart(pos, hdrSize_);
    if (start + kSlotBytes > bufCap_) break;
    ssize_t n = read(fd_, buf_ + start, kSlotBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      capped = false;
      break;
    }
    if (n == 0) {
      capped = false;
      break;
    }
    offsets_[count] = static_cast<uint32_t>(start);
    lengths_[count] = static_cast<uint32_t>(n);
    count++;
    pos = start + static_cast<size_t>(n);
    c_[kBytesIn] += n - hdrSize_;  // frame bytes, like bytesOut
  }
  if (count > 0) {
    c_[kFramesIn] += count;
    c_[kBursts]++;
    if (capped) c_[kBurstCapHits]++;
    if (count > c_[kMaxBurst]) c_[kMaxBurst] = count;
    if (!onBatch_.IsEmpty()) {
      InvokeJs(onBatch_, {bufRef_.Value(), offsetsRef_.Value(), lengthsRef_.Value(),
                          Napi::Number::New(Env(), count)});
    }
  }
  if (err && !closed_) ReportError(err, "read");
}

void TapDevice::ReportError(int err, const char* what) {
  c_[kReadErrors]++;
  // A detached or deleted TAP polls as permanently ready: stop reading or the loop would spin.
  reading_ = false;
  UpdatePoll();
  if (onError_.IsEmpty()) return;
  Napi::Error e = ErrnoError(Env(), err, std::string("TAP '") + name_ + "' " + what + " failed: " + strerror(err));
  InvokeJs(onError_, {e.Value()});
}

int TapDevice::WriteOne(const uint8_t* hdr, const uint8_t* data, size_t len) {
  if (failWrites_ > 0) {
    failWrites_--;
    return failErrno_;
  }
  struct iovec iov[2];
  int n = 0;
  if (hdrSize_) iov[n++] = {const_cast<uint8_t*>(hdr), static_cast<size_t>(hdrSize_)};
  iov[n++] = {const_cast<uint8_t*>(data), len};
  for (;;) {
    ssize_t w = writev(fd_, iov, n);
    if (w >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

bool TapDevice::Enqueue(const uint8_t* hdr, const uint8_t* data, size_t len) {
  size_t total = hdrSize_ + len;
  if (queue_.size() >= kQueueMaxFrames || queuedBytes_ + total > kQueueMaxBytes) return false;
  std::vector<uint8_t> copy(total);
  if (hdrSize_) memcpy(copy.data(), hdr, hdrSize_);
  memcpy(copy.data() + hdrSize_, data, len);
  queue_.push_back(std::move(copy));
  queuedBytes_ += total;
  return true;
}

void TapDevice::FlushQueue() {
  while (!queue_.empty()) {
    std::vector<uint8_t>& f = queue_.front();
    int rc = WriteOne(f.data(), f.data() + hdrSize_, f.size() - hdrSize_);
    if (rc == EAGAIN || rc == EWOULDBLOCK) {
      c_[kEagainWrites]++;
      break;
    }
    size_t len = f.size() - hdrSize_;
    if (rc == 0) {
      c_[kFramesOut]++;
      c_[kBytesOut] += len;
    } else {
      c_[kWriteErrors]++;
      c_[kDropsOut]++;
      lastWriteErrno_ = rc;
    }
    queuedBytes_ -= f.size();
    queue_.pop_front();
  }
}

void TapDevice::HandleWritable() {
  FlushQueue();
  UpdatePoll();
}

Napi::Value TapDevice::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) {
    ErrnoError(env, EBADF, "TAP '" + name_ + "' is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(env, "start(onBatch, onError?) needs a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  onBatch_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (info.Length() > 1 && info[1].IsFunction()) onError_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (!asyncContext_) asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "chimney_tap", Value());
  reading_ = true;
  UpdatePoll();
  return env.Undefined();
}

Napi::Value TapDevice::Stop(const Napi::CallbackInfo& info) {
  reading_ = false;
  UpdatePoll();
  return info.Env().Undefined();
}

// write(frames: Uint8Array[], headers?: Uint8Array) -> frames accepted (written now or queued).
// headers holds vnetHdrSize bytes per frame; without it vnet devices send a zero header.
Napi::Value TapDevice::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "write(frames: Uint8Array[], headers?: Uint8Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array frames = info[0].As<Napi::Array>();
  uint32_t n = frames.Length();
  const uint8_t* headers = nullptr;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "headers must be a Uint8Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array h = info[1].As<Napi::Uint8Array>();
    if (hdrSize_ == 0 || h.ElementLength() < static_cast<size_t>(n) * hdrSize_) {
      Napi::RangeError::New(env, hdrSize_ == 0 ? "this TAP has no vnet header"
                                               : "headers must hold vnetHdrSize bytes per frame")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    headers = h.Data();
  }
  if (closed_) {
    c_[kDropsOut] += n;
    return Napi::Number::New(env, 0);
  }
  uint32_t accepted = 0;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = frames[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, "frames must be Uint8Arrays").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array f = v.As<Napi::Uint8Array>();
    const uint8_t* hdr = headers ? headers + static_cast<size_t>(i) * hdrSize_ : zeroHdr_;
    size_t len = f.ElementLength();
    // Once something is queued, later frames queue behind it to keep send order.
    if (queue_.empty()) {
      int rc = WriteOne(hdr, f.Data(), len);
      if (rc == 0) {
        c_[kFramesOut]++;
        c_[kBytesOut] += len;
        accepted++;
        continue;
      }
      if (rc != EAGAIN && rc != EWOULDBLOCK) {
        c_[kWriteErrors]++;
        c_[kDropsOut]++;
        lastWriteErrno_ = rc;
        continue;
      }
      c_[kEagainWrites]++;
    }
    if (Enqueue(hdr, f.Data(), len)) {
      accepted++;
    } else {
      c_[kDropsOut]++;
    }
  }
  UpdatePoll();
  return Napi::Number::New(env, accepted);
}

Napi::Value TapDevice::Close(const Napi::CallbackInfo& info) {
  ReleaseResources();
  return info.Env().Undefined();
}

Napi::Value TapDevice::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (int i = 0; i < kCounterCount; i++) o.Set(kCounterNames[i], c_[i]);
  o.Set("lastWriteError", lastWriteErrno_ ? Napi::Value(Napi::String::New(env, ErrnoCode(lastWriteErrno_)))
                                          : env.Null());
  return o;
}

Napi::Value TapDevice::Ref(const Napi::CallbackInfo& info) {
  unrefed_ = false;
  if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value TapDevice::Unref(const Napi::CallbackInfo& info) {
  unrefed_ = true;
  if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

// _testFailWrites(n, code): the next n write attempts fail with errno `code` (e.g. EAGAIN = 11)
// without touching the fd. The kernel practically never returns EAGAIN on a TAP write, so this
// is how tests reach the queue path.
Napi::Value TapDevice::TestFailWrites(const Napi::CallbackInfo& info) {
  failWrites_ = info[0].As<Napi::Number>().Uint32Value();
  failErrno_ = info[1].As<Napi::Number>().Int32Value();
  return info.Env().Undefined();
}

Napi::Value TapDevice::GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
Napi::Value TapDevice::GetVnetHdrSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), hdrSize_); }
Napi::Value TapDevice::GetOffloads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), offloads_); }
Napi::Value TapDevice::GetQueued(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(queue_.size())); }
Napi::Value TapDevice::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_); }
Napi::Value TapDevice::GetCounterArray(const Napi::CallbackInfo& info) { return countersRef_.Value(); }

}  // namespace chimney
