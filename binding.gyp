{
  "targets": [
    {
      "target_name": "chimney_tap",
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++1y", "-std=gnu++17"],
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/tap/addon.cc", "native/tap/tap_open.cc", "native/tap/tap_device.cc"]
        }, {
          # TAP is Linux-only; elsewhere the addon still builds (so `npm install` succeeds) and
          # openTap throws a clear error.
          "sources": ["native/tap/unsupported.cc"]
        }]
      ]
    }
  ]
}
