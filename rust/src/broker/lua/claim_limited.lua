-- claim.lua with global rate limits (GCRA, Redis's clock): used only by children of an app with a rate limit on a
-- queue or a task; claim.lua itself is unchanged, so an app without limits pays nothing.
-- KEYS[1] in-flight hash
-- KEYS[2 .. n+1] queue lists in priority order (index 1: the daemon's broadcasts, never limited),
-- KEYS[n+2 .. 2n+1] their bells, KEYS[2n+2 .. 3n+1] their rate buckets (N:rate:queue:<name>; used when limited),
-- KEYS[3n+2 .. 3n+1+m] the m limited tasks' buckets (N:rate:task:<name>),
-- KEYS[3n+2+m ..] parked lists N:parked:<queue>:<task> of queues 2..n: queue i, task j at 3n+1+m + (i-2)*m + j,
-- then (optional) the registry of parked lists N:parked: a list is added to it when elements are parked there and
-- removed when a claim empties it (broker/keys.rs `parked_registry`), then (optional, with the registry) the
-- registered daemons N:daemons: a daemon not among them claims nothing (as in claim.lua), then (optional, with the
-- daemons) the paused queues N:paused: skipped, their parked lists too (as in claim.lua), then (with c > 0 below)
-- the registry of concurrency keys N:conc (lua/conc.lua)
-- ARGV[1] field prefix "<pid>:", ARGV[2] first seq, ARGV[3] max tasks, ARGV[4] acks k, ARGV[5 .. 4+k] acked seqs,
-- then from a = 5+k: ARGV[a] n, ARGV[a+1] m, ARGV[a+2] longest useful wait (us: the child's wait_timeout),
-- ARGV[a+3 .. a+2+n] queue names, then per queue T and tau (us, T = 0: not limited), then per task name, T, tau,
-- then per-key concurrency (lua/conc.lua): c, per concurrency-limited task its name, limit, permit key prefix
-- (N:conc:<task>:) and waiter key prefix (N:cwait:<task>:), then the queue and bell key prefixes, then r and r pairs
-- (task, key): the keys of this child's tasks settled since its last claim, whose waiters get the room they left
-- Returns {} when nothing is pending, {queue index (0-based), element, ...} when claimed, or
-- {-1, wait (us), starved queue indexes (0-based)...} when the only pending work is out of budget (wait 0: parked
-- elements, call again at once).
--
-- NOTE: GCRA (generic cell rate algorithm): a bucket is its theoretical arrival time `tat` (us); a task may start at
-- `now` when tat - tau <= now, and each start moves tat by T (= period / count). tau = (burst - 1) * T, so at most
-- `burst` start at once after a quiet spell and the long-run rate is exactly 1 / T. `wake` staggers waiting children
-- one token apart, so a token wakes one child, not all of them.
local prefix = ARGV[1]
local seq = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local nacks = tonumber(ARGV[4])
for lo = 1, nacks, 1000 do
  local fields = {}
  for i = lo, math.min(nacks, lo + 999) do fields[#fields + 1] = prefix .. ARGV[4 + i] end
  redis.call('HDEL', KEYS[1], unpack(fields))
end
local a = 5 + nacks
local n, m, horizon = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
local names, qlim, tlim = a + 3, a + 3 + n, a + 3 + 3 * n
-- per-key concurrency: limited task name -> {limit, permit prefix, waiter prefix}; nil when none is limited
local cb = tlim + 3 * m
local conc, cregistry = nil, KEYS[3 * n + 5 + m + (n - 1) * m]
local cqp, cbp = ARGV[cb + 1 + 4 * tonumber(ARGV[cb])], ARGV[cb + 2 + 4 * tonumber(ARGV[cb])]
for q = 0, tonumber(ARGV[cb]) - 1 do
  local o = cb + 1 + 4 * q
  conc = conc or {}
  conc[ARGV[o]] = {tonumber(ARGV[o + 1]), ARGV[o + 2], ARGV[o + 3]}
end
if conc then
  -- the keys of tasks this child settled: their waiters get the room (the acks above already dropped their entries)
  local rb = cb + 3 + 4 * tonumber(ARGV[cb])
  for q = 0, tonumber(ARGV[rb]) - 1 do
    local t, key = ARGV[rb + 1 + 2 * q], ARGV[rb + 2 + 2 * q]
    local l = conc[t]
    if l then conc_room(cregistry, t .. '\31' .. key, l[2] .. key, l[3] .. key, l[1], l[1], cqp, cbp) end
  end
end
if max < 1 then return {} end
-- NOTE: walking a queue parks this many elements of out-of-budget tasks at most per call (bounded script time)
local PARK_MAX = 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function fmt(x) return string.format('%.3f', x) end

local function bucket(key, T, tau)
  local s = redis.call('HMGET', key, 'tat', 'wake')
  return {key = key, T = T, tau = tau, tat = math.max(tonumber(s[1]) or now, now), wake = tonumber(s[2]) or 0,
    used = 0}
end

-- tokens left now
local function budget(b)
  local slack = now + b.tau - (b.tat + b.used * b.T)
  if slack < 0 then return 0 end
  return math.floor(slack / b.T) + 1
end

local function expire(b, tat)
  redis.call('PEXPIRE', b.key, math.ceil((math.max(tat, b.wake) - now) / 1000) + 1000)
end

local function save(b)
  if b.used == 0 then return end
  local tat = b.tat + b.used * b.T
  redis.call('HSET', b.key, 'tat', fmt(tat))
  expire(b, tat)
end

-- us until the next token; the caller waits that long, or for the slot after the children already waiting
local function reserve(b)
  local w = math.max(b.wake, b.tat - b.tau)
  if w - now > horizon then return horizon end  -- NOTE: beyond one wait: the child comes back anyway, reserve nothing
  b.wake = w + b.T
  redis.call('HSET', b.key, 'wake', fmt(b.wake))
  expire(b, b.tat)
  return w - now
end

local tasks, tbuckets = {}, {}
for j = 1, m do tasks[ARGV[tlim + 3 * (j - 1)]] = j end
local function tbucket(j)
  if not tbuckets[j] then
    local o = tlim + 3 * (j - 1)
    tbuckets[j] = bucket(KEYS[3 * n + 1 + j], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]))
  end
  return tbuckets[j]
end
local function parked(i, j) return KEYS[3 * n + 1 + m + (i - 2) * m + j] end
local registry = KEYS[3 * n + 2 + m + (n - 1) * m]
local daemons = KEYS[3 * n + 3 + m + (n - 1) * m]
if max >= 1 and daemons and redis.call('SISMEMBER', daemons, ARGV[#ARGV]) == 0 then return {-2} end
local paused = paused_set(KEYS[3 * n + 4 + m + (n - 1) * m])
local function member(i, j) return ARGV[names + i - 1] .. '\31' .. ARGV[tlim + 3 * (j - 1)] end
-- NOTE: the registry is told once per list and call
local told = {}
local function tell(i, j, add)
  local mb = member(i, j)
  if registry and told[mb] ~= add then
    redis.call(add and 'SADD' or 'SREM', registry, mb)
    told[mb] = add
  end
end

local wait_on, starved = nil, {}
local function hungry(b)
  if wait_on == nil or b.tat - b.tau < wait_on.tat - wait_on.tau then wait_on = b end
end

local function has_parked(i)
  for j = 1, m do
    if redis.call('LLEN', parked(i, j)) > 0 then return true end
  end
  return false
end

-- Per-key concurrency of element e of queue i (task `name`), about to be claimed at position pos of its claim: true
-- when its key is full and it was parked instead; otherwise it holds a permit of its key (or needs none).
-- NOTE: live counts are read once per key and call, and counted on here: the in-flight entries of this claim are
-- written at its end, so a recount would take this call's own permits for stale ones.
local held = {}
local function conc_parked(i, name, e, pos)
  local l = conc and name and conc[name]
  if not l then return false end
  local key = conc_key(select(2, split(e)))
  if key == nil then return false end
  local pk, member = l[2] .. key, name .. '\31' .. key
  if held[pk] == nil then held[pk] = conc_live(pk) end
  redis.call('SADD', cregistry, member)
  if held[pk] < l[1] then
    redis.call('HSET', pk, KEYS[1] .. '\n' .. prefix .. string.format('%d', seq + pos), '1')
    held[pk] = held[pk] + 1
    return false
  end
  redis.call('RPUSH', l[3] .. key, ARGV[names + i - 1] .. '\n' .. e)
  return true
end

-- parked elements of queue i whose task has budget, up to `want`
local function unpark(i, want, out)
  for j = 1, m do
    if #out >= want then return end
    local list = parked(i, j)
    if redis.call('LLEN', list) > 0 then
      local b = tbucket(j)
      local k = math.min(want - #out, budget(b))
      if k > 0 then
        for _, e in ipairs(redis.call('LPOP', list, k)) do
          if not conc_parked(i, ARGV[tlim + 3 * (j - 1)], e, #out) then
            out[#out + 1] = e
            b.used = b.used + 1
          end
        end
        if registry and redis.call('LLEN', list) == 0 then tell(i, j, false) end
      else
        hungry(b)
      end
    end
  end
end

-- up to `want` elements from the queue list; elements of limited tasks without budget go to their parked list
local function take(i, key, want, out)
  local moved = 0
  while #out < want and moved < PARK_MAX do
    local items = redis.call('LPOP', key, math.min(want - #out, PARK_MAX - moved))
    if not items then return moved, false end
    for _, e in ipairs(items) do
      local name = i > 1 and (m > 0 or conc) and task_name(select(2, split(e)))
      local j = m > 0 and name and tasks[name]
      local b = j and tbucket(j)
      if b and budget(b) == 0 then
        redis.call('RPUSH', parked(i, j), e)
        tell(i, j, true)
        moved = moved + 1
        hungry(b)
      elseif conc_parked(i, name, e, #out) then
        moved = moved + 1
      else
        if b then b.used = b.used + 1 end
        out[#out + 1] = e
      end
    end
  end
  return moved, moved >= PARK_MAX
end

local function claim(i, items, qb)
  local queue = ARGV[names + i - 1]
  for lo = 1, #items, 500 do
    local pairs_ = {}
    for j = lo, math.min(#items, lo + 499) do
      pairs_[#pairs_ + 1] = prefix .. string.format('%d', seq + j - 1)
      pairs_[#pairs_ + 1] = queue .. '\n' .. items[j]
    end
    redis.call('HSET', KEYS[1], unpack(pairs_))
  end
  if qb then qb.used = #items; save(qb) end
  for _, b in pairs(tbuckets) do save(b) end
  if redis.call('LLEN', KEYS[1 + i]) > 0 and (qb == nil or budget(qb) > 0) then ring(KEYS[1 + n + i]) end
  table.insert(items, 1, i - 1)
  return items
end

-- one queue: its claim reply, or nil to go on with the next
local function visit(i)
  local key = KEYS[1 + i]
  local T = tonumber(ARGV[qlim + 2 * (i - 1)])
  local qb, want = nil, max
  if T > 0 then
    qb = bucket(KEYS[1 + 2 * n + i], T, tonumber(ARGV[qlim + 2 * (i - 1) + 1]))
    want = math.min(max, budget(qb))
  end
  if want == 0 then
    if redis.call('LLEN', key) > 0 or (i > 1 and has_parked(i)) then
      hungry(qb)
      starved[#starved + 1] = i - 1
    end
    return nil
  end
  local out = {}
  if m > 0 and i > 1 then unpark(i, want, out) end
  local _, again = take(i, key, want, out)
  if #out > 0 then return claim(i, out, qb) end
  if again then return {-1, 0} end
  return nil
end

-- NOTE: a paused queue is neither claimed from nor starved: its budget is not spent and no wait is reserved for it
for i = 1, n do
  if not (paused and paused[ARGV[names + i - 1]]) then
    local reply = visit(i)
    if reply then return reply end
  end
end
if wait_on == nil then return {} end
local reply = {-1, math.max(0, math.ceil(reserve(wait_on)))}
for _, s in ipairs(starved) do reply[#reply + 1] = s end
return reply
