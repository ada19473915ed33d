-- wrk script: each request is an upload of `batch` pings (1: a single ping object) by one
-- device of the fleet, as a real fleet reports: every device in turn, each upload carrying the
-- device's next sequence numbers, one after another, and fixes one second apart.
--   wrk -t2 -c64 -d20s -s pings.lua http://127.0.0.1:8100 -- <subjects> <batch> <base> <salt> <threads> <state dir>
-- Thread t of T uploads for devices t, t + T, t + 2T, ... in that order, round and round, so no
-- two threads send for the same device: with a counter of its own per thread, half the uploads
-- of a small fleet were duplicates of the other thread's (cheaper to ingest than new pings,
-- and rare among a million devices). Each thread's place in its round and its devices' last
-- sequence numbers are kept in <state dir>, written when wrk ends and read when the next run
-- starts, so a device's sequence numbers go on from run to run with no gap: a gap of a run's
-- worth made every upload of a million devices, nearly all of them a device's first of its run,
-- start the duplicate window again, while a thousand devices did so once a run.
-- A fix's time is <base> plus its sequence number in seconds, and its position a slow loop of
-- under 100 m about the subject's home (a function of the number, so it too goes on from run to
-- run), a few metres of noise on top: a settled subject's fixes confirm its zones' states.
-- With "sweep <marks directory>" after them, each thread stops once every one of its devices
-- has reported once in this run (bench/harness.py settle); the caller watches for a mark from
-- each thread, and interrupts wrk, which would otherwise wait out its duration.
--
-- The fleet is the formula of bench/fleet.py (device_id_of, secret_of, home_of): the script
-- holds only what the runs change, in flat arrays of numbers (with a million devices read from
-- a file, wrk spent most of a core on its own memory).
local count, batch, base, salt, step, host
-- Globals, so that done() can read them from each thread (thread:get).
seqs, k, state_dir = {}, 0, nil
local share = 0
local cos_lat = math.cos(math.rad(31.23))
local answered = 0

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  count, batch, base, salt = tonumber(args[1]), tonumber(args[2]), tonumber(args[3]), args[4]
  step, state_dir = tonumber(args[5]), args[6]
  host = wrk.headers["Host"]
  math.randomseed(os.time() + tid)
  share = math.floor((count - 1 - tid) / step) + 1
  local saved = io.open(state_dir .. "/" .. tid, "r")
  if saved then
    k = saved:read("*n")
    for i = 1, share do seqs[i] = saved:read("*n") end
    saved:close()
  else
    for i = 1, share do seqs[i] = 0 end
  end
  if args[7] == "sweep" then
    local marks = args[8]
    response = function()
      answered = answered + 1
      if answered == share then
        io.open(marks .. "/" .. tid, "w"):close()
        wrk.thread:stop()
      end
    end
  end
end

function done()
  local highest = 0
  for i, thread in ipairs(threads) do
    local thread_seqs = thread:get("seqs")
    for _, seq in ipairs(thread_seqs) do
      if seq > highest then highest = seq end
    end
    local out = io.open(thread:get("state_dir") .. "/" .. (i - 1), "w")
    out:write(thread:get("k"), "\n", table.concat(thread_seqs, "\n"), "\n")
    out:close()
  end
  io.write("Highest sequence number: ", highest, "\n")
end

local function home(n)
  local east = ((n * 0.6180339887498949) % 1 - 0.5) * 40000
  local north = ((n * 0.7548776662466927) % 1 - 0.5) * 40000
  return 121.47 + east / (111195.0 * cos_lat), 31.23 + north / 111195.0
end

local function ping(n, seq, home_lon, home_lat)
  -- Within 95 m of home: inside the home zone's band (150 m less its 30 m buffer and the fix's
  -- accuracy) and outside every exclusion zone's (250 m away, 60 m wide, 20 m of buffer).
  local phase = n * 2.399963
  local east = 60 * math.sin(seq * 0.05 + phase) + 30 * math.sin(seq * 0.013 + 2 * phase)
  local north = 60 * math.cos(seq * 0.037 + phase) + 30 * math.cos(seq * 0.011 + 3 * phase)
  local lat = home_lat + (north + (math.random() - 0.5) * 10) / 111195.0
  local lon = home_lon + (east + (math.random() - 0.5) * 10) / (111195.0 * cos_lat)
  return string.format(
    '{"device_id":"B%07d","seq":%d,"fix_time":"%s","latitude":%.6f,"longitude":%.6f,"accuracy_m":%.1f,"battery_percent":80}',
    n, seq, os.date("!%Y-%m-%dT%H:%M:%SZ", base + seq), lat, lon, 5 + math.random() * 15)
end

-- The request is written in one string.format, the device's id and secret inside it. Built as
-- strings of their own per device (the id, the secret, wrk.format's header lines), it cost wrk
-- 5.7 µs more per request with a million devices than with a thousand; written this way, 1.1 and
-- 2.3 µs in two runs (against the empty handler, which does the same whatever the device; 4
-- alternating rounds of 8 s each). The load generator's own cost is not the ingest's.
function request()
  local i = k % share + 1
  k = k + 1
  local n = tid + step * (i - 1)
  local home_lon, home_lat = home(n)
  local body
  local first = seqs[i] + 1
  seqs[i] = seqs[i] + batch
  if batch == 1 then
    body = ping(n, first, home_lon, home_lat)
  else
    local parts = {}
    for j = 1, batch do parts[j] = ping(n, first + j - 1, home_lon, home_lat) end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return string.format(
    "POST /v1/pings HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Device-Id: B%07d\r\n"
      .. "Authorization: Bearer %s%07d\r\nContent-Length: %d\r\n\r\n%s",
    host, n, salt, n, #body, body)
end
