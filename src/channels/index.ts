/** Channels: kinds and names, presence/sign-in identities, the local registry, member lists. */
export * from "./internal.ts";
export * from "./kinds.ts";
export * from "./members.ts";
export * from "./registry.ts";
export * from "./roster.ts";
export * from "./recovery.ts";
