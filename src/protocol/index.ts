/** The Pusher wire protocol (docs/protocol.md): frames in, frames out, error and close codes. */
export * from "./codes.ts";
export * from "./encode.ts";
export * from "./frames.ts";
