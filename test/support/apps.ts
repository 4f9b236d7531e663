// The apps most suites run against, written to one config file.
import type { AppConfig, ChorusConfig } from "./server.ts";

/** All defaults (activity_timeout 30, max_message_size 10 000, client events on, 10/s...). */
export const MAIN = { id: "1001", key: "main-key", secret: "main-secret" } as const;
/** `enabled: false`. */
export const DISABLED = { id: "1002", key: "disabled-key", secret: "disabled-secret" } as const;
/** Client events disabled. */
export const NO_CLIENT_EVENTS = {
  id: "1003",
  key: "noclient-key",
  secret: "noclient-secret",
} as const;
/** Only https://good.example may connect. */
export const ORIGINS = { id: "1004", key: "origins-key", secret: "origins-secret" } as const;
/** Small limits: 2 presence members, 64-byte member info, 3 client events/s, 2 000-byte frames,
 * small HTTP bodies. */
export const LIMITED = { id: "1005", key: "limited-key", secret: "limited-secret" } as const;
/** max_connections 2. */
export const QUOTA = { id: "1006", key: "quota-key", secret: "quota-secret" } as const;

export const LIMITED_SETTINGS = {
  max_presence_members: 2,
  max_presence_member_size: 64,
  client_events: { enabled: true, rate_limit: 3 },
  max_request_size: 3000,
  max_event_size: 500,
  max_message_size: 2000,
} as const;

export function standardApps(): AppConfig[] {
  return [
    { ...MAIN },
    { ...DISABLED, enabled: false },
    { ...NO_CLIENT_EVENTS, client_events: { enabled: false } },
    { ...ORIGINS, allowed_origins: ["https://good.example"] },
    { ...LIMITED, ...LIMITED_SETTINGS, client_events: { ...LIMITED_SETTINGS.client_events } },
    { ...QUOTA, max_connections: 2 },
  ];
}

export function standardConfig(extra: Partial<ChorusConfig> = {}): ChorusConfig {
  return { apps: standardApps(), ...extra };
}

/** Matches a socket id as the protocol requires. */
export const SOCKET_ID = /^\d+\.\d+$/;
