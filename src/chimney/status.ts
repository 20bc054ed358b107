/**
 * Status codes of the chimney model (spec 1.7). Values are the NDIS ones where the public headers
 * give them; the three the documents name without a value get numbers from a range of our own
 * (0xE0231F00..), recorded in docs/ipc-protocol.md. Errors for malformed or out-of-order IPC
 * requests (never NDIS statuses) are in the same table so one field carries both.
 */
export const Status = {
  SUCCESS: 0x00000000,
  PENDING: 0x00000103,
  FAILURE: 0xc0000001,
  RESOURCES: 0xc000009a,
  INVALID_STATE: 0xc0000184,
  REQUEST_ABORTED: 0xc0000240,
  UPLOAD_IN_PROGRESS: 0xc0231001,
  OFFLOAD_TCP_ENTRIES: 0xc0231004,
  OFFLOAD_PATH_ENTRIES: 0xc0231005,
  OFFLOAD_NEIGHBOR_ENTRIES: 0xc0231006,
  OFFLOAD_IP_ADDRESS_ENTRIES: 0xc0231007,
  OFFLOAD_HW_ADDRESS_ENTRIES: 0xc0231008,
  OFFLOAD_VLAN_ENTRIES: 0xc0231009,
  OFFLOAD_TCP_XMIT_BUFFER: 0xc023100a,
  OFFLOAD_TCP_RCV_BUFFER: 0xc023100b,
  OFFLOAD_TCP_RCV_WINDOW: 0xc023100c,
  OFFLOAD_VLAN_MISMATCH: 0xc023100d,
  OFFLOAD_DATA_NOT_ACCEPTED: 0xc023100e,
  OFFLOAD_DATA_PARTIALLY_ACCEPTED: 0xc0231010,
  // Named by the documents without a value (spec section 9 item 2): our numbers.
  OFFLOAD_PARTIAL_SUCCESS: 0xe0231f01,
  OFFLOAD_PATH_MTU: 0xe0231f02,
  OFFLOAD_CONNECTION_REJECTED: 0xe0231f03,
  // IPC-level errors (not NDIS): the request was not understood or not valid now.
  IPC_MALFORMED: 0xe0231f10,
  IPC_UNKNOWN_CONTEXT: 0xe0231f11,
  IPC_INVALID_IN_STATE: 0xe0231f12,
  IPC_DUPLICATE_ID: 0xe0231f13,
  IPC_UNKNOWN_BUFFER: 0xe0231f14,
  IPC_LIMIT: 0xe0231f15,
} as const;

export type StatusName = keyof typeof Status;
export type StatusCode = (typeof Status)[StatusName];

const NAMES = new Map<number, StatusName>(Object.entries(Status).map(([k, v]) => [v, k as StatusName]));

export function statusName(code: number): string {
  return NAMES.get(code >>> 0) ?? `0x${(code >>> 0).toString(16).padStart(8, '0')}`;
}

export function isSuccess(code: number): boolean {
  return code === Status.SUCCESS;
}
