-- wrk script: each request is an upload of `batch` pings (1: a single ping object) by one
-- device drawn at random from the devices file ("id secret lon lat" per line), with that
-- device's next sequence numbers from `first` on, each fix one second after the last, the
-- first at `base` (epoch seconds); each run starts where the last left off, so no ping repeats,
-- and a position that walks about its home, a few metres per fix, now and then out of the home
-- zone and into the zones around it.
--   wrk -t1 -c32 -d20s -s pings.lua http://127.0.0.1:8100 -- devices.txt 1 1764000000 0
local devices = {}
local batch, base

function init(args)
  for line in io.lines(args[1]) do
    local id, secret, lon, lat = line:match("^(%S+) (%S+) (%S+) (%S+)$")
    devices[#devices + 1] = {id = id, auth = "Bearer " .. secret, home_lon = tonumber(lon), home_lat = tonumber(lat),
                             lon = tonumber(lon), lat = tonumber(lat), seq = 0}
  end
  batch = tonumber(args[2])
  base = tonumber(args[3])
  for _, d in ipairs(devices) do d.seq = tonumber(args[4]) end
  math.randomseed(os.time())
end

local function ping(d)
  d.seq = d.seq + 1
  local t = base + d.seq
  -- About 10 m a step (1e-4 degrees), pulled back towards home: a walk of a few hundred metres.
  d.lat = d.lat + (math.random() - 0.5) * 0.0002 + (d.home_lat - d.lat) * 0.01
  d.lon = d.lon + (math.random() - 0.5) * 0.0002 + (d.home_lon - d.lon) * 0.01
  return string.format(
    '{"device_id":"%s","seq":%d,"fix_time":"%s","latitude":%.6f,"longitude":%.6f,"accuracy_m":%.1f,"battery_percent":80}',
    d.id, d.seq, os.date("!%Y-%m-%dT%H:%M:%SZ", t), d.lat, d.lon, 5 + math.random() * 15)
end

function request()
  local d = devices[math.random(#devices)]
  local body
  if batch == 1 then
    body = ping(d)
  else
    local parts = {}
    for i = 1, batch do parts[i] = ping(d) end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/v1/pings",
    {["Content-Type"] = "application/json", ["X-Device-Id"] = d.id, ["Authorization"] = d.auth}, body)
end
