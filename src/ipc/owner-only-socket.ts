/**
 * A Unix stream socket that is never reachable with wider permissions than owner-only: bind inside
 * a fresh 0700 directory, chmod 0600, then hard-link to the public path (the umask is process-wide
 * and left alone). Used by the target's IPC socket and the host's control socket.
 */
import { constants as fsc } from 'node:fs';
import { chmod, link, lstat, mkdtemp, rmdir, stat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';

/** sun_path is 108 bytes on Linux, one of them the terminating NUL. */
export const UNIX_PATH_MAX = 107;

/**
 * Listen at `path` (a stale socket file with no listener is replaced; anything else there is
 * refused, naming `who` would be listening). Resolves with the socket's inode, so a later close
 * removes only its own file.
 */
export async function listenOwnerOnly(server: Server, path: string, who: string): Promise<number> {
  await removeStaleSocket(path, who);
  if (Buffer.byteLength(path) > UNIX_PATH_MAX) throw new Error(`socket path ${path} is longer than ${UNIX_PATH_MAX} bytes`);
  const dir = await mkdtemp(join(dirname(path), '.sock-'));
  const temp = join(dir, 's');
  if (Buffer.byteLength(temp) > UNIX_PATH_MAX) {
    await rmdir(dir);
    throw new Error(`socket path ${temp} is longer than ${UNIX_PATH_MAX} bytes; choose a shorter ${basename(path)} directory`);
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(temp, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(temp, 0o600);
    await link(temp, path);
  } catch (e) {
    server.close();
    await unlink(temp).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
    throw e;
  }
  await unlink(temp);
  await rmdir(dir);
  return (await stat(path)).ino;
}

/** Remove `path` if it is a socket nobody listens on; refuse anything else that exists there. */
export async function removeStaleSocket(path: string, who: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if ((st.mode & fsc.S_IFMT) !== fsc.S_IFSOCK) throw new Error(`${path} exists and is not a socket; not replacing it`);
  const listening = await new Promise<boolean>((resolve, reject) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNREFUSED' ? resolve(false) : reject(e)));
  });
  if (listening) throw new Error(`${path}: another ${who} is listening there`);
  await unlink(path);
}
