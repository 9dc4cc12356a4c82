import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A TCP port on 127.0.0.1 held by a listener until the test ends (for "port in use" tests). */
export async function occupyPort(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve();
    });
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  );
  return (server.address() as AddressInfo).port;
}
