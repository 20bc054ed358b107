/**
 * Process-wide safety net: labs still alive when the process is interrupted (Ctrl-C, SIGTERM) or
 * exits are torn down, so a failed or aborted test run leaves no namespaces, devices or processes.
 */

export interface Teardownable {
  teardown(): Promise<void>;
  /** Best effort without the event loop (process 'exit'): kill by PID, delete namespaces. */
  teardownSync(): void;
}

const live = new Set<Teardownable>();
let installed = false;
let signalled = false;

function onSignal(signal: NodeJS.Signals): void {
  if (signalled) {
    // Second Ctrl-C while cleaning up: do what can be done synchronously and go.
    onExit();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  }
  signalled = true;
  void Promise.allSettled([...live].map((l) => l.teardown())).finally(() => {
    uninstall();
    // Re-raise so the process ends the way it would have without us.
    process.kill(process.pid, signal);
  });
}

function onExit(): void {
  for (const l of [...live]) {
    try {
      l.teardownSync();
    } catch {
      // keep going: the next lab may still be removable
    }
  }
  live.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('exit', onExit);
}

export function registerForCleanup(t: Teardownable): void {
  live.add(t);
  install();
}

export function unregisterForCleanup(t: Teardownable): void {
  live.delete(t);
  if (live.size === 0 && !signalled) uninstall();
}
