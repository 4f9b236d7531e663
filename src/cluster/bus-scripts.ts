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
 * Numbers and publishes one event. ARGV: root, node, app, channel, head, frame, then for a
 * recovery channel the events to keep (0: none), their ttl in ms and the excluded socket
 * → { epoch, sequence, serial, history epoch } (0 and '' for an event not kept). The message is
 * `{head}{epoch}\n{sequence}\n{position}\n{frame}`, the position `{serial}@{history epoch}` or ''.
 * The counter lives a day past the channel's last event.
 *
 * A recovery channel's history, in the same script so its order is the delivery order:
 *   {root}:{app}:hmeta:{channel}   HASH   e: the history's epoch, s: its last serial
 *   {root}:{app}:hist:{channel}    STREAM s: serial, f: frame, x: excluded socket; capped
 * both expiring `ttl` after the last event: a history that ran out starts again at serial 1 in
 * a new epoch.
 */
export const PUBLISH = `${EPOCH}
local key = ARGV[1] .. ':' .. ARGV[3]
local seq = redis.call('INCR', key .. ':seq:' .. ARGV[4])
redis.call('EXPIRE', key .. ':seq:' .. ARGV[4], 86400)
local serial, history_epoch, position = 0, '', ''
if ARGV[7] and ARGV[7] ~= '0' then
  local meta = key .. ':hmeta:' .. ARGV[4]
  local hist = key .. ':hist:' .. ARGV[4]
  serial = redis.call('HINCRBY', meta, 's', 1)
  if serial == 1 then
    local now = redis.call('TIME')
    history_epoch = now[1] .. '.' .. now[2]
    redis.call('HSET', meta, 'e', history_epoch)
    redis.call('DEL', hist)
  else
    history_epoch = redis.call('HGET', meta, 'e')
  end
  position = serial .. '@' .. history_epoch
  redis.call('XADD', hist, 'MAXLEN', ARGV[7], '*', 's', serial, 'f', ARGV[6], 'x', ARGV[9])
  redis.call('PEXPIRE', meta, ARGV[8])
  redis.call('PEXPIRE', hist, ARGV[8])
end
redis.call(
  'PUBLISH', key .. ':ev:' .. ARGV[4],
  ARGV[5] .. epoch .. '\\n' .. seq .. '\\n' .. position .. '\\n' .. ARGV[6]
)
return { epoch, seq, serial, history_epoch }
`;

/**
 * A recovery channel's kept events after a serial. ARGV: root, node, app, channel, since, ttl ms
 * → { epoch ('' none), last serial, first kept serial (0 none), then serial, frame, excluded
 * socket for each kept event after since }. Events older than the ttl count as gone.
 */
export const HISTORY = `
local key = ARGV[1] .. ':' .. ARGV[3]
local meta = redis.call('HMGET', key .. ':hmeta:' .. ARGV[4], 'e', 's')
if not meta[1] then return { '', 0, 0 } end
local since = tonumber(ARGV[5])
local out = { meta[1], tonumber(meta[2]), 0 }
-- At or past the last serial (where a subscriber starts): nothing to read.
if since >= out[2] then return out end
local now = redis.call('TIME')
local from = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[6])
local entries = redis.call('XRANGE', key .. ':hist:' .. ARGV[4], string.format('%.0f', from), '+')
for i, entry in ipairs(entries) do
  local serial = tonumber(entry[2][2])
  if i == 1 then out[3] = serial end
  if serial > since then
    out[#out + 1] = serial
    out[#out + 1] = entry[2][4]
    out[#out + 1] = entry[2][6]
  end
end
return out
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
