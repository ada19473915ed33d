-- Ingest one upload of one device. ARGV: 1 the configuration version the caller evaluated
-- with, 2 that version's configuration fields (msgpack map, as published, numbers as numbers),
-- 3 the uploads a device may make per minute (0: any), 4 the fixes (msgpack), sorted by fix
-- time: [seq, t_ms, lon, lat, accuracy, speed, battery, strap, case, evidence]; absent values
-- are false; evidence is false for a fix without a valid position, else one character per zone
-- (see tracking/zones.py). The fixes come last: a caller packs the rest once per device.
-- Returns {'unknown'} | {'stale', config blob} | {'no_order'} | {'limited', ms to wait} |
--         {'ok', accepted, duplicates, alerts, crossing check (msgpack) or ''}
-- The crossing check, only for a device with exclusion zones, is [applied seqs, previous valid
-- fix as [t, lon, lat, seq] or nil]: the caller tests the path between them.
--
-- On the path every upload takes, numbers bound for Redis or a reply are formatted with
-- string.format('%d'): Redis 7.0 turns a number argument of redis.call into text with "%.17g",
-- and Lua's tostring uses "%.14g", both through the C library's floating-point printing (a few
-- per cent of the script's time in perf). The rare paths (an alert, a zone's change) keep
-- tostring.
-- The version is in the state (publish.lua puts it there, in the same slot and script as the
-- configuration); a subject without state yet is checked against the configuration itself.
local version = st.cv or redis.call('HGET', cfg_key, 'ver')
if not version then return {'unknown'} end
if version ~= ARGV[1] then return {'stale', redis.call('GET', KEYS[7])} end
use_config(cmsgpack.unpack(ARGV[2]))
if not order_active() then return {'no_order'} end
-- A device's uploads per minute, counted in its state: no key or round trip of its own.
local per_minute = tonumber(ARGV[3])
if per_minute > 0 then
  local window = math.floor(now_ms / 60000)
  if st.rlw ~= window then put('rlw', window); put('rlc', 0) end
  if st.rlc >= per_minute then return {'limited', string.format('%d', 60000 - now_ms % 60000)} end
  put('rlc', st.rlc + 1)
end

