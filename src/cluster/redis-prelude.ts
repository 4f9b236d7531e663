/**
 * The Lua functions every state script starts with (src/cluster/redis-scripts.ts, which documents
 * the key layout and the entry format): the namespace from ARGV, the set operations that keep
 * counts, presence and sign-ins, and the reversal of a node's entries.
 */

export const PRELUDE = `
local ROOT = ARGV[1]
local NODE_ID = ARGV[2]
local NODE = ROOT .. ':node:' .. NODE_ID

local function app_key(app) return ROOT .. ':' .. app end

local function split(entry, parts)
  local out = {}
  local start = 1
  for i = 1, parts - 1 do
    local tab = string.find(entry, '\\t', start, true)
    if not tab then break end
    out[#out + 1] = string.sub(entry, start, tab - 1)
    start = tab + 1
  end
  out[#out + 1] = string.sub(entry, start)
  return out
end

local function conn_add(app, sock, max)
  local key = app_key(app) .. ':conns'
  if max >= 0 and redis.call('SISMEMBER', key, sock) == 0 and redis.call('SCARD', key) >= max then
    return 0
  end
  redis.call('SADD', key, sock)
  return 1
end

local function conn_remove(app, sock)
  redis.call('SREM', app_key(app) .. ':conns', sock)
end

-- 1 when the channel just became occupied (its first subscriber anywhere).
local function sub_add(app, channel, sock)
  local key = app_key(app)
  if redis.call('SADD', key .. ':subs:' .. channel, sock) == 1 then
    return redis.call('SADD', key .. ':channels', channel)
  end
  return 0
end

-- 1 when the channel just became vacated (its last subscriber anywhere left). With 'absent', also
-- when the socket was not there and the channel has no subscriber: Redis lost the entry (it
-- restarted empty) and the departure must still be announced.
local function sub_remove(app, channel, sock, absent)
  local key = app_key(app)
  local subs = key .. ':subs:' .. channel
  local removed = redis.call('SREM', subs, sock) == 1
  if redis.call('SCARD', subs) > 0 then return 0 end
  if redis.call('SREM', key .. ':channels', channel) == 1 then return 1 end
  if absent and not removed then return 1 end
  return 0
end

-- The member list's version (src/cluster/redis-rosters.ts): 'empty' for no members, else a
-- token set by roster_changed. Members without a token (written before versions existed) get one.
local roster_changed
local function roster_version(app, channel)
  local version = redis.call('GET', app_key(app) .. ':pver:' .. channel)
  if version then return version end
  if redis.call('HLEN', app_key(app) .. ':pinfo:' .. channel) == 0 then return 'empty' end
  return roster_changed(app, channel)
end

-- A new version after the list changed: TIME keeps tokens unique across Redis restarts, the
-- counter within one microsecond.
roster_changed = function(app, channel)
  local key = app_key(app) .. ':pver:' .. channel
  if redis.call('HLEN', app_key(app) .. ':pinfo:' .. channel) == 0 then
    redis.call('DEL', key)
    return 'empty'
  end
  local now = redis.call('TIME')
  local version = now[1] .. '.' .. now[2] .. '.' .. redis.call('INCR', ROOT .. ':pseq')
  redis.call('SET', key, version)
  return version
end

-- 1: the user's first socket in the channel; 0: already present; -1: channel full.
local function presence_join(app, channel, sock, user, info, max)
  local key = app_key(app)
  local infos = key .. ':pinfo:' .. channel
  local socks = key .. ':psock:' .. channel .. ':' .. user
  if redis.call('SCARD', socks) > 0 then
    redis.call('SADD', socks, sock)
    return 0
  end
  if redis.call('HEXISTS', infos, user) == 0 and redis.call('HLEN', infos) >= max then
    return -1
  end
  redis.call('SADD', socks, sock)
  redis.call('HSET', infos, user, info)
  roster_changed(app, channel)
  return 1
end

-- 1 when the user has no socket left in the channel (and was a member until now). With
-- 'absent', also when the user was already gone: see sub_remove.
local function presence_leave(app, channel, sock, user, absent)
  local key = app_key(app)
  local socks = key .. ':psock:' .. channel .. ':' .. user
  local removed = redis.call('SREM', socks, sock) == 1
  if redis.call('SCARD', socks) > 0 then return 0 end
  if redis.call('HDEL', key .. ':pinfo:' .. channel, user) == 1 then
    roster_changed(app, channel)
    return 1
  end
  if absent and not removed then return 1 end
  return 0
end

-- 1: the user's first signed-in socket anywhere.
local function user_add(app, sock, user)
  local socks = app_key(app) .. ':usock:' .. user
  redis.call('SADD', socks, sock)
  return redis.call('SCARD', socks) == 1 and 1 or 0
end

-- 1: the user's last signed-in socket anywhere left. With 'absent': see sub_remove.
local function user_remove(app, sock, user, absent)
  local socks = app_key(app) .. ':usock:' .. user
  local removed = redis.call('SREM', socks, sock) == 1
  if redis.call('SCARD', socks) > 0 then return 0 end
  if removed or absent then return 1 end
  return 0
end

local function push_change(list, kind, app, channel, user, info)
  list[#list + 1] = kind
  list[#list + 1] = app
  list[#list + 1] = channel
  list[#list + 1] = user
  list[#list + 1] = info
end

-- Collects changes once each (a departure can be found twice: stale entry and failed leave).
local function changes()
  local list, seen = {}, {}
  return list, function(kind, app, channel, user, info)
    local id = kind .. '\\t' .. app .. '\\t' .. channel .. '\\t' .. user
    if seen[id] then return end
    seen[id] = true
    push_change(list, kind, app, channel, user, info)
  end
end

-- The socket id of a node entry.
local function entry_socket(entry)
  local kind = string.sub(entry, 1, 1)
  if kind == 'c' then return split(entry, 3)[3] end
  if kind == 'u' then return split(entry, 4)[3] end
  return split(entry, 5)[4]
end

-- Undoes one node entry (or a departure, with 'absent'); 'add' collects what it changes.
local function reverse(kind, f, add, absent)
  if kind == 'c' then
    conn_remove(f[2], f[3])
  elseif kind == 's' then
    if sub_remove(f[2], f[3], f[4], absent) == 1 then add('v', f[2], f[3], '', '') end
    add('n', f[2], f[3], '', '')
  elseif kind == 'p' then
    if presence_leave(f[2], f[3], f[4], f[5], absent) == 1 then add('p', f[2], f[3], f[5], '') end
  elseif kind == 'u' then
    if user_remove(f[2], f[3], f[4], absent) == 1 then add('u', f[2], '', f[4], '') end
  end
end

local ENTRY_FIELDS = { c = 3, s = 4, p = 5, u = 4 }

local function reverse_entry(entry, add)
  local kind = string.sub(entry, 1, 1)
  reverse(kind, split(entry, ENTRY_FIELDS[kind]), add, false)
end

-- Reverses every entry of a node; answers the members and users that left (groups of five).
local function remove_node(node_id)
  local node = ROOT .. ':node:' .. node_id
  local removed, add = changes()
  for _, entry in ipairs(redis.call('SMEMBERS', node)) do reverse_entry(entry, add) end
  redis.call('DEL', node)
  redis.call('SREM', ROOT .. ':nodes', node_id)
  redis.call('DEL', ROOT .. ':lease:' .. node_id)
  return removed
end
`;

/** A script body with the prelude before it. */
export const script = (body: string): string => `${PRELUDE}\n${body}`;
