// Opening a TAP device: /dev/net/tun, TUNSETIFF, vnet header and offload negotiation.
// Pure POSIX (no N-API) so the error mapping can be read and reasoned about on its own.
#pragma once

#include <string>

namespace chimney {

// virtio_net_hdr_v1 (virtio 1.0 layout, also what VIRTIO_NET_F_MRG_RXBUF uses): 10 bytes of
// flags/gso/csum fields plus a 16-bit num_buffers. See native-notes/tap.md for why 12 and not 10.
constexpr int kVnetHdrSize = 12;

struct TapOpenOptions {
  bool vnetHdr = false;
  unsigned offloads = 0;  // TUN_F_* bits wanted (only with vnetHdr)
  int mtu = 0;            // 0: leave the kernel default
  std::string devicePath = "/dev/net/tun";
};

struct TapOpenResult {
  int fd = -1;
  std::string name;        // actual name (the kernel fills in "%d" templates)
  int vnetHdrSize = 0;     // 0 without vnet header
  unsigned offloads = 0;   // TUN_F_* bits the kernel accepted
  bool vnetLe = false;     // TUNSETVNETLE succeeded: header fields are little-endian on any host
  // On failure fd == -1 and these describe the error.
  int err = 0;
  std::string code;        // 'ENOENT', 'EPERM', 'EBUSY', ...
  std::string message;     // cause + fix, for humans
};

TapOpenResult OpenTap(const std::string& name, const TapOpenOptions& opts);

// Name of an errno value as Node spells error codes ('EAGAIN', ...); "E<number>" if unknown.
std::string ErrnoCode(int err);

}  // namespace chimney
