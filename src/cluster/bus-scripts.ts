/**
 * The Redis bus's scripts (src/cluster/redis-bus.ts): numbering events and reading the numbers.
 * The key layout is documented in src/cluster/redis-scripts.ts.
 *
 * A channel's counter alone cannot tell a node that Redis restarted empty: after enough new
 * events it climbs back to the number the node saw last, and the events it missed look like none.
 * So every number comes with the epoch of the Redis that gave it: the server time at which that
 * Redis first numbered something (a restarted one has lost the key, and its clock has moved on).
 */

/** Sets `epoch` to `{root}:epoch`, making one when the key is missing. */
const EPOCH = `
local epoch_key = ARGV[1] .. ':epoch'
local epoch = redis.call('GET', epoch_key)
if not epoch then
  local now = redis.call('TIME')
  epoch = now[1] .. '.' .. now[2]
  redis.call('SET', epoch_key, epoch)
end
`;

/**
 * Numbers and publishes one event. ARGV: root, node, app, channel, head, frame
 * → { epoch, sequence }. The message is `{head}{epoch}\n{sequence}\n{frame}`. The counter lives
 * a day past the channel's last event.
 */
export const PUBLISH = `${EPOCH}
local key = ARGV[1] .. ':' .. ARGV[3]
local seq = redis.call('INCR', key .. ':seq:' .. ARGV[4])
redis.call('EXPIRE', key .. ':seq:' .. ARGV[4], 86400)
redis.call('PUBLISH', key .. ':ev:' .. ARGV[4], ARGV[5] .. epoch .. '\\n' .. seq .. '\\n' .. ARGV[6])
return { epoch, seq }
`;

/**
 * Reads channels' counters together with the epoch they belong to. ARGV: root, node, then
 * counter keys → { epoch, counter or 0 per key }.
 */
export const COUNTERS = `${EPOCH}
local out = { epoch }
for i = 3, #ARGV do
  out[#out + 1] = tonumber(redis.call('GET', ARGV[i]) or '0')
end
return out
`;
