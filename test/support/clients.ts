// Real client libraries wired to a test server: pusher-js (its Node build, which works on both Bun
// and Deno), Laravel Echo (reverb broadcaster over pusher-js) and the official `pusher` server SDK.
import PusherModule from "pusher-js";
import type {
  Channel,
  ChannelAuthorizationCallback,
  ConnectionManager,
  Options,
  PresenceChannel,
} from "pusher-js";
import Echo from "laravel-echo";
import PusherServer from "pusher";
import type { Chorus } from "./server.ts";
import type { AppCreds } from "./sign.ts";
import { withTimeout } from "./wait.ts";

type Listener = (data: unknown, meta?: unknown) => void;
interface Bindable {
  bind(event: string, cb: Listener): unknown;
  unbind(event?: string, cb?: Listener): unknown;
}

/** The part of a pusher-js client the tests use. */
export interface Pusher extends Bindable {
  connection: ConnectionManager;
  subscribe(channel: string): Channel;
  unsubscribe(channel: string): void;
  channel(channel: string): Channel;
  disconnect(): void;
  /** Sends any frame (pusher-js's public API; e.g. a `pusher:ping` of our own). */
  send_event(event: string, data: unknown, channel?: string): boolean;
  signin(): void;
  user: Bindable & {
    signinDonePromise: Promise<unknown> | null;
    user_data: unknown;
    watchlist: Bindable;
  };
}
export type { Channel, PresenceChannel };

// pusher-js is CommonJS: Deno types its default import as the whole module while tsc types it as
// the class. At runtime both give the class; describe it structurally so both checkers agree.
const Pusher = PusherModule as unknown as new (key: string, options: Options) => Pusher;

/** A fixed 32-byte key (base64) for end-to-end encrypted channels. */
export const ENCRYPTION_MASTER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

export interface PresenceUser {
  user_id: string | number;
  user_info?: Record<string, unknown>;
}

/** The official server SDK pointed at the test server. Prefixed paths are handled by replacing
 * the SDK's `config.prefixPath` (the SDK has no option for a path prefix; it signs whatever path
 * `prefixPath` returns, which is what a proxy-style deployment needs). */
export function serverSdk(server: Chorus, app: AppCreds, encrypted = false): PusherServer {
  const sdk = new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: "127.0.0.1",
    port: String(server.port),
    useTLS: false,
    ...(encrypted ? { encryptionMasterKeyBase64: ENCRYPTION_MASTER_KEY } : {}),
  });
  if (server.prefix) {
    // `config` is not in the SDK's typings; it is a plain object with prefixPath(sub).
    const cfg = (sdk as unknown as { config: { prefixPath(sub: string): string } }).config;
    cfg.prefixPath = (sub: string) => `${server.prefix}/apps/${app.id}${sub}`;
  }
  return sdk;
}

export interface ClientOptions {
  /** Presence identity, per channel. */
  user?: PresenceUser | ((channel: string) => PresenceUser);
  /** Sign channel auth with this secret instead of the app's (to provoke 401). */
  authSecret?: string;
  /** user_data for pusher.signin() (JSON-encoded by the helper). */
  signinUser?: Record<string, unknown>;
  /** Extra pusher-js options. */
  extra?: Partial<Options>;
}

const pushers = new Set<Pusher>();

function authHandlers(server: Chorus, app: AppCreds, o: ClientOptions) {
  const signer = serverSdk(server, { ...app, secret: o.authSecret ?? app.secret }, true);
  return {
    channelAuthorization: {
      customHandler: (
        params: { socketId: string; channelName: string },
        callback: ChannelAuthorizationCallback,
      ) => {
        try {
          const { socketId, channelName } = params;
          if (channelName.startsWith("presence-")) {
            const u = typeof o.user === "function" ? o.user(channelName) : o.user;
            if (!u) throw new Error(`no presence user configured for ${channelName}`);
            // The SDK types user_id as string; numeric ids are allowed on the wire (§4).
            const data = u as { user_id: string; user_info?: Record<string, unknown> };
            callback(null, signer.authorizeChannel(socketId, channelName, data));
          } else {
            callback(null, signer.authorizeChannel(socketId, channelName));
          }
        } catch (err) {
          callback(err as Error, null);
        }
      },
    },
    userAuthentication: {
      customHandler: (
        params: { socketId: string },
        callback: (err: Error | null, data: { auth: string; user_data: string } | null) => void,
      ) => {
        try {
          const user = o.signinUser ?? { id: "anonymous" };
          // The SDK types user data as {id: string, ...}; our objects carry a string id.
          callback(
            null,
            signer.authenticateUser(params.socketId, user as { id: string }),
          );
        } catch (err) {
          callback(err as Error, null);
        }
      },
    },
  };
}