-- Duplicates are found among the latest WINDOW sequence numbers (a batch holds at most 1,000
-- pings). Every number from rs (the run's start) to hseq has been seen: a device that counts up
-- one by one, as devices do, needs nothing else. Below rs, a bitmap ring of 128 bytes says which
-- numbers were seen; it is written only when a gap ends a run, or a late fix arrives.
local WINDOW = 1024
local N, T = tonumber(cfg.N), tonumber(cfg.T)
local low, critical = tonumber(cfg.lowb), tonumber(cfg.critb)
local unavailable_after = tonumber(cfg.locT)
local fresh_state = st.hseq == nil

-- Every upload moves its device's no_signal deadline. It waits in a set of the second it falls
-- in (due_key:<second>), not in the shard's sorted set: once the sorted set holds the deadlines of
-- tens of thousands of subjects, moving one member costs its skiplist's cache misses, 8-9 µs of
-- this script at 300,000 subjects, against 1-2 µs at 1,000 (bench/script_cost.py). The watchdog
-- moves a second's set into the sorted set when that second begins (claim.lua) and checks the
-- exact time then (deadline.lua). st.nsb is the second of the set; once that second has begun,
-- the member may have moved to the sorted set, or been handled.
local function bucket(second) return due_key .. ':' .. string.format('%d', second) end
local function schedule_no_signal(due_ms)
  local member, second = 'ns|' .. cfg.dev, math.floor(due_ms / 1000)
  local old = st.nsb
  if old and old * 1000 > now_ms then
    if old == second then return end
    redis.call('SREM', bucket(old), member)
  else
    redis.call('ZREM', due_key, member)
    if old then
      redis.call('SREM', bucket(old), member)
    else
      -- Where the watchdog starts; no set can be older than the first upload of a device.
      redis.call('SET', due_key .. ':next', string.format('%d', math.floor(now_ms / 1000)), 'NX')
    end
  end
  if second * 1000 > now_ms then
    redis.call('SADD', bucket(second), member)
    put('nsb', second)
  else -- due within this second (an interval and buffer of 0): its set may have moved already
    redis.call('ZADD', due_key, string.format('%d', due_ms), member)
    put('nsb', nil)
  end
end

local function on_transition(zone, old, new, active, seqs, seq, t)
  local zid = zone.id
  if zone.exclusion then
    if new == 'I' then
      if active then
        raise('c:exclusion_zone_entered:' .. zid, 'exclusion_zone_entered', 'critical', zid, seqs, t, seq)
      end
    elseif old == 'I' then
      if st['c:exclusion_zone_entered:' .. zid] then
        clear('c:exclusion_zone_entered:' .. zid, seqs, t)
        raise(nil, 'exclusion_zone_left', 'info', zid, seqs, t, seq)
      end
    end
  elseif new == 'O' then
    -- Left, or first seen outside a zone in force at all times. First seen outside a curfew
    -- zone is the watchdog's not_home_at_curfew_start, at the curfew's start plus grace.
    if active and (old == 'I' or not zone.scheduled) then
      raise('c:inclusion_zone_left:' .. zid, 'inclusion_zone_left', 'critical', zid, seqs, t, seq)
    end
  elseif new == 'I' then
    clear('c:inclusion_zone_left:' .. zid, seqs, t)
    if st['c:not_home_at_curfew_start:' .. zid] then
      clear('c:not_home_at_curfew_start:' .. zid, seqs, t)
      raise(nil, 'late_return', 'critical', zid, seqs, t, seq)
    end
  end
end

-- Zone states are read once per call, changed in memory fix by fix, and written once.
local machines = {}
local function loaded(zid)
  local z = machines[zid]
  if not z then
    local s, c, n, since, changed, seqs = zone_state(zid)
    z = {s = s, c = c, n = n, since = since, changed = changed, seqs = seqs, dirty = false}
    machines[zid] = z
  end
  return z
end

-- A zone's confirmed state if no candidate is pending ('U' for a zone not seen yet), else nil;
-- read without parsing the zone's whole state machine ("S|-|..."), which most fixes leave as is.
local function settled(zid)
  local z = machines[zid]
  if z then return z.c == '-' and z.s or nil end
  local raw = zone_states()[zid]
  if not raw then return 'U' end
  return string.sub(raw, 3, 3) == '-' and string.sub(raw, 1, 1) or nil
end

-- Hysteresis: a state changes after N consecutive fixes, or T ms, of the same evidence;
-- a fix in the band ("-") neither counts nor breaks the run.
local function step_zone(zone, mark, seq, t)
  local evidence = string.upper(mark)
  if evidence == '-' or settled(zone.id) == evidence then return end
  local z = loaded(zone.id)
  if evidence == z.s then
    if z.c ~= '-' then z.c, z.n, z.seqs, z.dirty = '-', 0, '', true end
    return
  end
  z.dirty = true
  if z.c == evidence then
    z.n = z.n + 1
    if z.n <= 10 then z.seqs = z.seqs .. ',' .. seq end
  else
    z.c, z.n, z.since, z.seqs = evidence, 1, t, tostring(seq)
  end
  if z.n >= N or t - z.since >= T then
    local old = z.s
    z.s, z.changed, z.c, z.n = evidence, t, '-', 0
    on_transition(zone, old, evidence, mark == evidence, z.seqs, seq, t)
    z.seqs = ''
  end
end

-- The evidence of a fix that changes no zone: each zone's confirmed state, where no candidate
-- is pending ('U', unknown, is never evidence). Most fixes of a settled subject are this, and
-- skip the zones. Kept in the state (zq), so that such a fix does not even parse the zones.
local function steady_evidence()
  local marks = {}
  for i, zone in ipairs(config_zones()) do marks[i] = settled(zone.id) or '?' end
  return table.concat(marks)
end

local function save_zones()
  local changed = false
  for zid, z in pairs(machines) do
    if z.dirty then
      zone_states()[zid] =
        z.s .. '|' .. z.c .. '|' .. z.n .. '|' .. z.since .. '|' .. z.changed .. '|' .. z.seqs
      changed = true
    end
  end
  if changed then
    -- A zone no longer configured leaves the state with the next change of another.
    local configured = {}
    for _, zone in ipairs(config_zones()) do configured[zone.id] = true end
    for zid in pairs(zone_states()) do
      if not configured[zid] then zone_states()[zid] = nil end
    end
    put_zone_states()
  end
end

local hseq = tonumber(st.hseq or '-1')
-- A state written before runs were kept has none: its bitmap holds every number up to hseq.
local run_start = st.rs or hseq + 1
local latest = tonumber(st.lt or '-1')
-- Any exclusion zone ("id:x" in the layout), found without parsing the zones.
local crossings = string.find(cfg.zones or '', ':x', 1, true) ~= nil
local previous = crossings and st.vt and {st.vt, st.vlon, st.vlat, st.vseq} or nil

-- Set the ring's bits of the numbers from .. to (fewer than WINDOW) to bit ('0' or '1'): SETBIT
-- up to a byte boundary, SETRANGE of whole bytes, SETBIT for the rest, on each side of the ring's
-- wrap. At most 32 calls, where a call per number cost a device that lost 1,000 fixes 1,000.
local seen_written = false
local function set_bits(from, to, bit)
  local byte = bit == '1' and '\255' or '\0'
  while from <= to and from % 8 ~= 0 do
    redis.call('SETBIT', seen_key, string.format('%d', from), bit)
    from = from + 1
  end
  local bytes = math.floor((to - from + 1) / 8)
  if bytes > 0 then
    redis.call('SETRANGE', seen_key, string.format('%d', from / 8), string.rep(byte, bytes))
    from = from + bytes * 8
  end
  for n = from, to do redis.call('SETBIT', seen_key, string.format('%d', n), bit) end
end
local function set_numbers(first, last, bit)
  if first > last then return end
  seen_written = true
  local from, to = first % WINDOW, last % WINDOW
  if from <= to then
    set_bits(from, to, bit)
  else
    set_bits(from, WINDOW - 1, bit)
    set_bits(0, to, bit)
  end
end

local accepted, duplicates, applied = {}, 0, {}
local steady, last_valid = st.zq, nil
local fixes = cmsgpack.unpack(ARGV[4])
for _, fix in ipairs(fixes) do
  local seq = fix[1]
  local fresh = true
  if seq > hseq then
    if hseq < 0 or seq - hseq >= WINDOW then
      -- Nothing below seq within the window has been seen.
      redis.call('DEL', seen_key)
      run_start = seq
    elseif seq > hseq + 1 then
      -- A gap ends the run: the bitmap takes over the run's numbers still in the window, and
      -- the numbers skipped, as not seen.
      set_numbers(math.max(run_start, seq - WINDOW + 1), hseq, '1')
      set_numbers(hseq + 1, seq - 1, '0')
      run_start = seq
    end
    hseq = seq
  elseif seq <= hseq - WINDOW then
    -- Older than the window: new to the ingest (the persister's unique key drops a repeat).
  elseif seq >= run_start then
    fresh = false
  else
    seen_written = true
    fresh = redis.call('SETBIT', seen_key, string.format('%d', seq % WINDOW), '1') == 0
  end
  if not fresh then
    duplicates = duplicates + 1
  else
    accepted[#accepted + 1] = fix
    local t = fix[2]
    -- A fix older than the latest applied one goes to history only: it can never change a
    -- state that a newer fix set.
    if t > latest then
      latest = t
      applied[#applied + 1] = seq
      local lon, lat, battery, strap, case_state, evidence = fix[3], fix[4], fix[7], fix[8], fix[9], fix[10]
      if evidence then
        put('lv', t)
        clear('c:location_unavailable:', seq, t)
        steady = steady or steady_evidence()
        if string.upper(evidence) ~= steady then
          for i, zone in ipairs(config_zones()) do step_zone(zone, string.sub(evidence, i, i), seq, t) end
          steady = nil
        end
        last_valid = fix
      else
        if not st.lv then put('lv', t) end
        if t - tonumber(st.lv) >= unavailable_after then
          raise('c:location_unavailable:', 'location_unavailable', 'serious', nil, tostring(seq), t, seq)
        end
      end
      if battery then
        if battery <= critical then
          raise('c:battery_critical:', 'battery_critical', 'serious', nil, tostring(seq), t, seq)
        elseif battery >= critical + 5 then
          clear('c:battery_critical:', seq, t)
        end
        if battery <= low then
          raise('c:low_battery:', 'low_battery', 'serious', nil, tostring(seq), t, seq)
        elseif battery >= low + 5 then
          clear('c:low_battery:', seq, t)
        end
      end
      -- Tamper conditions are closed only by an officer's note (clear.lua), never by the device.
      if strap == 'cut' then
        raise('c:strap_tamper:', 'strap_tamper', 'critical', nil, tostring(seq), t, seq)
      end
      if case_state == 'opened' then
        raise('c:device_case_opened:', 'device_case_opened', 'critical', nil, tostring(seq), t, seq)
      end
    end
  end
end

-- Any upload, even of duplicates only, shows the device is alive.
put('rx', now_ms)
clear('c:no_signal:', '', now_ms)
schedule_no_signal(now_ms + (tonumber(cfg.ivl) + tonumber(cfg.sigbuf)) * 1000)
if last_valid then
  put('vt', last_valid[2]); put('vlon', last_valid[3]); put('vlat', last_valid[4]); put('vseq', last_valid[1])
end
put('hseq', hseq)
if run_start ~= st.rs then put('rs', run_start) end
put('lt', latest)
save_zones()
if zones then
  steady = steady or steady_evidence()
  if steady ~= st.zq then put('zq', steady) end
end
save_state()
-- State outlives its order by a week at most, unless a renewal is published.
local expire_at = tonumber(cfg.ends) + 7 * 86400000
if fresh_state then redis.call('PEXPIREAT', st_key, string.format('%d', expire_at)) end
if seen_written then redis.call('PEXPIREAT', seen_key, string.format('%d', expire_at)) end
if #accepted > 0 then
  -- The fixes as they came, unless some were duplicates: no second packing.
  local packed = #accepted == #fixes and ARGV[4] or cmsgpack.pack(accepted)
  redis.call('XADD', pings_key, '*', 'dev', cfg.dev, 'ord', cfg.order, 'case', cfg.case or '',
             'rx', string.format('%d', now_ms), 'd', packed)
end
return {'ok', #accepted, duplicates, events, crossings and cmsgpack.pack({applied, previous}) or ''}
