/**
 * Lua scripts that keep the cluster state atomic in Redis.
 *
 * Layout under the root `chorus:{prefix}`:
 *   {root}:nodes                          SET   live node ids
 *   {root}:lease:{node}                   STRING with a TTL, renewed by the node
 *   {root}:node:{node}                    SET   what the node registered (entries below)
 *   {root}:swept:{node}                   STRING set when a sweep removed the node (for an hour)
 *   {root}:{app}:conns                    SET   socket ids
 *   {root}:{app}:channels                 SET   occupied channel names
 *   {root}:{app}:subs:{channel}           SET   socket ids subscribed
 *   {root}:{app}:pinfo:{channel}          HASH  presence user id -> user_info JSON
 *   {root}:{app}:pver:{channel}           STRING version of that member list (absent: empty)
 *   {root}:pseq                           STRING counter in member-list versions
 *   {root}:{app}:psock:{channel}:{user}   SET   socket ids present as that user
 *   {root}:{app}:usock:{user}             SET   socket ids signed in as that user
 *   {root}:{app}:cache:{channel}          STRING last cached event (JSON), with a TTL
 *   {root}:{app}:counted                  HASH  channel -> last announced subscription count
 *   {root}:{app}:countlock:{channel}      STRING held for a second after an announcement
 *   {root}:{app}:seq:{channel}            STRING the channel's event counter, kept a day
 *   {root}:epoch                          STRING when this Redis started numbering events
 *   {root}:{app}:ev:{channel}             pub/sub channel carrying the channel's events
 *   {root}:probe:{node}                   pub/sub channel only that node listens on (its probe)
 *   {root}:webhooks:*                     the webhook queue (src/webhooks/redis-queue.ts)
 *
 * The bus's scripts (numbering events, reading the numbers) are in src/cluster/bus-scripts.ts.
 *
 * Every operation is idempotent (set adds and removes), so a node can re-register its whole share
 * after Redis restarts without double counting. Node entries are tab-separated:
 *   c {app} {socket} | s {app} {channel} {socket} | p {app} {channel} {socket} {user}
 *   | u {app} {socket} {user}
 * Scripts that can make members or users leave or return answer groups of five:
 *   kind ('p' presence member, 'u' signed-in user, 'o' / 'v' channel occupied / vacated,
 *   'n' subscription count changed),
 *   app, channel ('' for users), user ('' for channels), info
 */

import { script } from "./redis-prelude.ts";

/**
 * The records sockets make as they come and go, many in one call, applied in order
 * (src/cluster/redis-writes.ts). ARGV: root, node, then per write one of
 *   'C+' app socket max (-1 = none)   → 1 admitted, 0 over quota
 *   'C-' app socket                   → 1
 *   'S+' app channel socket           → 1 when the channel just became occupied, else 0
 *   'S-' app channel socket           → 1 when the channel just became vacated, else 0
 * → the answers, in order.
 */
export const WRITES = script(`
local out = {}
local i = 3
while i <= #ARGV do
  local op, app = ARGV[i], ARGV[i + 1]
  if op == 'C+' then
    local ok = conn_add(app, ARGV[i + 2], tonumber(ARGV[i + 3]))
    if ok == 1 then redis.call('SADD', NODE, 'c\\t' .. app .. '\\t' .. ARGV[i + 2]) end
    out[#out + 1] = ok
    i = i + 4
  elseif op == 'C-' then
    conn_remove(app, ARGV[i + 2])
    redis.call('SREM', NODE, 'c\\t' .. app .. '\\t' .. ARGV[i + 2])
    out[#out + 1] = 1
    i = i + 3
  elseif op == 'S+' then
    redis.call('SADD', NODE, 's\\t' .. app .. '\\t' .. ARGV[i + 2] .. '\\t' .. ARGV[i + 3])
    out[#out + 1] = sub_add(app, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'S-' then
    redis.call('SREM', NODE, 's\\t' .. app .. '\\t' .. ARGV[i + 2] .. '\\t' .. ARGV[i + 3])
    out[#out + 1] = sub_remove(app, ARGV[i + 2], ARGV[i + 3], true)
    i = i + 4
  else
    return redis.error_reply('unknown write ' .. tostring(op))
  end
end
return out
`);

/**
 * ARGV: root, node, app, channel, socket, user, info JSON, max members, the version of the
 * caller's copy of the member list (src/cluster/redis-rosters.ts)
 * → { code (1 first, 0 present, -1 full), version before, version after, 'list' | 'same',
 *     then with 'list': user, info, user, info... }
 */
