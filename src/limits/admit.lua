-- Admission of one request: the key's rpm (KEYS[1]) and tpm (KEYS[2]) GCRA
-- cells on Redis's clock; both are taken or neither. ARGV: rpm and tpm unit
-- in microseconds (0: no limit), tokens, the period in microseconds.
-- Returns {0, 0} admitted, {1, wait_us} refused by rpm, {2, wait_us} by tpm.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[4])
local function cell(key, unit, units)
  local v = redis.call('HMGET', key, 't', 'u')
  local tat = tonumber(v[1] or '0')
  local was = tonumber(v[2] or '0')
  if tat > now and was > 0 and was ~= unit then
    tat = now + math.ceil((tat - now) / was) * unit
  end
  local cost = unit * units
  local base = math.max(tat, now)
  local used = base - now
  local needed = math.min(cost, period)
  if used + needed > period then return nil, used + needed - period end
  return base + cost, 0
end
local r_unit, t_unit, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local r_tat, t_tat
if r_unit > 0 then
  local n, wait = cell(KEYS[1], r_unit, 1)
  if not n then return {1, wait} end
  r_tat = n
end
if t_unit > 0 then
  local n, wait = cell(KEYS[2], t_unit, tokens)
  if not n then return {2, wait} end
  t_tat = n
end
if r_tat then
  redis.call('HSET', KEYS[1], 't', string.format('%.0f', r_tat), 'u', r_unit)
  redis.call('PEXPIRE', KEYS[1], math.floor((r_tat - now) / 1000) + 1000)
end
if t_tat then
  redis.call('HSET', KEYS[2], 't', string.format('%.0f', t_tat), 'u', t_unit)
  redis.call('PEXPIRE', KEYS[2], math.floor((t_tat - now) / 1000) + 1000)
end
return {0, 0}
