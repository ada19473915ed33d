-- The watchdog takes the deadlines of one shard that are due, leasing each for ARGV[2] ms so
-- that a watchdog that dies mid-way leaves them to the next. KEYS: 1 the shard's deadlines.
-- ARGV: 1 at most this many. Returns {caught up (1) or not (0), member, due_ms, ...}; the work is
-- the number due, and one look per second gone by.
local clock = redis.call('TIME')
local now_s = tonumber(clock[1])
local now_ms = now_s * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- First the no_signal deadlines that uploads left in a set per second (ingest.lua): a second's
-- set joins the sorted set when that second begins, scored by its start, and deadline.lua checks
-- the exact time. At most an hour of seconds per call, for a watchdog that was away long.
local caught_up = 1
local next_key = KEYS[1] .. ':next'
local first = tonumber(redis.call('GET', next_key))
if first and first <= now_s then
  local last = math.min(now_s, first + 3599)
  if last < now_s then caught_up = 0 end
  for second = first, last do
    local bucket = KEYS[1] .. ':' .. string.format('%d', second)
    local members = redis.call('SMEMBERS', bucket)
    for i = 1, #members, 500 do
      local args = {}
      for j = i, math.min(i + 499, #members) do
        args[#args + 1] = second * 1000
        args[#args + 1] = members[j]
      end
      redis.call('ZADD', KEYS[1], unpack(args))
    end
    if #members > 0 then redis.call('DEL', bucket) end
  end
  redis.call('SET', next_key, string.format('%d', last + 1))
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), due[i]) end
table.insert(due, 1, caught_up)
return due
