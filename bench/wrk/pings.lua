-- wrk script: each request is an upload of `batch` pings (1: a single ping object) by one
-- device of the fleet drawn at random, with that device's next sequence numbers from `first`
-- on, each fix one second after the last, the first at `base` (epoch seconds); each run starts
-- where the last left off, so no ping repeats, and a position that walks about its home, a few
-- metres per fix, now and then out of the home zone and into the zones around it.
--   wrk -t2 -c64 -d20s -s pings.lua http://127.0.0.1:8100 -- <subjects> <batch> <base> <first> <salt>
-- With "sweep <threads> <marks directory>" after them, the threads instead walk the fleet in order, one upload per
-- device, and stop when every device has reported once (bench/harness.py settle: as many sweeps
-- as the zones need to confirm their states, a fleet in its steady state).
--
-- The fleet is the formula of bench/tracking_ingest.py (device_id_of, secret_of, home_of), so
-- the script holds only what the run changes (sequence numbers and positions, in flat arrays
-- of numbers): with a million devices read from a file, wrk spent most of a core on its own
-- memory.
local count, batch, base, first, salt
local seqs, lons, lats = {}, {}, {}
local cos_lat = math.cos(math.rad(31.23))
local sweep, step, next_device, answered, share = false, 1, 0, 0, 0

local threads_created = 0
function setup(thread)
  thread:set("tid", threads_created)
  threads_created = threads_created + 1
end

function init(args)
  count, batch, base, first, salt = tonumber(args[1]), tonumber(args[2]), tonumber(args[3]), tonumber(args[4]), args[5]
  math.randomseed(os.time())
  if args[6] == "sweep" then
    -- Thread t of T takes devices t, t + T, t + 2T, ...
    sweep, step, next_device = true, tonumber(args[7]), tid
    share = math.floor((count - 1 - tid) / step) + 1
    local marks = args[8]
    response = function()
      answered = answered + 1
      if answered == share then
        -- wrk waits out its duration even when every thread has stopped: the caller watches
        -- for a mark from each thread, and interrupts it.
        io.open(marks .. "/" .. tid, "w"):close()
        wrk.thread:stop()
      end
    end
  end
end

local function home(n)
  local east = ((n * 0.6180339887498949) % 1 - 0.5) * 40000
  local north = ((n * 0.7548776662466927) % 1 - 0.5) * 40000
  return 121.47 + east / (111195.0 * cos_lat), 31.23 + north / 111195.0
end

local function ping(id, n, home_lon, home_lat)
  local d = n + 1
  local seq = (seqs[d] or first) + 1
  seqs[d] = seq
  -- About 10 m a step (1e-4 degrees), pulled back towards home: a walk of a few hundred metres.
  local lat0, lon0 = lats[d] or home_lat, lons[d] or home_lon
  local lat = lat0 + (math.random() - 0.5) * 0.0002 + (home_lat - lat0) * 0.01
  local lon = lon0 + (math.random() - 0.5) * 0.0002 + (home_lon - lon0) * 0.01
  lats[d], lons[d] = lat, lon
  return string.format(
    '{"device_id":"%s","seq":%d,"fix_time":"%s","latitude":%.6f,"longitude":%.6f,"accuracy_m":%.1f,"battery_percent":80}',
    id, seq, os.date("!%Y-%m-%dT%H:%M:%SZ", base + seq), lat, lon, 5 + math.random() * 15)
end

function request()
  local n
  if sweep then
    n = math.min(next_device, count - 1)
    next_device = next_device + step
  else
    n = math.random(count) - 1
  end
  local digits = string.format("%07d", n)
  local id = "B" .. digits
  local home_lon, home_lat = home(n)
  local body
  if batch == 1 then
    body = ping(id, n, home_lon, home_lat)
  else
    local parts = {}
    for i = 1, batch do parts[i] = ping(id, n, home_lon, home_lat) end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/v1/pings",
    {["Content-Type"] = "application/json", ["X-Device-Id"] = id, ["Authorization"] = "Bearer " .. salt .. digits}, body)
end
