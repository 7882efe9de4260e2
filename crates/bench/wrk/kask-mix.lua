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
-- own share of the keys, so that a `GET` never asks for a key another thread deleted: a
-- `DELETE` takes a key out of the thread's pool and the next `POST` puts it back (as a login
-- after a logout would), the other `POST`s overwrite keys of the pool. Every answer is then
-- a 2xx: wrk's "Non-2xx" count tells of real failures.

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
local get_req, post_req, del_req = {}, {}, {}
local gone, revive, revive_head, revive_tail = {}, {}, 1, 0
local get_pos, post_pos, del_pos = 0, 0, 0

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

function init(args)
  local file = args[1]
  local nthreads = tonumber(args[2] or "1")
  assert(file, "key file missing")
  local api_key = os.getenv("TESSERA_API_KEY")
  assert(api_key and #api_key > 0, "TESSERA_API_KEY is not set")
  local index = thread_index or 0
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
  local auth = "Bearer " .. api_key
  for k = 1, n do
    local path = "/sessions/v1/" .. keys[k]
    get_req[k] = wrk.format("GET", path, { ["Authorization"] = auth })
    del_req[k] = wrk.format("DELETE", path, { ["Authorization"] = auth })
    post_req[k] = wrk.format("POST", path, {
      ["Authorization"] = auth,
      ["Content-Type"] = "application/octet-stream",
    }, value_for(k))
  end
  build_schedule()
  -- Different places in the pool for reads, writes and deletes.
  get_pos = 0
  post_pos = math.floor(n / 3)
  del_pos = math.floor(2 * n / 3)
end

-- The next key at or after `pos` that is in the pool.
local function next_live(pos)
  for _ = 1, n do
    pos = pos % n + 1
    if not gone[pos] then
      return pos
    end
  end
  return pos
end

function request()
  step = step % CYCLE + 1
  local op = schedule[step]
  if op == "GET" then
    get_pos = next_live(get_pos)
    return get_req[get_pos]
  elseif op == "POST" then
    if revive_head <= revive_tail then
      local k = revive[revive_head]
      revive[revive_head] = nil
      revive_head = revive_head + 1
      gone[k] = nil
      return post_req[k]
    end
    post_pos = next_live(post_pos)
    return post_req[post_pos]
  end
  del_pos = next_live(del_pos)
  gone[del_pos] = true
  revive_tail = revive_tail + 1
  revive[revive_tail] = del_pos
  return del_req[del_pos]
end
