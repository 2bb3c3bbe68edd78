-- Workflows (chains, groups, callbacks): prepended after lib.lua to every script, since any script that settles a
-- task (lib.lua `settle`) may settle a workflow step. python/wakaq/workflow.py builds the tree; broker/workflow.rs
-- writes it (workflow_start.lua).
--
-- A workflow is a tree of nodes, numbered in pre-order from 0 (the root). Its hash N:wf:<id> holds `status`
-- (running, done, failed, cancelled), `result` (packed, when done), `error_type`/`error` (when failed), `results`
-- and `ready` (the keys of N:wf:<id>:results and N:wf:<id>:ready), `ttl` (ms), and per node i:
--   k<i> kind: 't' a task step, 'c' a chain (its children run one after the other, each result passed on as the
--        next one's first argument), 'g' a group (children run at once; its result is the list of theirs)
--   u<i> parent node ('' for the root), o<i> position in the parent (1-based), c<i> children (space-separated)
--   f<i> '1': a group whose failed members count as their error's description instead of failing the workflow
--   d<i> a group's finished members (HINCRBY, after HSETNX in the results hash: each member counted once)
--   task steps: q<i> queue key, b<i> its bell, h<i> payload up to the args array, a<i> the args' items, n<i> their
--   count, r<i> the rest of the payload (kwargs, retry, meta), i<i> '1': ignores the previous result (`.si()`),
--   x<i> its result record key, m<i> its task id, w<i> its task name
-- NOTE: a step's payload is built when it starts, by whichever script ends the step before it: the previous result
-- (packed bytes, never decoded here) goes in front of the args' items and the array header is written again. A
-- step's record gets `wf` and `node` then, and `settle` (lib.lua) calls `workflow_settled` with the step's final
-- write: a step ends in the workflow exactly once, in the script that settles it, whatever settles it.

-- msgpack array header of n items
local function mp_array(n)
  if n < 16 then return string.char(0x90 + n) end
  if n < 65536 then return string.char(0xdc) .. be(n, 2) end
  return string.char(0xdd) .. be(n, 4)
end

local function wf_get(wf, field, i)
  return redis.call('HGET', wf, field .. i)
end

local function wf_children(wf, i)
  local out = {}
  for c in string.gmatch(wf_get(wf, 'c', i) or '', '%d+') do table.insert(out, c) end
  return out
end

-- Start node i with the previous result `prev` (packed bytes, or nil at the workflow's start).
local function wf_activate(wf, i, prev)
  local kind = wf_get(wf, 'k', i)
  if kind == 't' then
    local f = redis.call('HMGET', wf, 'q' .. i, 'b' .. i, 'h' .. i, 'a' .. i, 'n' .. i, 'r' .. i, 'i' .. i,
      'x' .. i, 'ttl')
    local n, items = tonumber(f[5]), f[4]
    if prev and f[7] ~= '1' then
      n, items = n + 1, prev .. items
    end
    redis.call('RPUSH', f[1], f[3] .. mp_array(n) .. items .. f[6])
    ring(f[2])
    redis.call('HSET', f[8], 'wf', wf, 'node', i)
    redis.call('PEXPIRE', f[8], f[9])
  elseif kind == 'c' then
    wf_activate(wf, wf_children(wf, i)[1], prev)
  elseif kind == 'g' then
    for _, c in ipairs(wf_children(wf, i)) do wf_activate(wf, c, prev) end
  end
end

-- The workflow ends: `fields` stored with `status`, waiters woken.
local function wf_end(wf, status, fields)
  local f = redis.call('HMGET', wf, 'ready', 'ttl')
  redis.call('HSET', wf, 'status', status, unpack(fields))
  redis.call('RPUSH', f[1], '1')
  redis.call('PEXPIRE', f[1], f[2])
end

-- Node i finished with `value` (packed): the next step of its chain starts, or its group counts it, and so on up
-- the tree while nodes complete; the root completing ends the workflow.
local function wf_complete(wf, i, value)
  for _ = 1, 1000 do
    local up = redis.call('HMGET', wf, 'u' .. i, 'o' .. i)
    local u, pos = up[1], tonumber(up[2])
    if not u or u == '' then
      wf_end(wf, 'done', {'result', value})
      return
    end
    local children = wf_children(wf, u)
    if wf_get(wf, 'k', u) == 'c' then
      if pos < #children then
        wf_activate(wf, children[pos + 1], value)
        return
      end
    else
      local f = redis.call('HMGET', wf, 'results', 'ttl')
      if redis.call('HSETNX', f[1], i, value) == 0 then return end
      redis.call('PEXPIRE', f[1], f[2])
      if redis.call('HINCRBY', wf, 'd' .. u, 1) < #children then return end
      local parts = {mp_array(#children)}
      for from = 1, #children, 500 do  -- NOTE: unpack's stack limit, as for the bulk pushes
        local got = redis.call('HMGET', f[1], unpack(children, from, math.min(from + 499, #children)))
        for j = 1, #got do table.insert(parts, got[j] or '\192') end
      end
      value = table.concat(parts)
    end
    i = u
  end
end

-- Node i failed with (error type, message): the nearest group above it that allows failures takes the error's
-- description as that child's result; without one the workflow fails with the error.
local function wf_fail(wf, i, error_type, message)
  local text = error_type
  if message ~= '' then text = error_type .. ': ' .. message end
  local child = i
  for _ = 1, 1000 do
    local u = wf_get(wf, 'u', child)
    if not u or u == '' then
      wf_end(wf, 'failed', {'error_type', error_type, 'error', message, 'failed_node', i})
      return
    end
    if wf_get(wf, 'k', u) == 'g' and wf_get(wf, 'f', u) == '1' then
      wf_complete(wf, child, mp_str(text))
      return
    end
    child = u
  end
end

-- lib.lua's `settle` wrote step `node`'s final status (`extra`: the fields written with it: value, or error_type
-- and error). Nothing happens once the workflow has ended (failed, cancelled) or expired.
workflow_settled = function(wf, node, status, extra)
  if redis.call('HGET', wf, 'status') ~= 'running' then return end
  local f = {}
  for j = 1, #extra - 1, 2 do f[extra[j]] = extra[j + 1] end
  if status == 'done' then
    wf_complete(wf, node, f.value or '\192')
  else
    wf_fail(wf, node, f.error_type or status, f.error or '')
  end
end
