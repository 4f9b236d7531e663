// Assertions shared by several suites.
import assert from "node:assert/strict";
import type { Frame } from "./ws.ts";
import type { ApiResponse } from "./sign.ts";

/** Asserts a pusher:subscription_error frame for `channel` with this status and type. */
export function assertSubscriptionError(
  f: Frame,
  channel: string,
  status: number,
  type: string,
): void {
  assert.equal(
    f.event,
    "pusher:subscription_error",
    `expected subscription_error: ${JSON.stringify(f)}`,
  );
  assert.equal(f.channel, channel, "subscription_error names the channel");
  assert.equal(typeof f.data, "object", "subscription_error data is an object");
  const d = f.data as { type: unknown; error: unknown; status: unknown };
  assert.equal(d.status, status, `status: ${JSON.stringify(d)}`);
  assert.equal(d.type, type, `type: ${JSON.stringify(d)}`);
  assert.equal(typeof d.error, "string");
  assert.ok((d.error as string).length > 0, "error explains why");
}

/** Asserts a pusher:error frame with this code and a non-empty message. */
export function assertPusherError(f: Frame, code: number): void {
  assert.equal(f.event, "pusher:error", `expected pusher:error: ${JSON.stringify(f)}`);
  assert.equal(typeof f.data, "object", "pusher:error data is an object");
  const d = f.data as { code: unknown; message: unknown };
  assert.equal(d.code, code, `pusher:error code: ${JSON.stringify(f)}`);
  assert.equal(typeof d.message, "string");
  assert.ok((d.message as string).length > 0, "error message is not empty");
}

/** Asserts an HTTP error: this status and a JSON body {"error": "<non-empty string>"}. */
export function assertHttpError(res: ApiResponse, status: number): void {
  assert.equal(res.status, status, `HTTP status (body: ${res.text.slice(0, 300)})`);
  assert.ok(
    res.json !== null && typeof res.json === "object",
    `error body is JSON: ${res.text.slice(0, 300)}`,
  );
  const err = (res.json as { error?: unknown }).error;
  assert.equal(typeof err, "string", `body has an "error" string: ${res.text.slice(0, 300)}`);
  assert.ok((err as string).length > 0, "error message is not empty");
}
