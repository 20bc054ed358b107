import { describe, expect, it } from 'vitest';
import { processInitiateTree, type InitiateCallbacks } from '../../src/chimney/initiate-tree.js';
import type { Block, Layer } from '../../src/chimney/state.js';
import { Status } from '../../src/chimney/status.js';

/** A new-offload block whose state is irrelevant here (the callback decides the outcome). */
function nb(id: number, layer: Layer, children: Block[] = []): Block {
  return { blockId: id, role: 'new', layer, handle: id, state: {} as never, children } as Block;
}

function harness(fail: Record<number, number> = {}): { cb: InitiateCallbacks; order: number[]; parents: Map<number, number | undefined> } {
  const order: number[] = [];
  const parents = new Map<number, number | undefined>();
  let next = 100;
  const live = new Map<number, Layer>([[7, 'neighbor'], [8, 'path']]);
  const cb: InitiateCallbacks = {
    offload(b, parent) {
      order.push(b.blockId);
      parents.set(b.blockId, parent);
      if (fail[b.blockId] !== undefined) return { status: fail[b.blockId] };
      const ctx = next++;
      live.set(ctx, b.layer);
      return { status: Status.SUCCESS, ctx };
    },
    exists: (ctx, layer) => live.get(ctx) === layer,
  };
  return { cb, order, parents };
}

describe('initiate tree traversal', () => {
  it('R36: blocks are processed depth-first then breadth (N1 P1 T1 T2 P2 T3 N2 P3 T4 T5)', () => {
    const tree = [
      nb(1, 'neighbor', [nb(2, 'path', [nb(3, 'tcp'), nb(4, 'tcp')]), nb(5, 'path', [nb(6, 'tcp')])]),
      nb(7, 'neighbor', [nb(8, 'path', [nb(9, 'tcp'), nb(10, 'tcp')])]),
    ];
    const h = harness();
    const res = processInitiateTree(tree, h.cb);
    expect(h.order).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(res.map((r) => r.blockId)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(res.every((r) => r.status === Status.SUCCESS && r.ctx !== undefined)).toBe(true);
    // Each object is linked to the object of its parent block.
    expect(h.parents.get(2)).toBe(res[0].ctx);
    expect(h.parents.get(3)).toBe(res[1].ctx);
  });

  it('R39/R41: spec 2.1 worked example: T2 fails (resources), P2 fails, T3 not attempted', () => {
    const tree = [nb(1, 'neighbor', [nb(2, 'path', [nb(3, 'tcp'), nb(4, 'tcp')]), nb(5, 'path', [nb(6, 'tcp')])])];
    const h = harness({ 4: Status.RESOURCES, 5: Status.FAILURE });
    const res = processInitiateTree(tree, h.cb);
    const st = Object.fromEntries(res.map((r) => [r.blockId, r.status]));
    expect(st).toEqual({ 1: Status.OFFLOAD_PARTIAL_SUCCESS, 2: Status.OFFLOAD_PARTIAL_SUCCESS, 3: Status.SUCCESS, 4: Status.RESOURCES, 5: Status.FAILURE, 6: Status.FAILURE });
    expect(h.order).not.toContain(6);
  });

  it('R38: a failed block gets no context; an offloaded one does', () => {
    const res = processInitiateTree([nb(1, 'neighbor', [nb(2, 'path')])], harness({ 2: Status.OFFLOAD_PATH_ENTRIES }).cb);
    expect(res[0].ctx).toBeDefined();
    expect(res[1]).toEqual({ blockId: 2, status: Status.OFFLOAD_PATH_ENTRIES });
  });

  it('R42: when the root fails nothing further is offloaded and every remaining block is FAILURE', () => {
    const tree = [nb(1, 'neighbor', [nb(2, 'path')]), nb(3, 'neighbor')];
    const h = harness({ 1: Status.OFFLOAD_NEIGHBOR_ENTRIES });
    const res = processInitiateTree(tree, h.cb);
    expect(h.order).toEqual([1]);
    expect(res).toEqual([
      { blockId: 1, status: Status.OFFLOAD_NEIGHBOR_ENTRIES },
      { blockId: 2, status: Status.FAILURE },
      { blockId: 3, status: Status.FAILURE },
    ]);
  });

  it('R37/R40: placeholder gets SUCCESS; a linker reports all / some / none of its dependents', () => {
    const linker = (id: number, ctx: number, layer: Layer, children: Block[]): Block => ({ blockId: id, role: 'linker', layer, ctx, children });
    const placeholder: Block = {
      blockId: 1, role: 'placeholder', layer: 'neighbor', children: [
        linker(2, 8, 'path', [nb(3, 'tcp'), nb(4, 'tcp')]),
      ],
    };
    let res = processInitiateTree([placeholder], harness().cb);
    expect(res.map((r) => r.status)).toEqual([Status.SUCCESS, Status.SUCCESS, Status.SUCCESS, Status.SUCCESS]);
    res = processInitiateTree([placeholder], harness({ 3: Status.RESOURCES }).cb);
    expect(res.find((r) => r.blockId === 2)!.status).toBe(Status.OFFLOAD_PARTIAL_SUCCESS);
    res = processInitiateTree([placeholder], harness({ 3: Status.RESOURCES, 4: Status.RESOURCES }).cb);
    expect(res.find((r) => r.blockId === 2)!.status).toBe(Status.FAILURE);
    // New TCP objects under a linker are linked to the referenced path.
    const h = harness();
    processInitiateTree([placeholder], h.cb);
    expect(h.parents.get(3)).toBe(8);
  });

  it('a linker naming no live object, or a block at the wrong layer, fails with its dependents', () => {
    const res = processInitiateTree([{ blockId: 1, role: 'linker', layer: 'path', ctx: 999, children: [nb(2, 'tcp')] }], harness().cb);
    expect(res.map((r) => r.status)).toEqual([Status.FAILURE, Status.FAILURE]);
    const wrong = processInitiateTree([nb(1, 'neighbor', [nb(2, 'tcp')])], harness().cb);
    expect(wrong.map((r) => r.status)).toEqual([Status.OFFLOAD_PARTIAL_SUCCESS, Status.FAILURE]);
  });
});