export const PRESENCE_JOIN = script(`
local app, channel, sock, user = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local before = roster_version(app, channel)
local code = presence_join(app, channel, sock, user, ARGV[7], tonumber(ARGV[8]))
if code < 0 then return { code } end
redis.call('SADD', NODE, 'p\\t' .. app .. '\\t' .. channel .. '\\t' .. sock .. '\\t' .. user)
local reply = { code, before, roster_version(app, channel), 'same' }
if before ~= ARGV[9] then
  reply[4] = 'list'
  for _, v in ipairs(redis.call('HGETALL', app_key(app) .. ':pinfo:' .. channel)) do
    reply[#reply + 1] = v
  end
end
return reply
`);

/**
 * ARGV: root, node, app, channel, socket, user
 * → { 1 when it was the user's last socket else 0, list version before, version after }.
 */
export const PRESENCE_LEAVE = script(`
local app, channel, sock, user = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('SREM', NODE, 'p\\t' .. app .. '\\t' .. channel .. '\\t' .. sock .. '\\t' .. user)
local before = roster_version(app, channel)
local last = presence_leave(app, channel, sock, user, true)
return { last, before, roster_version(app, channel) }
`);

/**
 * Renews this node's lease. ARGV: root, node, lease ms → 1 renewed, 0 when the node had been
 * removed (lease expired and swept): the caller must re-register its share.
 */
export const HEARTBEAT = script(`
redis.call('SET', ROOT .. ':lease:' .. NODE_ID, '1', 'PX', tonumber(ARGV[3]))
return redis.call('SADD', ROOT .. ':nodes', NODE_ID) == 0 and 1 or 0
`);

/**
 * Removes every node whose lease has expired, atomically, so each dead node is swept once.
 * ARGV: root, node (the sweeper) → groups of five: members and users that left.
 */
export const SWEEP = script(`
local removed = {}
for _, node_id in ipairs(redis.call('SMEMBERS', ROOT .. ':nodes')) do
  if redis.call('EXISTS', ROOT .. ':lease:' .. node_id) == 0 then
    for _, v in ipairs(remove_node(node_id)) do removed[#removed + 1] = v end
    -- If the node was only stalled, it re-registers and must announce its members again.
    redis.call('SET', ROOT .. ':swept:' .. node_id, '1', 'EX', 3600)
  end
end
return removed
`);

/** Removes this node's own share (graceful stop). ARGV: root, node → groups of five that left. */
export const REMOVE_SELF = script(`
return remove_node(NODE_ID)
`);

/**
 * Writes this node's share again, as it is now (after Redis lost it, or after writes failed).
 * ARGV: root, node, lease ms, then groups:
 *   'a', socket: a socket the node still has (opening or open)
 *   'c', app, socket | 's', app, channel, socket | 'p', app, channel, socket, user, info
 *   | 'u', app, socket, user: the node's entries now
 *   'C', app, socket | 'S', app, channel, socket | 'P', app, channel, socket, user
 *   | 'U', app, socket, user: departures whose write failed
 * Entries of sockets the node no longer has are removed; departures are applied so that a user
 * or channel that is gone now is announced as gone, also when Redis forgot it ever was there
 * (but not again when a sweep removed, and announced, the node's whole share).
 * → { joined, left }, each groups of five. Joins are only announced when a sweep had removed
 * (and announced) the node; after Redis lost its data nobody was told they left.
 */
