-- Settle a tpm reservation (KEYS[1]) by ARGV[2] tokens (negative: give
-- back) at ARGV[1] microseconds a token; never refills past full.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local unit, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local cost = unit * math.abs(delta)
local new
if delta >= 0 then new = math.max(tat, now) + cost
elseif tat <= now then return 0
else new = math.max(tat - cost, now) end
if new <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('HSET', KEYS[1], 't', string.format('%.0f', new), 'u', unit)
redis.call('PEXPIRE', KEYS[1], math.floor((new - now) / 1000) + 1000)
return 0
