-- A straight path between two consecutive fixes crossed an exclusion zone although neither fix
-- fell inside it (sparse fixes jumping across a small zone). ARGV: 1 configuration version,
-- 2 zone id, 3 the two sequence numbers "a,b", 4 the later fix's sequence number, 5 its time.
-- Returns 1 if an alert was raised.
read_config()
if cfg.ver ~= ARGV[1] or not order_active() then return 0 end
local zone = find_zone(ARGV[2])
if not zone or not zone.exclusion then return 0 end
local s, _, _, _, changed = zone_state(zone.id)
local t = tonumber(ARGV[5])
-- Inside already (an alert is open), or the fix is older than the state it would speak to.
if s == 'I' or t < changed or st['c:exclusion_zone_entered:' .. zone.id] then return 0 end
raise(nil, 'exclusion_zone_entered', 'critical', zone.id, ARGV[3], t, ARGV[4] .. 'x', 'crossing')
save_state()
return 1
