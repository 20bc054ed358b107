/** Sizes and counts the codec enforces (docs/ipc-protocol.md, "Limits"). */

/** Largest frame, counted as the bytes after the length field (type + body). */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Most elements in any one array (blocks per list, buffers, entries, ids). */
export const MAX_LIST = 65535;
/** A block tree has at most three layers: neighbor, path, TCP (spec 1.1). */
export const MAX_BLOCK_DEPTH = 3;
/** Largest byte array field; a frame cannot hold more anyway. */
export const MAX_DATA_BYTES = MAX_FRAME_BYTES;
export const MAX_SOFTWARE_BYTES = 256;
export const MAX_PROBLEM_BYTES = 4096;
