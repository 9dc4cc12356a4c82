/**
 * `dev`'s demo key control: a loopback-only HTTP helper so a newcomer can change the demo key
 * with a pasteable curl. Changes go through the emulator's key admin (the real KMS SDK);
 * reads through the guard's own typed client. Loaded only by `dev`, never by `serve`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  createKmsAdmin,
  KEY_ADMIN_ACTIONS,
  performKeyAction,
  type KmsAccount,
  type KmsAdmin,
} from '../../emulator/admin.js';
import { createKmsClient } from '../../kms/client.js';
import { listenError } from '../listen.js';

type Describe = () => Promise<Record<string, unknown>>;

function keyDescriber(
  account: KmsAccount & { readonly protocol: 'http' | 'https' },
  keyId: string,
): Describe {
  const reader = createKmsClient(
    {
      keyId,
      regionId: account.regionId,
      endpoint: account.endpoint,
      protocol: account.protocol,
    },
    { credential: { accessKeyId: account.accessKeyId, accessKeySecret: account.accessKeySecret } },
  );
  return async () => {
    const meta = await reader.describeKey(keyId);
    return {
      keyId,
      keyState: meta.keyState,
      primaryKeyVersion: meta.primaryKeyVersion,
      deleteDate: meta.deleteDate,
    };
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

function keyControlHandler(
  admin: KmsAdmin,
  describe: Describe,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const match = /^\/key\/([a-z-]+)$/.exec(path);
    const action = KEY_ADMIN_ACTIONS.find((candidate) => candidate === match?.[1]);
    try {
      if (req.method === 'GET' && path === '/key') {
        sendJson(res, 200, await describe());
      } else if (req.method === 'POST' && action !== undefined) {
        await performKeyAction(admin, action);
        sendJson(res, 200, { done: action, ...(await describe()) });
      } else {
        sendJson(res, 404, {
          error: `no route ${req.method ?? ''} ${path}; try GET /key or POST /key/{${KEY_ADMIN_ACTIONS.join(',')}}`,
        });
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      sendJson(res, 409, {
        error: typeof code === 'string' ? code : 'Failed',
        message: error instanceof Error ? error.message : String(error),
      });
    }
  };
}

/** Starts the key control on host:port (0 = any free port) for `keyId` of `account`. */
export async function startKeyControl(
  account: KmsAccount & { readonly protocol: 'http' | 'https' },
  keyId: string,
  listen: { readonly host: string; readonly port: number },
): Promise<Server> {
  const handle = keyControlHandler(createKmsAdmin(account, keyId), keyDescriber(account, keyId));
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        resolve();
      });
    });
  } catch (error) {
    throw listenError(error, '--control-port', listen.port);
  }
  return server;
}

/** Closes the key control, cutting idle keep-alive connections. */
export function stopKeyControl(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeAllConnections();
  });
}
