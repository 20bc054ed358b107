/** Capture files: writing (pcap-writer), reading and decoding (pcap-reader), TCP flow verification (flow-analysis), time-sequence graphs (tsg). */
export * from './pcap-writer.js';
export * from './pcap-reader.js';
export * from './flow-analysis.js';
export * from './tsg.js';
export * from './handover-log.js';