function clientOptions(server: Chorus, app: AppCreds, o: ClientOptions): Options {
  return {
    cluster: "mt1",
    wsHost: "127.0.0.1",
    wsPort: server.port,
    wsPath: server.prefix || undefined,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    ...authHandlers(server, app, o),
    ...(o.extra ?? {}),
  } as Options;
}

/** A pusher-js client (connecting immediately). Call `disconnectAll()` in `after`. */
export function pusherClient(server: Chorus, app: AppCreds, o: ClientOptions = {}): Pusher {
  const p = new Pusher(app.key, clientOptions(server, app, o));
  pushers.add(p);
  return p;
}

/** Resolves with the socket id once the client is connected. */
export function connected(p: Pusher, timeout = 5000): Promise<string> {
  if (p.connection.state === "connected") return Promise.resolve(p.connection.socket_id);
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      p.connection.bind("connected", () => resolve(p.connection.socket_id));
      p.connection.bind("failed", () => reject(new Error("pusher-js connection failed")));
    }),
    timeout,
    "pusher-js to connect",
  );
}

export class SubscriptionError extends Error {
  constructor(readonly data: unknown) {
    super(`subscription_error: ${JSON.stringify(data)}`);
  }
}

/** Resolves with the subscription_succeeded payload; rejects with SubscriptionError. */
export function subscribed(channel: Channel, timeout = 5000): Promise<unknown> {
  return withTimeout(
    new Promise<unknown>((resolve, reject) => {
      channel.bind("pusher:subscription_succeeded", (data: unknown) => resolve(data));
      channel.bind(
        "pusher:subscription_error",
        (data: unknown) => reject(new SubscriptionError(data)),
      );
    }),
    timeout,
    `subscription to ${channel.name}`,
  );
}

/** Resolves with the subscription_error payload; rejects if the subscription succeeds. */
export function subscriptionError(channel: Channel, timeout = 5000): Promise<unknown> {
  return withTimeout(
    new Promise<unknown>((resolve, reject) => {
      channel.bind("pusher:subscription_error", (data: unknown) => resolve(data));
      channel.bind(
        "pusher:subscription_succeeded",
        () => reject(new Error(`${channel.name}: expected subscription_error, got success`)),
      );
    }),
    timeout,
    `subscription_error on ${channel.name}`,
  );
}

/** Next occurrence of `event` on a pusher-js channel (or any object with bind/unbind). */
export function nextEvent<T = unknown>(
  target: {
    bind(e: string, cb: (data: T, meta?: unknown) => void): unknown;
    unbind(e: string, cb: (data: T, meta?: unknown) => void): unknown;
  },
  event: string,
  timeout = 5000,
): Promise<{ data: T; meta?: unknown }> {
  let cb: ((data: T, meta?: unknown) => void) | undefined;
  const p = new Promise<{ data: T; meta?: unknown }>((resolve) => {
    cb = (data: T, meta?: unknown) => {
      target.unbind(event, cb!);
      resolve({ data, meta });
    };
    target.bind(event, cb);
  });
  return withTimeout(p, timeout, `event ${event}`).catch((err) => {
    if (cb) target.unbind(event, cb);
    throw err;
  });
}

// Laravel Echo ---------------------------------------------------------------------------------

const echos = new Set<Echo<"reverb">>();

/** Laravel Echo with the `reverb` broadcaster, using pusher-js as its client. */
export function echoClient(server: Chorus, app: AppCreds, o: ClientOptions = {}): Echo<"reverb"> {
  const options = {
    broadcaster: "reverb" as const,
    key: app.key,
    Pusher,
    withoutInterceptors: true,
    ...clientOptions(server, app, o),
  };
  // Echo's option type for `reverb` omits `cluster`; the extra key is harmless (Echo overrides it).
  const echo = new Echo<"reverb">(
    options as unknown as ConstructorParameters<typeof Echo>[0] & {
      broadcaster: "reverb";
    },
  );
  echos.add(echo);
  return echo;
}

/** The pusher-js instance behind an Echo client. */
export function echoPusher(echo: Echo<"reverb">): Pusher {
  return (echo.connector as unknown as { pusher: Pusher }).pusher;
}

/** Disconnects every pusher-js and Echo client created by these helpers. */
export function disconnectAll(): void {
  for (const e of echos) {
    try {
      e.disconnect();
    } catch {
      // ignore
    }
  }
  echos.clear();
  for (const p of pushers) {
    try {
      p.disconnect();
    } catch {
      // ignore
    }
  }
  pushers.clear();
}
