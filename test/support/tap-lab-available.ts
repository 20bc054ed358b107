/**
 * Why a TAP-lab test cannot run here ('' when it can): not root, a missing tool, or the TAP addon
 * not built. Tests print it when they skip.
 */
import { labAvailable } from '../../src/lab/availability.js';
import { loadTapAddon } from '../../src/link/tap.js';

export function tapLabSkipReason(tools: string[]): string {
  const lab = labAvailable(tools);
  if (!lab.ok) return lab.reason;
  try {
    loadTapAddon();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}
