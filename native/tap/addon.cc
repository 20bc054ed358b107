// chimney_tap: module entry. openTap(name, opts) -> TapDevice, plus the constants JS needs.
#include <linux/if_tun.h>
#include <napi.h>

#include "tap_device.h"
#include "tap_open.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace chimney {
namespace {

// openTap(name: string, opts?: {vnetHdr?, offloads?, mtu?, devicePath?}) -> TapDevice
Napi::Value OpenTapJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "openTap(name: string, opts?: object)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  TapOpenOptions opts;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("vnetHdr")) opts.vnetHdr = o.Get("vnetHdr").ToBoolean().Value();
    Napi::Value off = o.Get("offloads");
    if (off.IsNumber()) opts.offloads = off.As<Napi::Number>().Uint32Value();
    Napi::Value mtu = o.Get("mtu");
    if (mtu.IsNumber()) opts.mtu = mtu.As<Napi::Number>().Int32Value();
    Napi::Value path = o.Get("devicePath");
    if (path.IsString()) opts.devicePath = path.As<Napi::String>().Utf8Value();
  }
  TapOpenResult r = OpenTap(info[0].As<Napi::String>().Utf8Value(), opts);
  if (r.fd < 0) {
    Napi::Error e = Napi::Error::New(env, r.message);
    e.Set("code", Napi::String::New(env, r.code));
    e.Set("errno", Napi::Number::New(env, -r.err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object dev = TapDevice::Create(env, r);
  dev.Set("vnetLittleEndian", Napi::Boolean::New(env, r.vnetLe));
  return dev;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->drain = new Drain();
  data->drain->owner = data;
  napi_add_async_cleanup_hook(env, OnEnvCleanup, data->drain, &data->drain->hook);
  env.SetInstanceData<AddonData>(data);
  Napi::Function ctor = TapDevice::Define(env);
  data->tapConstructor = Napi::Persistent(ctor);

  exports.Set("openTap", Napi::Function::New(env, OpenTapJs, "openTap"));
  exports.Set("TapDevice", ctor);
  Napi::Object c = Napi::Object::New(env);
  c.Set("TUN_F_CSUM", TUN_F_CSUM);
  c.Set("TUN_F_TSO4", TUN_F_TSO4);
  c.Set("TUN_F_TSO6", TUN_F_TSO6);
  c.Set("TUN_F_TSO_ECN", TUN_F_TSO_ECN);
  c.Set("TUN_F_UFO", TUN_F_UFO);
  c.Set("TUN_F_USO4", TUN_F_USO4);
  c.Set("TUN_F_USO6", TUN_F_USO6);
  c.Set("VNET_HDR_SIZE", kVnetHdrSize);
  c.Set("MAX_BURST_FRAMES", TapDevice::kMaxBurstFrames);
  c.Set("BURST_BYTES", static_cast<double>(TapDevice::kBurstBytes));
  c.Set("SLOT_BYTES", static_cast<double>(TapDevice::kSlotBytes));
  c.Set("QUEUE_MAX_FRAMES", static_cast<double>(TapDevice::kQueueMaxFrames));
  c.Set("QUEUE_MAX_BYTES", static_cast<double>(TapDevice::kQueueMaxBytes));
  exports.Set("constants", c);
  return exports;
}

}  // namespace
}  // namespace chimney

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return chimney::Init(env, exports); }

NODE_API_MODULE(chimney_tap, InitModule)
