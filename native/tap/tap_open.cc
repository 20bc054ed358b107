#include "tap_open.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <initializer_list>

// Older userspace headers lack the UDP segmentation offload bits (kernel 6.2+).
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace chimney {

std::string ErrnoCode(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EAGAIN: return "EAGAIN";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EBADFD: return "EBADFD";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EMSGSIZE: return "EMSGSIZE";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOTTY: return "ENOTTY";
    default: return "E" + std::to_string(err);
  }
}

namespace {

TapOpenResult Fail(TapOpenResult r, int err, std::string message) {
  if (r.fd >= 0) close(r.fd);
  r.fd = -1;
  r.err = err;
  r.code = ErrnoCode(err);
  r.message = std::move(message) + " (" + strerror(err) + ")";
  return r;
}

bool DeviceExists(const char* name) { return if_nametoindex(name) != 0; }

// Tries the wanted offloads, then only the bits this code knows, then drops optional bits one by
// one (newest kernel features first) until the kernel accepts. TSO/UFO/USO need TUN_F_CSUM, so
// CSUM goes last.
unsigned NegotiateOffloads(int fd, unsigned wanted) {
  unsigned bits = wanted;
  if (ioctl(fd, TUNSETOFFLOAD, bits) == 0) return bits;
  bits &= TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6;
  if (bits != wanted && ioctl(fd, TUNSETOFFLOAD, bits) == 0) return bits;
  for (unsigned drop : {TUN_F_USO6, TUN_F_USO4, TUN_F_UFO, TUN_F_TSO_ECN, TUN_F_TSO6, TUN_F_TSO4,
                        TUN_F_CSUM}) {
    if (!(bits & drop)) continue;
    bits &= ~drop;
    if (ioctl(fd, TUNSETOFFLOAD, bits) == 0) return bits;
  }
  ioctl(fd, TUNSETOFFLOAD, 0u);
  return 0;
}

int SetMtu(const char* name, int mtu) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_mtu = mtu;
  int rc = ioctl(s, SIOCSIFMTU, &ifr) == 0 ? 0 : errno;
  close(s);
  return rc;
}

}  // namespace

TapOpenResult OpenTap(const std::string& name, const TapOpenOptions& opts) {
  TapOpenResult r;
  if (name.size() >= IFNAMSIZ) {
    return Fail(r, EINVAL, "TAP name '" + name + "' is too long: interface names have at most " +
                               std::to_string(IFNAMSIZ - 1) + " characters");
  }
  unsigned wanted = opts.offloads;
  if (wanted && !opts.vnetHdr) {
    return Fail(r, EINVAL,
                "offloads need the vnet header (vnetHdr: true): without it the kernel cannot tell "
                "us about partial checksums or segmentation");
  }
  // Segmentation offloads imply checksum offload (the kernel rejects TSO without CSUM).
  if (wanted) wanted |= TUN_F_CSUM;

  r.fd = open(opts.devicePath.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (r.fd < 0) {
    int e = errno;
    if (e == ENOENT) {
      return Fail(r, e, opts.devicePath + " does not exist: load the tun driver (modprobe tun); "
                        "in a container pass --device /dev/net/tun (or mknod /dev/net/tun c 10 200)");
    }
    if (e == ENODEV || e == ENXIO) {
      return Fail(r, ENODEV, opts.devicePath + " exists but the tun driver is not loaded: "
                             "modprobe tun (kernel option CONFIG_TUN)");
    }
    if (e == EACCES || e == EPERM) {
      return Fail(r, e, "no permission to open " + opts.devicePath +
                            ": needs CAP_NET_ADMIN: run as root or setcap cap_net_admin+ep on node "
                            "(and check the device node's mode)");
    }
    return Fail(r, e, "cannot open " + opts.devicePath);
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (opts.vnetHdr ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(r.fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES) {
      return Fail(r, e, "creating TAP '" + name + "' needs CAP_NET_ADMIN: run as root, or setcap "
                        "cap_net_admin+ep on node, or pre-create it for your user: ip tuntap add dev " +
                        name + " mode tap user $USER");
    }
    if (e == EBUSY) {
      return Fail(r, e, "TAP '" + name + "' is already attached to another open file (another "
                        "process or link holds it): close that one or choose another name");
    }
    if (e == EINVAL && !name.empty() && name.find('%') == std::string::npos &&
        DeviceExists(name.c_str())) {
      return Fail(r, EEXIST, "a network device named '" + name + "' exists and is not a TAP "
                             "device: choose another name");
    }
    if (e == EINVAL) {
      return Fail(r, e, "invalid TAP name '" + name + "': at most " + std::to_string(IFNAMSIZ - 1) +
                            " characters, no '/', ':' or whitespace; '%d' lets the kernel number it");
    }
    return Fail(r, e, "TUNSETIFF for '" + name + "' failed");
  }
  r.name = ifr.ifr_name;

  if (opts.vnetHdr) {
    int sz = kVnetHdrSize;
    if (ioctl(r.fd, TUNSETVNETHDRSZ, &sz) < 0) {
      return Fail(r, errno, "TUNSETVNETHDRSZ(" + std::to_string(sz) + ") failed on '" + r.name + "'");
    }
    r.vnetHdrSize = sz;
    int le = 1;
    r.vnetLe = ioctl(r.fd, TUNSETVNETLE, &le) == 0;
    r.offloads = NegotiateOffloads(r.fd, wanted);
  }

  if (opts.mtu > 0) {
    int e = SetMtu(r.name.c_str(), opts.mtu);
    if (e) return Fail(r, e, "setting MTU " + std::to_string(opts.mtu) + " on '" + r.name + "' failed");
  }
  return r;
}

}  // namespace chimney
