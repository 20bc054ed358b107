/**
 * Initiate-offload tree traversal (spec 1.8, 2.1; R36-R42): depth-first then breadth, roles by
 * slot (placeholder / linker / new), statuses from immediate dependents, dependents of a failed
 * block not attempted, and nothing further after a failed root. The objects themselves are
 * created by the caller's `offload` callback, so this stays a pure function of the tree.
 */
import type { Block, BlockResult, Layer } from './state.js';
import { Status } from './status.js';

const NEXT_LAYER: Record<Layer, Layer | undefined> = { neighbor: 'path', path: 'tcp', tcp: undefined };

export interface InitiateCallbacks {
  /** Offload a new object under `parentCtx` (undefined for a neighbor or under a placeholder). */
  offload(block: Extract<Block, { role: 'new' }>, parentCtx: number | undefined): { status: number; ctx?: number };
  /** Whether `ctx` names a live object of `layer` (a linker's reference). */
  exists(ctx: number, layer: Layer): boolean;
}

export function processInitiateTree(blocks: readonly Block[], cb: InitiateCallbacks): BlockResult[] {
  const results: BlockResult[] = [];
  let stop = false;

  const failAll = (b: Block): void => {
    results.push({ blockId: b.blockId, status: Status.FAILURE });
    for (const c of b.children) failAll(c);
  };

  /** Returns true when the block's object is (now) offloaded. */
  const visit = (b: Block, parentCtx: number | undefined, expectedLayer: Layer | undefined): boolean => {
    if (stop) {
      failAll(b);
      return false;
    }
    const index = results.length;
    results.push({ blockId: b.blockId, status: Status.FAILURE }); // placeholder, filled below (pre-order)
    const wrongLayer = expectedLayer !== undefined && b.layer !== expectedLayer;
    if (b.role === 'placeholder') {
      for (const c of b.children) visit(c, undefined, NEXT_LAYER[b.layer]);
      results[index] = { blockId: b.blockId, status: wrongLayer ? Status.FAILURE : Status.SUCCESS };
      return !wrongLayer;
    }
    if (b.role === 'linker') {
      if (wrongLayer || !cb.exists(b.ctx, b.layer)) {
        for (const c of b.children) failAll(c);
        return false;
      }
      const done = b.children.map((c) => visit(c, b.ctx, NEXT_LAYER[b.layer]));
      const ok = done.filter(Boolean).length;
      const status = done.length === 0 || ok === done.length ? Status.SUCCESS : ok > 0 ? Status.OFFLOAD_PARTIAL_SUCCESS : Status.FAILURE;
      results[index] = { blockId: b.blockId, status };
      return true;
    }
    const r = wrongLayer ? { status: Status.FAILURE } : cb.offload(b, parentCtx);
    if (r.status !== Status.SUCCESS || r.ctx === undefined) {
      results[index] = { blockId: b.blockId, status: r.status === Status.SUCCESS ? Status.FAILURE : r.status };
      for (const c of b.children) failAll(c);
      return false;
    }
    const done = b.children.map((c) => visit(c, r.ctx, NEXT_LAYER[b.layer]));
    const all = done.every(Boolean);
    results[index] = { blockId: b.blockId, status: all ? Status.SUCCESS : Status.OFFLOAD_PARTIAL_SUCCESS, ctx: r.ctx };
    return true;
  };

  blocks.forEach((b, i) => {
    const ok = visit(b, undefined, undefined);
    // R42: when the root block cannot be offloaded, nothing further is offloaded.
    if (i === 0 && !ok && b.role !== 'placeholder') stop = true;
  });
  return results;
}
