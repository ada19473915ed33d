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

-- Duplicates are found by bitmap among the latest WINDOW sequence numbers (a batch holds at
-- most 1,000 pings): 128 bytes per subject.
local WINDOW = 1024
local N, T = tonumber(cfg.N), tonumber(cfg.T)
local low, critical = tonumber(cfg.lowb), tonumber(cfg.critb)
local unavailable_after = tonumber(cfg.locT)
local fresh_state = st.hseq == nil

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
local zone_states = {}
local function loaded(zid)
  local z = zone_states[zid]
  if not z then
    local s, c, n, since, changed, seqs = zone_state(zid)
    z = {s = s, c = c, n = n, since = since, changed = changed, seqs = seqs, dirty = false}
    zone_states[zid] = z
  end
  return z
end

-- Hysteresis: a state changes after N consecutive fixes, or T ms, of the same evidence;
-- a fix in the band ("-") neither counts nor breaks the run.
local function step_zone(zone, mark, seq, t)
  local evidence = string.upper(mark)
  if evidence == '-' then return end
  local z = zone_states[zone.id]
  if not z then
    -- Most fixes confirm the state with no candidate pending ("S|-|..."): nothing to parse.
    local raw = st['z:' .. zone.id]
    if raw and string.sub(raw, 1, 1) == evidence and string.sub(raw, 3, 3) == '-' then return end
    z = loaded(zone.id)
  end
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

local function save_zones()
  for zid, z in pairs(zone_states) do
    if z.dirty then
      put('z:' .. zid, z.s .. '|' .. z.c .. '|' .. z.n .. '|' .. z.since .. '|' .. z.changed .. '|' .. z.seqs)
    end
  end
end

local hseq = tonumber(st.hseq or '-1')
local latest = tonumber(st.lt or '-1')
local crossings = false
for _, zone in ipairs(zones) do crossings = crossings or zone.exclusion end
local previous = crossings and st.vt and {st.vt, st.vlon, st.vlat, st.vseq} or nil

-- Clear the bits of the numbers a gap skipped, hseq+1 .. seq-1 (fewer than WINDOW): SETBIT
-- up to a byte boundary, SETRANGE of zero bytes, SETBIT for the rest, on each side of the ring's
-- wrap. At most 30 calls, where a call per number cost a device that lost 1,000 fixes 1,000.
local function clear_bits(from, to)
  while from <= to and from % 8 ~= 0 do
    redis.call('SETBIT', seen_key, string.format('%d', from), '0')
    from = from + 1
  end
  local bytes = math.floor((to - from + 1) / 8)
  if bytes > 0 then
    redis.call('SETRANGE', seen_key, string.format('%d', from / 8), string.rep('\0', bytes))
    from = from + bytes * 8
  end
  for bit = from, to do redis.call('SETBIT', seen_key, string.format('%d', bit), '0') end
end
local function clear_gap(after, before)
  if before - after < 2 then return end
  local from, to = (after + 1) % WINDOW, (before - 1) % WINDOW
  if from <= to then
    clear_bits(from, to)
  else
    clear_bits(from, WINDOW - 1)
    clear_bits(0, to)
  end
end

local accepted, duplicates, applied = {}, 0, {}
local seen_reset = false
for _, fix in ipairs(cmsgpack.unpack(ARGV[4])) do
  local seq = fix[1]
  local fresh
  if seq > hseq then
    if hseq < 0 or seq - hseq >= WINDOW then
      redis.call('DEL', seen_key)
      seen_reset = true
    else
      clear_gap(hseq, seq)
    end
    redis.call('SETBIT', seen_key, string.format('%d', seq % WINDOW), '1')
    hseq, fresh = seq, true
  elseif seq > hseq - WINDOW then
    fresh = redis.call('SETBIT', seen_key, string.format('%d', seq % WINDOW), '1') == 0
  else
    fresh = true -- older than the window: the persister's unique key drops a repeat
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
        for i, zone in ipairs(zones) do step_zone(zone, string.sub(evidence, i, i), seq, t) end
        put('vt', t); put('vlon', lon); put('vlat', lat); put('vseq', seq)
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
redis.call('ZADD', due_key, string.format('%d', now_ms + (tonumber(cfg.ivl) + tonumber(cfg.sigbuf)) * 1000),
           'ns|' .. cfg.dev)
put('hseq', hseq)
put('lt', latest)
save_zones()
save_state()
-- State outlives its order by a week at most, unless a renewal is published.
local expire_at = tonumber(cfg.ends) + 7 * 86400000
if fresh_state then redis.call('PEXPIREAT', st_key, string.format('%d', expire_at)) end
if seen_reset then redis.call('PEXPIREAT', seen_key, string.format('%d', expire_at)) end
if #accepted > 0 then
  redis.call('XADD', pings_key, '*', 'dev', cfg.dev, 'ord', cfg.order, 'case', cfg.case or '',
             'rx', string.format('%d', now_ms), 'd', cmsgpack.pack(accepted))
end
return {'ok', #accepted, duplicates, events, crossings and cmsgpack.pack({applied, previous}) or ''}
