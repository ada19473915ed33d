-- The watchdog's step for one due deadline of one device. ARGV: 1 the deadline member
-- ("ns|<device>", "cs|<device>|<zone>" or "ce|<device>|<zone>"), 2 the next deadline of the same
-- kind in ms ('' for none), computed by the caller from the zone's schedule.
-- ns: no upload within the interval plus the buffer; cs: a schedule window has started (plus
-- grace); ce: it has ended. Returns the action taken.
read_config()
local member, next_ms = ARGV[1], ARGV[2]
if not cfg.ver or not order_active() then
  redis.call('ZREM', due_key, member)
  return 'gone'
end
local kind, zid = string.match(member, '^(%a%a)|[^|]+|?(%d*)$')
local function reschedule()
  if next_ms ~= '' then redis.call('ZADD', due_key, tonumber(next_ms), member)
  else redis.call('ZREM', due_key, member) end
end
local result
if kind == 'ns' then
  local last = tonumber(st.rx or cfg.pub)
  local deadline = last + tonumber(cfg.ivl) * 1000 + tonumber(cfg.sigbuf) * 1000
  if deadline <= now_ms then
    raise('c:no_signal:', 'no_signal', 'serious', nil, '', now_ms, 'w' .. now_ms)
    redis.call('ZREM', due_key, member) -- the next upload schedules it again
    result = 'raised'
  elseif st.nsb and st.nsb * 1000 > now_ms then
    -- An upload since has put it in the set of a second still ahead (ingest.lua).
    redis.call('ZREM', due_key, member)
    result = 'later'
  else
    redis.call('ZADD', due_key, deadline, member)
    result = 'later'
  end
else
  local zone = find_zone(zid)
  if not zone then
    redis.call('ZREM', due_key, member)
    return 'gone'
  end
  local s = zone_state(zid)
  if kind == 'cs' then
    if zone.exclusion and s == 'I' then
      raise('c:exclusion_zone_entered:' .. zid, 'exclusion_zone_entered', 'critical', zid, '', now_ms, 'w' .. now_ms)
    elseif not zone.exclusion and s ~= 'I' then
      -- Away, or no position yet, when the curfew (plus grace) starts.
      raise('c:not_home_at_curfew_start:' .. zid, 'not_home_at_curfew_start', 'critical', zid, '', now_ms, 'w' .. now_ms)
    end
  else
    clear('c:not_home_at_curfew_start:' .. zid, '', now_ms)
    clear('c:inclusion_zone_left:' .. zid, '', now_ms)
  end
  reschedule()
  result = kind
end
save_state()
return result
