-- casemgr publishes a device's configuration. KEYS: 1 config, 2 state, 3 seen, 4 deadlines,
-- 5 the whole configuration (msgpack, ARGV[4]).
-- ARGV: 1 version (from one database sequence), 2 fields (msgpack map) or '' to remove the
-- device, 3 schedule deadlines (msgpack list of [member, ms]), 4 the whole configuration
-- (msgpack, for the ingest workers; Lua's msgpack cannot read its binary fields, so it rides
-- apart). An older version than the one in place is ignored, so publishers racing after their
-- commits cannot go back in time.
-- Returns 1 if applied, 0 if stale.
local current = redis.call('HGET', KEYS[1], 'ver')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if ARGV[2] == '' then
  -- Deregistered: keep only the version, so an older publish cannot bring it back.
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
  redis.call('HSET', KEYS[1], 'ver', ARGV[1], 'gone', '1')
  return 1
end
local fields = cmsgpack.unpack(ARGV[2])
local raw = redis.call('GET', KEYS[2])
local state = raw and cmsgpack.unpack(raw) or {}
-- The no_signal deadline is worked out again below, into the sorted set, where the next upload
-- takes it from (ingest.lua): out of the set of a second an upload put it in.
if state.nsb then
  redis.call('SREM', KEYS[4] .. ':' .. string.format('%d', state.nsb), 'ns|' .. fields.dev)
  state.nsb = nil
end
local previous_order = redis.call('HGET', KEYS[1], 'order') or ''
if previous_order ~= (fields.order or '') then
  -- Another order (or none): its subject's state starts afresh.
  redis.call('DEL', KEYS[2], KEYS[3])
  state = {}
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[5], ARGV[4])
local flat = {'ver', ARGV[1], 'pub', now_ms}
for name, value in pairs(fields) do flat[#flat + 1] = name; flat[#flat + 1] = tostring(value) end
redis.call('HSET', KEYS[1], unpack(flat))
if fields.order and fields.order ~= '' then
  local expire_at = tonumber(fields.ends) + 7 * 86400000
  -- The state carries the configuration's version, so that an upload reads one key to check
  -- it (each key read costs a cache miss or two once a Redis holds a million subjects).
  state.cv = ARGV[1]
  state.zq = nil -- worked out for the zones of the version before
  redis.call('SET', KEYS[2], cmsgpack.pack(state))
  redis.call('PEXPIREAT', KEYS[2], expire_at)
  redis.call('PEXPIREAT', KEYS[3], expire_at)
  local last = tonumber(state.rx or now_ms)
  redis.call('ZADD', KEYS[4], last + tonumber(fields.ivl) * 1000 + tonumber(fields.sigbuf) * 1000,
             'ns|' .. fields.dev)
  for _, deadline in ipairs(cmsgpack.unpack(ARGV[3])) do
    redis.call('ZADD', KEYS[4], deadline[2], deadline[1])
  end
end
return 1
