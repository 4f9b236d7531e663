/**
 * Resumable sessions' scripts (src/cluster/redis-sessions.ts). One hash per session:
 *   {root}:{app}:session:{id}   HASH  h: holding socket, n: its node, r: the record (JSON)
 * kept `ttl` after its last save. A holder counts while its node's lease lives
 * ({root}:lease:{node}, src/cluster/redis-scripts.ts): a dead node's sockets hold nothing.
 */

/** ARGV: root, node, app, id, socket, ttl ms → { 'held' } or { 'ok', record JSON or '' }. */
export const SESSION_CLAIM = `
local key = ARGV[1] .. ':' .. ARGV[3] .. ':session:' .. ARGV[4]
local kept = redis.call('HMGET', key, 'h', 'n', 'r')
if kept[1] and kept[1] ~= ARGV[5] and kept[2]
  and redis.call('EXISTS', ARGV[1] .. ':lease:' .. kept[2]) == 1 then
  return { 'held' }
end
redis.call('HSET', key, 'h', ARGV[5], 'n', ARGV[2])
redis.call('PEXPIRE', key, ARGV[6])
return { 'ok', kept[3] or '' }
`;

/** ARGV: root, node, app, id, socket, ttl ms, record JSON, '1' to let go → 1 saved, 0 not held. */
export const SESSION_SAVE = `
local key = ARGV[1] .. ':' .. ARGV[3] .. ':session:' .. ARGV[4]
if redis.call('HGET', key, 'h') ~= ARGV[5] then return 0 end
redis.call('HSET', key, 'r', ARGV[7])
if ARGV[8] == '1' then redis.call('HDEL', key, 'h', 'n') end
redis.call('PEXPIRE', key, ARGV[6])
return 1
`;
