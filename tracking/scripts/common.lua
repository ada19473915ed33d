-- Shared by every device script. KEYS: 1 config, 2 state, 3 seen-bitmap, 4 ping stream,
-- 5 alert stream, 6 deadlines, 7 the whole configuration (for the workers): all under the
-- shard's hash tag, so one slot.
--
-- State fields: cv (the configuration's version, set by publish.lua), hseq (highest sequence
-- number seen), rs (where the run of numbers seen one by one up to hseq starts), lt (fix time
-- of the latest fix the state machine applied), vt/vlon/vlat/vseq (the latest valid applied
-- fix), lv (time of the latest valid fix), rx (server time of the latest upload), rlw/rlc (the
-- minute and the count of the device's uploads in it), zs (the zones' state machines, by zone
-- id, as one packed map, see zone_states; each "S|C|n|since|changed|seqs": confirmed state
-- U/I/O, candidate -/I/O, how many fixes and since when the candidate has held, the fix time
-- that set S, the candidate's sequence numbers), zq (the evidence of a fix that would change
-- no zone's state, see ingest.lua; publish.lua drops it with the configuration it was worked
-- out for), nsb (the second whose set holds the no_signal deadline, see ingest.lua), and
-- c:<kind>:<zone> (an open condition: the id of the alert that opened it).
local cfg_key, st_key, seen_key, pings_key, alerts_key, due_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- The configuration's fields (tracking/publishing.py config_fields, plus ver and pub). A script
-- reads them with read_config(); the ingest script is handed them by a caller that holds the
-- same version (use_config), which saves reading the hash on the hot path.
local FIELDS = {'ver', 'order', 'case', 'unit', 'start', 'ends', 'ivl', 'zones', 'N', 'T',
                'lowb', 'critb', 'locT', 'sigbuf', 'dev', 'pub'}
local cfg, zones = {}, nil

local function use_config(fields)
  cfg = fields
end

-- The configuration's zones, in evidence order, parsed when first asked for: a fix that
-- changes no zone's state needs none of them (parsing them was a sixth of the ingest script's
-- time per single ping).
local function config_zones()
  if not zones then
    zones = {}
    for zid, kind in string.gmatch(cfg.zones or '', '(%d+):(%a)') do
      zones[#zones + 1] = {id = zid, exclusion = (kind == 'x'), scheduled = (kind == 'c')}
    end
  end
  return zones
end

local function read_config()
  local values = redis.call('HMGET', cfg_key, unpack(FIELDS))
  local fields = {}
  for i, name in ipairs(FIELDS) do fields[name] = values[i] end
  use_config(fields)
end

-- Whether the device may report now: registered, under an order that has started and not ended.
local function order_active()
  return cfg.order and cfg.order ~= '' and now_ms >= tonumber(cfg.start) and now_ms < tonumber(cfg.ends)
end

-- The state is one msgpack string: one GET and at most one SET per call, whatever changed.
local st, dirty = {}, false
do
  local raw = redis.call('GET', st_key)
  if raw then st = cmsgpack.unpack(raw) end
end
local function put(field, value)
  st[field] = value
  dirty = true
end
local function save_state()
  if dirty then redis.call('SET', st_key, cmsgpack.pack(st), 'KEEPTTL') end
end

local events = 0
local function emit(kind, severity, action, event_id, zone, fixes, at, via)
  redis.call('XADD', alerts_key, '*', 'id', event_id, 'kind', kind, 'sev', severity, 'act', action,
             'dev', cfg.dev, 'ord', cfg.order, 'case', cfg.case or '', 'unit', cfg.unit or '',
             'zone', zone or '', 'fixes', fixes or '', 'at', tostring(at), 'rx', tostring(now_ms),
             'via', via or '')
  events = events + 1
end

-- Raise an alert. With a condition key, not while that condition is still open.
local function raise(condition, kind, severity, zone, fixes, at, cause, via)
  local event_id = cfg.order .. ':' .. kind .. ':' .. (zone or '') .. ':' .. cause
  if condition then
    if st[condition] then return end
    put(condition, event_id)
  end
  emit(kind, severity, 'raise', event_id, zone, fixes, at, via)
end

-- Close an open condition: the device side of it is over (an officer still closes the alert).
local function clear(condition, fixes, at)
  local event_id = st[condition]
  if not event_id then return end
  put(condition, nil)
  local kind, zone = string.match(condition, '^c:([%a_]+):(%d*)$')
  emit(kind, 'info', 'clear', event_id, zone, fixes, at, '')
end

-- The zones' state machines ride in the state as one packed map (zs): an upload that changes
-- no zone, as most do, carries it through as one string instead of unpacking and packing a
-- field per zone. Unpacked when first asked for.
local zone_map = nil
local function zone_states()
  if not zone_map then
    if st.zs then
      zone_map = cmsgpack.unpack(st.zs)
    else
      -- A state written before zs kept each zone in a field of its own, z:<zone>.
      zone_map = {}
      for name, value in pairs(st) do
        local zid = string.match(name, '^z:(%d+)$')
        if zid then zone_map[zid] = value end
      end
    end
  end
  return zone_map
end

-- Write the zones' state machines back into the state, without the fields of a state from
-- before zs.
local function put_zone_states()
  for name in pairs(st) do
    if string.sub(name, 1, 2) == 'z:' then st[name] = nil end
  end
  put('zs', cmsgpack.pack(zone_states()))
end

local function zone_state(zid)
  local value = zone_states()[zid]
  if not value then return 'U', '-', 0, 0, -1, '' end
  local s, c, n, since, changed, seqs = string.match(value, '^(%a)|(.)|(%d+)|(%-?%d+)|(%-?%d+)|(.*)$')
  return s, c, tonumber(n), tonumber(since), tonumber(changed), seqs
end

local function find_zone(zid)
  for _, zone in ipairs(config_zones()) do if zone.id == zid then return zone end end
  return nil
end
