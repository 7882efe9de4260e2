-- wrk script for Wikimedia's session-store mix on the Kask-compatible API: per 2,028 requests,
-- 1,500 `GET`, 500 `POST` and 28 `DELETE` on `/sessions/v1/<key>` (Wikimedia's per-second
-- load: 1,500 reads, 500 writes, 28 deletes), interleaved evenly, over a pre-filled pool of
-- MediaWiki-shaped keys (`enwiki%3AMWSession%3A<32 characters>`, written by `bench-seed
-- --target kask`, one a line) with 1.5 KB values, the API key (TESSERA_API_KEY) in
-- `Authorization`.
--
--   wrk -t1 -c32 -d10s --latency -s crates/bench/wrk/kask-mix.lua http://127.0.0.1:7300 \
--       -- keys.txt 1
--
-- Arguments after `--`: the key file and wrk's thread count (`-t`). Each thread works on its
-- own share of the keys. `GET`s read, and most `POST`s overwrite, keys of that stable pool,
-- which is never deleted. One `POST` in seventeen (about 29 a cycle) creates a key of this
-- run's own (a login), and each `DELETE` removes the oldest such key (a logout), only once at
-- least `DELETE_LAG` created keys are newer than it: with `-c` connections no more than `-c`
-- requests are in flight, and 64 creations span thousands of requests, so the `POST` that
-- created it has been answered long before. No request can then meet a key that another
-- request is deleting or has deleted, in this run or after a warm-up run before it: every
-- answer is a 2xx, and wrk's "Non-2xx" count tells of real failures.

local MIX = { { "GET", 1500 }, { "POST", 500 }, { "DELETE", 28 } }
local CYCLE = 2028
local VALUE_BYTES = 1536

local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local keys, n = {}, 0
local schedule, step = {}, 0
local get_req, post_req = {}, {}
local auth
local get_pos, post_pos = 0, 0
-- Created keys not yet deleted, oldest first; `created` counts this thread's creations.
local fresh, fresh_head, fresh_tail, created = {}, 1, 0, 0
local index, nonce = 0, 0
-- Creations between a key's `POST` and its `DELETE`, at the least: about 4,500 requests of
-- the mix, far more than can be in flight.
local DELETE_LAG = 64
-- Every 17th `POST` creates a key (500 / 17 = 29.4 a cycle), a little more than the 28
-- `DELETE`s take away, so deletes never run out of keys old enough.
local CREATE_EVERY = 17
local posts = 0

-- The cycle of 2,028 operations, each chosen as the one furthest behind its share (so the
-- three are spread evenly and every cycle has exactly 1,500 / 500 / 28).
local function build_schedule()
  local done = {}
  for i = 1, #MIX do
    done[i] = 0
  end
  for p = 1, CYCLE do
    local best, best_lag = 1, nil
    for i, m in ipairs(MIX) do
      local lag = p * m[2] / CYCLE - done[i]
      if best_lag == nil or lag > best_lag then
        best, best_lag = i, lag
      end
    end
    done[best] = done[best] + 1
    schedule[p] = MIX[best][1]
  end
end

local function value_for(j)
  local head = 'a:1:{s:4:"bench";i:' .. j .. ";}"
  return head .. string.rep("x", VALUE_BYTES - #head)
end

-- A MediaWiki-shaped key of this run's own: 32 characters, unique to the thread and the run.
local function fresh_path(c)
  return string.format("/sessions/v1/enwiki%%3AMWSession%%3Abm%02d%010d%018d", index % 100, nonce, c)
end

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2] or "1")
  assert(file, "key file missing")
  local api_key = os.getenv("TESSERA_API_KEY")
  assert(api_key and #api_key > 0, "TESSERA_API_KEY is not set")
  index = thread_index or 0
  -- A run after a warm-up must not meet the warm-up's keys: the start time tells them apart.
  nonce = os.time() % 10000000000
  local j = 0
  for line in io.lines(file) do
    if #line > 0 then
      if j % nthreads == index then
        n = n + 1
        keys[n] = line
      end
      j = j + 1
    end
  end
  assert(n > 0, "no keys for thread " .. index .. " in " .. file)
  auth = "Bearer " .. api_key
  for k = 1, n do
    local path = "/sessions/v1/" .. keys[k]
    get_req[k] = wrk.format("GET", path, { ["Authorization"] = auth })
    post_req[k] = wrk.format("POST", path, {
      ["Authorization"] = auth,
      ["Content-Type"] = "application/octet-stream",
    }, value_for(k))
  end
  build_schedule()
  -- Different places in the pool for reads and writes.
  get_pos = 0
  post_pos = math.floor(n / 2)
end

local function create()
  created = created + 1
  fresh_tail = fresh_tail + 1
  fresh[fresh_tail] = created
  return wrk.format("POST", fresh_path(created), {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/octet-stream",
  }, value_for(created))
end

function request()
  step = step % CYCLE + 1
  local op = schedule[step]
  if op == "GET" then
    get_pos = get_pos % n + 1
    return get_req[get_pos]
  elseif op == "POST" then
    posts = posts + 1
    if posts % CREATE_EVERY == 0 then
      return create()
    end
    post_pos = post_pos % n + 1
    return post_req[post_pos]
  end
  if fresh_tail - fresh_head < DELETE_LAG then
    -- Too few keys created yet (the first cycles of a run): a login in place of the logout.
    return create()
  end
  local c = fresh[fresh_head]
  fresh[fresh_head] = nil
  fresh_head = fresh_head + 1
  return wrk.format("DELETE", fresh_path(c), { ["Authorization"] = auth })
end
