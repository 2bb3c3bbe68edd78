-- Per-key concurrency (`@app.task(concurrency_key=..., concurrency_limit=N)`): helpers prepended to claim_limited.lua
-- and conc_sweep.lua only (scripts.rs), so an app without these limits never loads them.
--
-- A task's key is meta `ck` in its payload, computed by the producer. A running task of a limited task holds a permit
-- of its key: a field of N:conc:<task>:<key> naming its in-flight entry, "<in-flight key>\n<pid>:<seq>", taken in
-- the claim that moves it into that entry. A permit counts only while that entry exists: whatever settles the task
-- (ack, failure, retry, a parent requeueing a dead child's tasks, a reaper returning a dead daemon's) deletes the
-- entry, and the permit is dropped the next time its key is counted. So no path has to remember to release it and a
-- kill -9 cannot leak one. A task whose key is full is parked in N:cwait:<task>:<key> ("<queue>\n<element>"), not
-- left in its queue, so the tasks behind it (other keys) are claimed; a key's waiters go back to the front of their
-- queue when its permits are counted with room: by the claim of the child that settled a holder (it names the keys
-- of its settled tasks), and by every daemon's heartbeat (conc_sweep.lua), which walks the registry N:conc.
-- NOTE: keys are never spelled here: the Rust callers pass them, or their prefixes (keys.rs).

-- Longest key (codec/meta.rs MAX_CONC_KEY): a longer one takes no permit, and the child records the task failed.
local CONC_KEY_MAX = 256

-- big-endian unsigned integer of n bytes at p
local function mp_be(s, p, n)
  local v = 0
  for i = p, p + n - 1 do v = v * 256 + (string.byte(s, i) or 0) end
  return v
end

