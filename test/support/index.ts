// What tests, the fuzzer and the bench share: one spawner with one exit hook (process.ts), one
// env filter (env.ts), one freePort (ports.ts), one API signer (sign.ts), and servers that stop
// themselves at the end of an `await using` block (server.ts, nodes.ts, redis.ts).
export { childEnv } from "./env.ts";
export { freePort } from "./ports.ts";
export { type ProcessOptions, type Signal, type Spawned, spawnProcess } from "./process.ts";
export {
  type AppCreds,
  channelAuth,
  hmacHex,
  md5Hex,
  signedParams,
  signedPath,
  signinAuth,
  stringToSign,
  toQuery,
} from "./sign.ts";
export {
  type Chorus,
  type ChorusConfig,
  isBun,
  repoRoot,
  runtimeName,
  serverCommand,
  serverEnv,
  serverUrls,
  startChorus,
  waitListening,
  writeTempConfig,
} from "./server.ts";
export { type ClusterNode, type Runtime, startNode } from "./nodes.ts";
export { RedisServer } from "./redis.ts";
