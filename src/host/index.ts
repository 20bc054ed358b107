/** The host stack: IPv4 + ARP + ICMP echo + TCP sockets over any Link, and the offload path to a chimney target. */
export { HostStack, type HostStackOptions, type HostStackStats, type HostDropReason, type ConnectOptions, type TcpTableRow } from './stack.js';
export { TcpSocket, type TcpSocketInfo, type TcpSocketOptions } from './socket.js';
export { TcpServer, type TcpServerOptions } from './server.js';
export { ArpCache, type ArpCacheOptions, type ArpTableRow, type ArpState } from './arp-cache.js';
export { TcpDemux, type DemuxEntry, type SegmentHandler } from './tcp-demux.js';
export { HostConnection, DiscardHandler, type ConnectionHost, type ConnectionObserver } from './host-connection.js';
export { socketError, type SocketError, type SocketErrorCode } from './errors.js';
export { OffloadManager, type OffloadPolicy, type OffloadManagerOptions, type OffloadStats } from './offload.js';
export { ChimneyLink, type ChimneyLinkOptions } from './chimney-link.js';