-- Fixed-size msgpack headers by first byte: total size of the value (header included).
local MP_FIXED = {
  [0xc0] = 1, [0xc2] = 1, [0xc3] = 1, [0xca] = 5, [0xcb] = 9, [0xcc] = 2, [0xcd] = 3, [0xce] = 5, [0xcf] = 9,
  [0xd0] = 2, [0xd1] = 3, [0xd2] = 5, [0xd3] = 9, [0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10, [0xd8] = 18,
}

-- The msgpack value at p: (header size, data size, values nested in it), nil for a byte no value starts with.
local function mp_head(s, p)
  local b = string.byte(s, p)
  if b == nil then return nil end
  if b <= 0x7f or b >= 0xe0 then return 1, 0, 0 end
  if b <= 0x8f then return 1, 0, 2 * (b - 0x80) end
  if b <= 0x9f then return 1, 0, b - 0x90 end
  if b <= 0xbf then return 1, b - 0xa0, 0 end
  local fixed = MP_FIXED[b]
  if fixed then return fixed, 0, 0 end
  if b == 0xc4 or b == 0xd9 then return 2, mp_be(s, p + 1, 1), 0 end
  if b == 0xc5 or b == 0xda then return 3, mp_be(s, p + 1, 2), 0 end
  if b == 0xc6 or b == 0xdb then return 5, mp_be(s, p + 1, 4), 0 end
  if b == 0xc7 then return 3, mp_be(s, p + 1, 1), 0 end
  if b == 0xc8 then return 4, mp_be(s, p + 1, 2), 0 end
  if b == 0xc9 then return 6, mp_be(s, p + 1, 4), 0 end
  if b == 0xdc then return 3, 0, mp_be(s, p + 1, 2) end
  if b == 0xdd then return 5, 0, mp_be(s, p + 1, 4) end
  if b == 0xde then return 3, 0, 2 * mp_be(s, p + 1, 2) end
  if b == 0xdf then return 5, 0, 2 * mp_be(s, p + 1, 4) end
  return nil
end

-- The position after the value at p, nil when the bytes end first or are no msgpack.
-- NOTE: a loop over a count of values still to skip, not recursion: every step moves p forward, so it ends within
-- #s steps whatever the bytes say; ext values (datetimes, Decimals) are skipped whole (cmsgpack cannot read them).
local function mp_skip(s, p)
  local pending = 1
  while pending > 0 do
    local h, d, c = mp_head(s, p)
    if h == nil then return nil end
    p = p + h + d
    if p > #s + 1 then return nil end
    pending = pending - 1 + c
  end
  return p
end

-- (text, position after it) of a str value at p; nil for any other value
local function mp_text(s, p)
  local b = string.byte(s, p)
  if b == nil or not ((b >= 0xa0 and b <= 0xbf) or b == 0xd9 or b == 0xda or b == 0xdb) then return nil end
  local h, d = mp_head(s, p)
  if p + h + d > #s + 1 then return nil end
  return string.sub(s, p + h, p + h + d - 1), p + h + d
end

-- The concurrency key (meta `ck`) of a payload; nil when it has none, or one codec/meta.rs refuses by type or size
-- (the task then takes no permit, and its child records it failed before running it). As meta.rs reads it: the
-- first `meta` of the payload map, the last `ck` in it.
local function conc_key(payload)
  local h, _, c = mp_head(payload, 1)
  local b = string.byte(payload, 1) or 0
  if h == nil or not ((b >= 0x80 and b <= 0x8f) or b == 0xde or b == 0xdf) then return nil end
  local p = 1 + h
  for _ = 1, c / 2 do
    local k, after = mp_text(payload, p)
    if k == nil then return nil end
    if k == 'meta' then
      local mh, _, mc = mp_head(payload, after)
      local mb = string.byte(payload, after) or 0
      if mh == nil or not ((mb >= 0x80 and mb <= 0x8f) or mb == 0xde or mb == 0xdf) then return nil end
      local q, key = after + mh, nil
      for _ = 1, mc / 2 do
        local mk, vp = mp_text(payload, q)
        if mk == nil then return nil end
        if mk == 'ck' then
          local v = mp_text(payload, vp)
          key = (v ~= nil and #v >= 1 and #v <= CONC_KEY_MAX) and v or nil
        end
        q = mp_skip(payload, vp)
        if q == nil then return nil end
      end
      return key
    end
    p = mp_skip(payload, after)
    if p == nil then return nil end
  end
  return nil
end

-- Live permits of the permit hash `pk`; permits whose in-flight entry is gone are dropped.
local function conc_live(pk)
  local live, stale = 0, {}
  for _, f in ipairs(redis.call('HKEYS', pk)) do
    local at = string.find(f, '\n[^\n]*$')
    if at and redis.call('HEXISTS', string.sub(f, 1, at - 1), string.sub(f, at + 1)) == 1 then
      live = live + 1
    else
      stale[#stale + 1] = f
    end
  end
  for lo = 1, #stale, 1000 do
    redis.call('HDEL', pk, unpack(stale, lo, math.min(#stale, lo + 999)))
  end
  return live
end

-- Move up to k waiters of the list `wk` back to the front of their queues (`qp`, `bp`: the prefixes of queue and
-- bell keys), oldest first at the very front. Returns how many moved.
local function conc_unpark(wk, k, qp, bp)
  if k <= 0 then return 0 end
  local items = redis.call('LPOP', wk, k)
  if not items then return 0 end
  for idx = #items, 1, -1 do
    local e = items[idx]
    local nl = string.find(e, '\n', 1, true)
    if nl then
      local queue = string.sub(e, 1, nl - 1)
      redis.call('LPUSH', qp .. queue, string.sub(e, nl + 1))
      ring(bp .. queue)
    end
  end
  return #items
end

-- Count the permits of one key (`pk`, its waiters `wk`) and give the room to its waiters: at most `limit` - live of
-- them (limit nil: the task is no longer limited, up to `most`), never more than `most`. A key with neither permits
-- nor waiters leaves the registry. Returns how many waiters moved.
local function conc_room(registry, member, pk, wk, limit, most, qp, bp)
  local live = conc_live(pk)
  local room = most
  if limit then room = math.min(most, limit - live) end
  local moved = conc_unpark(wk, room, qp, bp)
  if live == 0 and redis.call('LLEN', wk) == 0 then redis.call('SREM', registry, member) end
  return moved
end
