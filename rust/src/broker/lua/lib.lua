-- Shared helpers, prepended to the scripts that need them (see scripts.rs).
--
-- Every Redis key wakaq uses (docs/internals.md has the long version). N is the key namespace: the key prefix P
-- (default "wakaq") on a single Redis, "{P}" on a Redis Cluster (the hash tag puts one app's keys in one slot):
--   N:<queue>             list  pending elements, consumed from the left
--   N:eta:<queue>         zset  eta payloads scored by due unix time (Redis server clock)
--   N:bell:<queue>        list  doorbell: at most one token, idle children BLPOP on it
--   N:bcast:<daemon>      list  broadcast tasks for one registered daemon's children (+ N:bell:bcast:<daemon>),
--                               pushed by broadcast.lua; recorded failed if the daemon leaves before running them
--   N:inflight:<daemon>   hash  "<pid>:<seq>" -> "<queue>\n<element>", claimed and not yet acknowledged
--   N:daemons             set   registered worker daemons
--   N:paused              set   names of paused queues: the claim scripts skip them (pause.lua)
--   N:hb:<daemon>         str   heartbeat with a TTL; JSON info
--   N:failed:<queue>      list  failure records (msgpack maps), newest first, trimmed (broadcasts: N:failed:broadcast)
--   N:sched:<id>:<slot>   str   a scheduler's claim on one fire slot (SET NX EX; fire.lua)
--   N:rate:queue:<queue>  hash  a rate-limited queue's GCRA state: tat, wake (us of Redis time; claim_limited.lua)
--   N:rate:task:<task>    hash  the same for a rate-limited task
--   N:parked:<queue>:<t>  list  elements of rate-limited task t parked while it had no budget (part of <queue>)
--   N:parked              set   registry of parked lists that may hold elements: "<queue>\31<t>" (release_parked.lua)
--   N:conc:<task>:<key>   hash  per-key concurrency permits of one key: "<in-flight key>\n<pid>:<seq>" -> 1, a holder's
--                               in-flight entry; stale (dropped when counted) once that entry is gone (lua/conc.lua)
--   N:cwait:<task>:<key>  list  that key's waiters, "<queue>\n<element>", parked by claim_limited.lua while it was full
--   N:conc                set   registry of keys with permits or waiters: "<task>\31<key>" (conc_sweep.lua)
--   N:daemon:<daemon>     hash  info (JSON, as in the heartbeat) and seen (server time): kept until reaped
--   N:stats:<daemon>      hash  "<counter>\x1f<queue>\x1f<task>" -> count: a registered daemon's task counters
--   N:stats:retired       hash  the same fields: counters of daemons that stopped or were reaped, plus tasks
--                               dead-listed by a script (counted here, where it happens)
--   N:result:<id>         hash  a results task's record: status, value, error_type, error, at (`settle` below)
--   N:result:<id>:ready   list  one token per final write of that record, for waiters
--   N:unique:<key>        str   a uniqueness lock: the id of the task holding it, PX ttl (enqueue_unique.lua)
--   N:wf:<id>             hash  a workflow (chain/group): status, outcome, its tree of nodes (workflow.lua), PX TTL
--   N:wf:<id>:results     hash  node -> packed result of a finished group member (HSETNX: counted once), PX TTL
--   N:wf:<id>:ready       list  one token when the workflow ends, for waiters, PX TTL
--   N:progress:<id>       hash  a running task's last progress: v (msgpack {done, total, info}), at; PX ttl (progress.lua)
--   N:debounce:<key>      hash  a debounce window: the pending call's payload, due and settlement; PX = the window's
--                               rest (enqueue_debounce.lua)
--   N:wf:recent           zset  recent workflow ids scored by start time (Redis clock, s), trimmed to the newest
--                               1,000 and PX TTL of the longest-lived one, by workflow_start.lua (the dashboard's list)
--   N:history:<day>       hash  per-minute counter totals of one UTC day, written by the dashboard, expiring
-- Every name is built by broker/keys.rs (python/wakaq/keys.py fills in its templates).
-- An element is a payload, or byte 0xc1 + one byte delivery count + payload (a redelivered task).
--
-- NOTE: scripts touch the keys passed in KEYS (a Redis Cluster requirement), and the result records and locks
-- named in a settlement (ARGV): those are named by payloads only the caller has read, and share the app's slot.
-- Scripts that return
-- in-flight entries to their queues get the queues as "targets": KEYS[first ..] = lists, then bells, then failed
-- lists, n of each, and the queue names in ARGV (`targets` below), plus N:stats:retired; an entry whose queue was not passed is left in
-- place and its queue named in the reply, so the caller can call again with that queue's keys.

local function ring(bell)
  if redis.call('LLEN', bell) == 0 then
    redis.call('RPUSH', bell, '1')
  end
end

-- The paused queues (N:paused, pause.lua) as a table name -> true, or nil when nothing is paused (or `key` is nil).
-- NOTE: nothing paused, the usual case, costs one EXISTS of a missing key and builds no table: about 0.27 us of
-- Redis time per claim call here, against 0.45-0.6 us for an SMEMBERS into an empty table (docs/internals.md, "Pause and resume")
local function paused_set(key)
  if not key or redis.call('EXISTS', key) == 0 then return nil end
  local out = {}
  for _, q in ipairs(redis.call('SMEMBERS', key)) do out[q] = true end
  return out
end

-- Add an eta payload due at `due` (unix seconds) to the zset `key`, deduped (ZADD NX on the payload bytes); when it
-- is new and the earliest of its set, publish the set's key on `channel` so worker parents re-plan their promotion
-- sleep (enqueue_eta.lua, and finish.lua's "eta" mode). Returns 1 when added.
local function add_eta(key, due, payload, channel)
  local added = redis.call('ZADD', key, 'NX', due, payload)
  if added == 1 then
    local first = redis.call('ZRANGE', key, 0, 0)
    if first[1] == payload then
      redis.call('PUBLISH', channel, key)
    end
  end
  return added
end

-- msgpack writers for failure records (Lua 5.1 has no string.pack)
local function be(n, bytes)
  local out = {}
  for i = bytes, 1, -1 do
    out[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(out)
end

local function mp_raw(s, fix, m8, m16, m32)
  local n = #s
  if fix and n < 32 then return string.char(fix + n) .. s end
  if m8 and n < 256 then return string.char(m8) .. string.char(n) .. s end
  if n < 65536 then return string.char(m16) .. be(n, 2) .. s end
  return string.char(m32) .. be(n, 4) .. s
end

local function mp_str(s) return mp_raw(s, 0xa0, 0xd9, 0xda, 0xdb) end
local function mp_bin(s) return mp_raw(s, nil, 0xc4, 0xc5, 0xc6) end
local function mp_uint(n) return string.char(0xcf) .. be(n, 8) end

-- A failure record: {queue, payload, reason, traceback, time_ms, worker, deliveries}.
local function record(queue, payload, reason, traceback, worker, deliveries)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return string.char(0x87)
    .. mp_str('queue') .. mp_str(queue)
    .. mp_str('payload') .. mp_bin(payload)
    .. mp_str('reason') .. mp_str(reason)
    .. mp_str('traceback') .. mp_str(traceback)
    .. mp_str('time_ms') .. mp_uint(ms)
    .. mp_str('worker') .. mp_str(worker)
    .. mp_str('deliveries') .. mp_uint(deliveries)
end

local function push_failed(key, rec, keep)
  redis.call('LPUSH', key, rec)
  redis.call('LTRIM', key, 0, keep - 1)
end

-- (delivery count, payload) of an element
local function split(element)
  if string.byte(element, 1) == 0xc1 and #element >= 2 then
    return string.byte(element, 2), string.sub(element, 3)
  end
  return 0, element
end

-- The name of the task in a payload (msgpack map or WakaQ JSON), '?' when it cannot be read.
-- NOTE: wakaq writes "name" first, so it is read straight from the bytes: cmsgpack cannot unpack ext types
-- (datetimes, Decimals in the args); cmsgpack/cjson are the fallback for other writers.
local function task_name(payload)
  if string.sub(payload, 2, 6) == '\164name' then
    local h = string.byte(payload, 7) or 0
    if h >= 0xa0 and h <= 0xbf then return string.sub(payload, 8, 7 + h - 0xa0) end
    if h == 0xd9 then return string.sub(payload, 9, 8 + (string.byte(payload, 8) or 0)) end
  end
  local ok, t
  if string.sub(payload, 1, 1) == '{' then
    ok, t = pcall(cjson.decode, payload)
  else
    ok, t = pcall(cmsgpack.unpack, payload)
  end
  if ok and type(t) == 'table' and type(t['name']) == 'string' then return t['name'] end
  return '?'
end

-- Bounds of the task names counted by scripts (count_retired)
local NAME_MAX = 200
local RETIRED_FIELDS_MAX = 20000

-- `retired`: the N:stats:retired hash.
-- NOTE: the name comes from the payload, and garbage payloads must not add a field each: a name that does not look
-- like a task name (letters, digits, _ . : - and non-ASCII bytes, at most NAME_MAX bytes) counts under '?', and so
-- does any name new to the hash once it has RETIRED_FIELDS_MAX fields (the daemons' own counters, folded in by
-- retire_stats, come from their registered task names and are not capped).
local function count_retired(retired, counter, queue, payload)
  if string.sub(queue, 1, 6) == 'bcast:' then queue = 'broadcast' end  -- as the children count broadcasts
  local cell = counter .. '\31' .. queue .. '\31'
  local name = task_name(payload)
  if #name > NAME_MAX or not string.find(name, '^[%w_%.:%-\128-\255]+$') then name = '?' end
  if name ~= '?' and redis.call('HEXISTS', retired, cell .. name) == 0
      and redis.call('HLEN', retired) >= RETIRED_FIELDS_MAX then
    name = '?'
  end
  redis.call('HINCRBY', retired, cell .. name, 1)
end

-- Fold a daemon's task counters (`stats`, its N:stats:<daemon>) into the retired totals and drop its stats and
-- info (`info`, its N:daemon:<daemon>) (retire.lua, reap.lua).
local function retire_stats(retired, stats, info)
  local all = redis.call('HGETALL', stats)
  for i = 1, #all, 2 do
    redis.call('HINCRBY', retired, all[i], all[i + 1])
  end
  redis.call('DEL', stats, info)
end

-- A daemon leaves (reaped, or stopping) with broadcasts still in its list `list`: each is recorded in `failed`
-- (N:failed:broadcast) with `reason` and counted dead, never dropped silently; then the list and its bell go.
-- Returns how many were recorded.
local function record_broadcasts(list, bell, failed, retired, queue, reason, worker, keep)
  local left = redis.call('LRANGE', list, 0, -1)
  for _, element in ipairs(left) do
    local count, payload = split(element)
    push_failed(failed, record(queue, payload, reason, '', worker, count), keep)
    count_retired(retired, 'dead', queue, payload)
  end
  redis.call('DEL', list, bell)
  return #left
end

-- Queue targets from KEYS[first .. first+3n-1] (n lists, n bells, n failed lists) and the n queue names in
-- ARGV[afirst ..]: name -> {list, bell, failed, retired} (`retired`: the N:stats:retired key, also passed in KEYS).
local function targets(first, n, afirst, retired)
  local t = {}
  for i = 0, n - 1 do
    t[ARGV[afirst + i]] = {KEYS[first + i], KEYS[first + n + i], KEYS[first + 2 * n + i], retired}
  end
  return t
end

-- The queue name of an in-flight entry ("<queue>\n<element>"), nil when malformed.
local function entry_queue(entry)
  local nl = string.find(entry, '\n', 1, true)
  if not nl then return nil end
  return string.sub(entry, 1, nl - 1)
end

-- Redis's clock as "<seconds>.<micros>" (the `at` of result records, the same clock as every due time).
local function now_text()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- Settle a task's opt-in state inside the script that moves it: write its result record (`s.result`, '' = it stores
-- none; first writer wins: a final status is never overwritten) and, on a final status, release its uniqueness lock
-- (`s.lock`, '' = none) if it still holds this task's id. `s` comes from the Rust caller, which read the task's meta
-- with the one meta parser (codec/meta.rs): {result, ready, ttl_ms, lock, id}. `extra`: field/value pairs to store.
-- NOTE: the keys come in ARGV, not KEYS: they are named by the payload, which only the caller has read; every key of
-- an app shares its hash slot, so a cluster node holds them all.
-- A workflow step's record also holds `wf` (its workflow's key) and `node`, written when the step was enqueued
-- (workflow.lua); its final write is the step's end in the workflow (`workflow_settled`, defined in workflow.lua),
-- in this same script: whichever script settles the step (ack, failure, dead-listing, hard timeout, cancel, purge).
local FINAL = {done = true, failed = true, cancelled = true}
local workflow_settled
local function settle(s, status, extra)
  if s == nil then return end
  local final = FINAL[status]
  if final and s.lock ~= '' and redis.call('GET', s.lock) == s.id then
    redis.call('DEL', s.lock)
  end
  if s.result == '' then return end
  local was = redis.call('HMGET', s.result, 'status', 'wf', 'node')
  if FINAL[was[1] or ''] then return end
  redis.call('HSET', s.result, 'status', status, 'at', now_text(), unpack(extra))
  redis.call('PEXPIRE', s.result, s.ttl)
  if final then
    redis.call('RPUSH', s.ready, '1')
    redis.call('PEXPIRE', s.ready, s.ttl)
    if was[2] then workflow_settled(was[2], was[3], status, extra) end
  end
end

-- A settlement from 5 ARGV values starting at `a` (result key, ready key, ttl ms, lock key, task id); nil when the
-- result key and the lock are both '' (a task with nothing to settle).
local function settlement(a)
  if ARGV[a] == '' and ARGV[a + 3] == '' then return nil end
  return {result = ARGV[a], ready = ARGV[a + 1], ttl = tonumber(ARGV[a + 2]), lock = ARGV[a + 3], id = ARGV[a + 4]}
end

-- Settlements of the entries a caller may dead-list, from ARGV[a ..]: k groups of a field then 5 values (see
-- `settlement`). field -> settlement, or false for a field the caller read and found nothing to settle in.
local function settlements(a, k)
  local t = {}
  for i = 0, k - 1 do
    local b = a + 6 * i
    t[ARGV[b]] = settlement(b + 1) or false
  end
  return t
end

-- Return one in-flight entry ("<queue>\n<element>") to the front of its queue (`to`: its targets); with bump,
-- count this delivery and dead-list the task at max_deliveries, settling it as failed ("WorkerLost") with `s` (see
-- `settle`). Returns 1 when requeued, 0 when dead-listed.
local function give_back(to, entry, bump, max_deliveries, worker, keep, reason, s)
  local nl = string.find(entry, '\n', 1, true)
  if not nl then return 0 end
  local queue = string.sub(entry, 1, nl - 1)
  local element = string.sub(entry, nl + 1)
  local count, payload = split(element)
  if bump then
    count = count + 1
    if count >= max_deliveries then
      push_failed(to[3], record(queue, payload, reason, '', worker, count), keep)
      count_retired(to[4], 'dead', queue, payload)
      settle(s, 'failed', {'error_type', 'WorkerLost', 'error', reason})
      return 0
    end
    element = string.char(0xc1, count) .. payload
  end
  redis.call('LPUSH', to[1], element)
  ring(to[2])
  return 1
end

-- An entry that this call would dead-list but whose payload may carry meta the caller did not read (it was claimed
-- after the caller looked): it stays in flight for the caller's next pass. Plain payloads do not contain "meta".
local function unread(entry, bump, max_deliveries, known)
  if not bump or known ~= nil then return false end
  local nl = string.find(entry, '\n', 1, true)
  if not nl then return false end
  local count, payload = split(string.sub(entry, nl + 1))
  return count + 1 >= max_deliveries and string.find(payload, 'meta', 1, true) ~= nil
end

-- Entries of an in-flight hash (its HGETALL reply) whose field starts with `fp` (and is in the set `only`, if
-- given), newest claim first: LPUSHed in this order, the oldest claim ends up at the front of its queue. A field
-- is "<pid>:<seq>" and seqs count per child, so the claims of several children interleave by seq.
local function newest_first(all, fp, only)
  local picked = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, #fp) == fp and (only == nil or only[f]) then
      local pid, seq = string.match(f, '^(%d*):(%d+)$')
      table.insert(picked, {tonumber(seq) or 0, tonumber(pid) or 0, f, all[i + 1]})
    end
  end
  table.sort(picked, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return a[2] > b[2]
  end)
  return picked
end