export const REGISTER = script(`
redis.call('SET', ROOT .. ':lease:' .. NODE_ID, '1', 'PX', tonumber(ARGV[3]))
redis.call('SADD', ROOT .. ':nodes', NODE_ID)
local announce = redis.call('DEL', ROOT .. ':swept:' .. NODE_ID) == 1
local alive = {}
local i = 4
while i <= #ARGV and ARGV[i] == 'a' do
  alive[ARGV[i + 1]] = true
  i = i + 2
end
local left, add_left = changes()
for _, entry in ipairs(redis.call('SMEMBERS', NODE)) do
  if not alive[entry_socket(entry)] then
    reverse_entry(entry, add_left)
    redis.call('SREM', NODE, entry)
  end
end
local joined = {}
local departures = {}
while i <= #ARGV do
  local kind = ARGV[i]
  if kind == 'c' then
    conn_add(ARGV[i + 1], ARGV[i + 2], -1)
    redis.call('SADD', NODE, 'c\\t' .. ARGV[i + 1] .. '\\t' .. ARGV[i + 2])
    i = i + 3
  elseif kind == 's' then
    if sub_add(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) == 1 and announce then
      push_change(joined, 'o', ARGV[i + 1], ARGV[i + 2], '', '')
    end
    redis.call('SADD', NODE, 's\\t' .. ARGV[i + 1] .. '\\t' .. ARGV[i + 2] .. '\\t' .. ARGV[i + 3])
    i = i + 4
  elseif kind == 'u' then
    local app, sock, user = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if user_add(app, sock, user) == 1 and announce then push_change(joined, 'u', app, '', user, '') end
    redis.call('SADD', NODE, 'u\\t' .. app .. '\\t' .. sock .. '\\t' .. user)
    i = i + 4
  elseif kind == 'p' then
    local app, channel, sock, user, info = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    if presence_join(app, channel, sock, user, info, 1e12) == 1 and announce then
      push_change(joined, 'p', app, channel, user, info)
    end
    redis.call('SADD', NODE, 'p\\t' .. app .. '\\t' .. channel .. '\\t' .. sock .. '\\t' .. user)
    i = i + 6
  else
    local kind = string.lower(kind)
    local fields = ENTRY_FIELDS[kind]
    local f = { kind }
    for k = 1, fields - 1 do f[k + 1] = ARGV[i + k] end
    departures[#departures + 1] = f
    i = i + fields
  end
end
-- After the re-adds, so that a user still present through another socket is not announced.
-- A sweep already announced everything the node held as gone: then only what really goes now.
for _, f in ipairs(departures) do
  reverse(f[1], f, add_left, not announce)
  redis.call('SREM', NODE, table.concat(f, '\\t'))
end
return { joined, left }
`);

/** ARGV: root, node, app, prefix → { channel, subscription count, user count (-1 if not presence) ... } */
export const CHANNELS = script(`
local key = app_key(ARGV[3])
local prefix = ARGV[4]
local reply = {}
for _, channel in ipairs(redis.call('SMEMBERS', key .. ':channels')) do
  if string.sub(channel, 1, #prefix) == prefix then
    reply[#reply + 1] = channel
    reply[#reply + 1] = redis.call('SCARD', key .. ':subs:' .. channel)
    if string.sub(channel, 1, 9) == 'presence-' then
      reply[#reply + 1] = redis.call('HLEN', key .. ':pinfo:' .. channel)
    else
      reply[#reply + 1] = -1
    end
  end
end
return reply
`);

/** ARGV: root, node, app, socket, user → 1 when the user just came online. */
export const USER_ADD = script(`
redis.call('SADD', NODE, 'u\\t' .. ARGV[3] .. '\\t' .. ARGV[4] .. '\\t' .. ARGV[5])
return user_add(ARGV[3], ARGV[4], ARGV[5])
`);

/** ARGV: root, node, app, socket, user → 1 when the user just went offline. */
export const USER_REMOVE = script(`
redis.call('SREM', NODE, 'u\\t' .. ARGV[3] .. '\\t' .. ARGV[4] .. '\\t' .. ARGV[5])
return user_remove(ARGV[3], ARGV[4], ARGV[5], true)
`);

/** ARGV: root, node, app, user ids... → the ids with a signed-in socket somewhere. */
export const USERS_ONLINE = script(`
local online = {}
for i = 4, #ARGV do
  if redis.call('SCARD', app_key(ARGV[3]) .. ':usock:' .. ARGV[i]) > 0 then
    online[#online + 1] = ARGV[i]
  end
end
return online
`);

/**
 * ARGV: root, node, app, channel, interval ms → count to announce, -1 wait, -2 unchanged.
 * Coalesces announcements cluster-wide: at most one per channel per interval.
 */
export const COUNT_CLAIM = script(`
local key = app_key(ARGV[3])
local channel = ARGV[4]
local count = redis.call('SCARD', key .. ':subs:' .. channel)
local last = redis.call('HGET', key .. ':counted', channel)
if last and tonumber(last) == count then return -2 end
if not last and count == 0 then return -2 end
if not redis.call('SET', key .. ':countlock:' .. channel, '1', 'NX', 'PX', tonumber(ARGV[5])) then
  return -1
end
if count == 0 then
  redis.call('HDEL', key .. ':counted', channel)
else
  redis.call('HSET', key .. ':counted', channel, count)
end
return count
`);
