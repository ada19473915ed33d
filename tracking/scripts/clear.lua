-- An officer closes a condition only people can close (strap_tamper, device_case_opened) with
-- a note. ARGV: 1 the condition's kind, 2 its zone id or ''. Returns 1 if one was open.
read_config()
local condition = 'c:' .. ARGV[1] .. ':' .. ARGV[2]
if not st[condition] then return 0 end
clear(condition, '', now_ms)
save_state()
return 1
