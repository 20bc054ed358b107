// Non-Linux build: TAP devices with IFF_VNET_HDR are a Linux interface. The module loads so that
// `npm install` succeeds everywhere; openTap explains why it cannot work here.
#include <napi.h>

namespace {

Napi::Value OpenTapJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Error e = Napi::Error::New(env, "TAP links need Linux (/dev/net/tun); use the raw or sim link here");
  e.Set("code", Napi::String::New(env, "ENOTSUP"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openTap", Napi::Function::New(env, OpenTapJs, "openTap"));
  exports.Set("constants", Napi::Object::New(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(chimney_tap, Init)
